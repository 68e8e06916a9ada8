//! Mapping offsets in a reassembled APDU back to the caller's input bytes, so that
//! an error found after reassembly (or in the plaintext) still names the input byte.

/// Runs of contiguous APDU bytes and where each run starts in the input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetMap {
    runs: Vec<(usize, usize, usize)>,
}

impl OffsetMap {
    /// The identity map: APDU offset = input offset + `base`.
    pub fn identity(base: usize, len: usize) -> Self {
        OffsetMap {
            runs: vec![(0, base, len)],
        }
    }

    /// Records that APDU bytes `apdu_start..apdu_start+len` are input bytes
    /// `input_start..input_start+len`.
    pub fn push(&mut self, apdu_start: usize, input_start: usize, len: usize) {
        self.runs.push((apdu_start, input_start, len));
    }

    /// Records that APDU bytes `apdu_start..apdu_start+len` are bytes
    /// `from..from+len` of another APDU whose bytes came from the input as
    /// `source` says (one run per run of `source` they span).
    pub fn push_from(&mut self, apdu_start: usize, source: &OffsetMap, from: usize, len: usize) {
        let end = from.saturating_add(len);
        for &(start, input, run_len) in &source.runs {
            let lo = start.max(from);
            let hi = start.saturating_add(run_len).min(end);
            if lo < hi {
                self.runs
                    .push((apdu_start + (lo - from), input + (lo - start), hi - lo));
            }
        }
    }

    /// The input offset of APDU byte `apdu_offset`; offsets past the end map past
    /// the end of the last run.
    pub fn to_input(&self, apdu_offset: usize) -> usize {
        let mut last = (0, 0, 0);
        for &(start, input, len) in &self.runs {
            if apdu_offset >= start && apdu_offset - start < len {
                return input + (apdu_offset - start);
            }
            last = (start, input, len);
        }
        let (start, input, _) = last;
        input + apdu_offset.saturating_sub(start)
    }
}

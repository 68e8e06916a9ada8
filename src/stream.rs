//! Finding verified telegrams in a byte stream (sans-I/O).
//!
//! [`Deframer`] takes bytes in any chunking and hands out complete telegrams whose
//! every frame passed its length, stop-byte and checksum checks: DLMS push
//! telegrams whose transport segments (CI 0x00–0x1F) arrived complete and in
//! order, single M-Bus long frames with any other CI-field (EN 13757-3 data), and
//! DLMS pushes in HDLC type 3 frames (`7E A0 …`, HCS and FCS verified; Wiener
//! Netze, Netz Burgenland). Input that ends inside a
//! frame is "need more bytes" ([`Deframer::next_telegram`] returns `None`), never an
//! error. Anything else is skipped one byte at a time until the next verified frame
//! start, and counted in [`Stats`].
//!
//! Invariant: every byte pushed is either part of a telegram handed out, counted in
//! [`Stats::bytes_skipped`], or still buffered ([`Deframer::buffered`]).

use crate::dlms::{hdlc, transport};
use crate::error::ErrorKind;
use crate::mbus::frame::{LongFrame, START};

/// Counters of what the deframer did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Telegrams handed out.
    pub telegrams: u64,
    /// Bytes that were not part of any telegram handed out (garbage, broken frames,
    /// incomplete telegrams).
    pub bytes_skipped: u64,
    /// Frame candidates (`68 L L 68` with enough bytes) whose checksum failed.
    pub bad_checksums: u64,
    /// Telegrams dropped incomplete: verified segments whose telegram lost a
    /// segment (or arrived out of order), counted once per telegram.
    pub incomplete_telegrams: u64,
}

/// A streaming telegram finder: push bytes, pull telegrams.
#[derive(Debug, Clone, Default)]
pub struct Deframer {
    buf: Vec<u8>,
    stats: Stats,
    /// Sequence number of the segment dropped just before, if the last thing
    /// done was dropping one: its successor belongs to the same lost telegram.
    last_dropped: Option<u8>,
}

/// Whether an error means the buffer simply ended too early.
fn needs_more(kind: &ErrorKind, offset: usize, buffered: usize) -> bool {
    matches!(
        kind,
        ErrorKind::Truncated { .. } | ErrorKind::MissingSegment { .. }
    ) && offset >= buffered
}

impl Deframer {
    /// An empty deframer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Bytes held back waiting for the rest of a telegram.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    fn skip(&mut self, n: usize) {
        let n = n.min(self.buf.len());
        self.buf.drain(..n);
        self.stats.bytes_skipped += n as u64;
        if n > 0 {
            self.last_dropped = None;
        }
    }

    /// Drops a verified frame that does not complete a telegram.
    fn drop_frame(&mut self, frame_len: usize, segment: Option<u8>) {
        if let Some(seq) = segment {
            let continues = seq != 0 && self.last_dropped == Some(seq.wrapping_sub(1) & 0x0F);
            if !continues {
                self.stats.incomplete_telegrams += 1;
            }
        }
        self.skip(frame_len);
        self.last_dropped = segment;
    }

    /// The next complete, verified telegram (its raw frames), or `None` when more
    /// bytes are needed.
    pub fn next_telegram(&mut self) -> Option<Vec<u8>> {
        loop {
            let start = self
                .buf
                .iter()
                .position(|&b| b == START || b == hdlc::FLAG)
                .unwrap_or(self.buf.len());
            self.skip(start);
            if self.buf.is_empty() {
                return None;
            }
            if self.buf.first() == Some(&hdlc::FLAG) {
                match self.next_hdlc() {
                    Some(Some(telegram)) => return Some(telegram),
                    Some(None) => continue,
                    None => return None,
                }
            }
            if let Ok(frame) = LongFrame::parse(&self.buf, 0) {
                if transport::segment_info(&frame).is_err() {
                    // An M-Bus telegram: one frame is the whole telegram.
                    let telegram: Vec<u8> = self.buf.drain(..frame.frame_len).collect();
                    self.stats.telegrams += 1;
                    self.last_dropped = None;
                    return Some(telegram);
                }
            }
            match transport::reassemble(&self.buf) {
                Ok(r) => {
                    let telegram: Vec<u8> = self.buf.drain(..r.consumed).collect();
                    self.stats.telegrams += 1;
                    self.last_dropped = None;
                    return Some(telegram);
                }
                Err(e) if needs_more(&e.kind, e.offset, self.buf.len()) => return None,
                Err(_) => match LongFrame::parse(&self.buf, 0) {
                    // The first frame is fine; the telegram it starts is not.
                    Ok(frame) => {
                        let segment = transport::segment_info(&frame).ok().map(|(seq, _)| seq);
                        self.drop_frame(frame.frame_len, segment);
                    }
                    Err(first) => {
                        if matches!(first.kind, ErrorKind::Checksum { .. }) {
                            self.stats.bad_checksums += 1;
                        }
                        self.skip(1);
                    }
                },
            }
        }
    }

    /// The HDLC telegram (IEC 62056-46 frames of one push) at the start of the
    /// buffer: `Some(Some(..))` handed out, `Some(None)` something was skipped
    /// (try again), `None` more bytes are needed. The HCS is checked as soon as
    /// a frame's header is in, so a stray 0x7E never holds the stream for long.
    fn next_hdlc(&mut self) -> Option<Option<Vec<u8>>> {
        match hdlc::reassemble(&self.buf) {
            Ok(r) => {
                let telegram: Vec<u8> = self.buf.drain(..r.consumed).collect();
                self.stats.telegrams += 1;
                self.last_dropped = None;
                Some(Some(telegram))
            }
            Err(e) if needs_more(&e.kind, e.offset, self.buf.len()) => None,
            Err(_) => {
                match hdlc::HdlcFrame::parse(&self.buf, 0) {
                    // A verified frame that does not start a telegram.
                    Ok(frame) => {
                        self.stats.incomplete_telegrams += 1;
                        self.skip(frame.frame_len);
                    }
                    Err(first) => {
                        if first.kind.category() == crate::error::Category::Checksum {
                            self.stats.bad_checksums += 1;
                        }
                        self.skip(1);
                    }
                }
                Some(None)
            }
        }
    }

    /// Ends the stream: whatever is still buffered can no longer complete and is
    /// counted as skipped (and as an incomplete telegram if it holds verified
    /// segments).
    pub fn finish(&mut self) {
        while let Ok(frame) = LongFrame::parse(&self.buf, 0) {
            let segment = transport::segment_info(&frame).ok().map(|(seq, _)| seq);
            self.drop_frame(frame.frame_len, segment);
        }
        let n = self.buf.len();
        self.skip(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dlms::transport::emit;

    fn telegram(seed: u8, len: usize) -> Vec<u8> {
        let apdu: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(seed)).collect();
        emit(&apdu, 245)
    }

    #[test]
    fn garbage_around_and_every_chunking() {
        let a = telegram(3, 260);
        let b = telegram(7, 30);
        let mut stream = vec![0x00, 0x68, 0x68, 0x16];
        stream.extend_from_slice(&a);
        stream.extend_from_slice(&[0xE5, 0x68, 0x01]);
        stream.extend_from_slice(&b);
        for chunk in [1, 2, 7, 64, 1000] {
            let mut d = Deframer::new();
            let mut out = Vec::new();
            for c in stream.chunks(chunk) {
                d.push(c);
                while let Some(t) = d.next_telegram() {
                    out.push(t);
                }
            }
            d.finish();
            assert_eq!(out, vec![a.clone(), b.clone()], "chunk {chunk}");
            let s = d.stats();
            assert_eq!(s.telegrams, 2);
            assert_eq!(s.bytes_skipped, 7, "chunk {chunk}");
        }
    }

    #[test]
    fn hdlc_and_mbus_telegrams_mixed_with_garbage() {
        let apdu: Vec<u8> = (0..150u8).map(|i| i.wrapping_mul(13)).collect();
        let h = hdlc::emit(&apdu, &[0xCF], &[0x02, 0x23], hdlc::CONTROL_UI, 64);
        let a = telegram(3, 100);
        let mut stream = vec![0x7E, 0xA0, 0x11, 0x7E, 0x00];
        stream.extend_from_slice(&h);
        stream.extend_from_slice(&a);
        let mut corrupt = h.clone();
        corrupt[20] ^= 0x40; // a flipped bit: the FCS of the first frame fails
        stream.extend_from_slice(&corrupt);
        stream.extend_from_slice(&h);
        for chunk in [1, 3, 64, 4096] {
            let mut d = Deframer::new();
            let mut out = Vec::new();
            for c in stream.chunks(chunk) {
                d.push(c);
                while let Some(t) = d.next_telegram() {
                    out.push(t);
                }
            }
            d.finish();
            assert_eq!(out, vec![h.clone(), a.clone(), h.clone()], "chunk {chunk}");
            let s = d.stats();
            assert_eq!(s.telegrams, 3);
            assert_eq!(s.bytes_skipped, (5 + corrupt.len()) as u64, "chunk {chunk}");
            assert!(s.bad_checksums >= 1);
        }
    }

    #[test]
    fn missing_second_segment_drops_the_first() {
        let a = telegram(3, 300);
        let b = telegram(5, 300);
        let first_frame_len = 245 + 11;
        let mut stream = a[..first_frame_len].to_vec();
        stream.extend_from_slice(&b);
        let mut d = Deframer::new();
        d.push(&stream);
        assert_eq!(d.next_telegram(), Some(b.clone()));
        assert_eq!(d.next_telegram(), None);
        assert_eq!(d.stats().incomplete_telegrams, 1);
        assert_eq!(d.stats().bytes_skipped, first_frame_len as u64);
    }

    #[test]
    fn three_segments_missing_the_last_count_once() {
        let a = emit(&[0x11; 600], 245);
        let b = telegram(5, 100);
        let third = 2 * 256;
        let mut stream = a[..third].to_vec();
        stream.extend_from_slice(&b);
        let mut d = Deframer::new();
        d.push(&stream);
        assert_eq!(d.next_telegram(), Some(b));
        assert_eq!(d.stats().incomplete_telegrams, 1);
        // An orphan last segment (its start was missed) is one more.
        d.push(&a[third..]);
        d.finish();
        assert_eq!(d.stats().incomplete_telegrams, 2);
    }

    #[test]
    fn every_prefix_needs_more_and_every_split_agrees() {
        let a = telegram(3, 300);
        for cut in 0..a.len() {
            let mut d = Deframer::new();
            d.push(&a[..cut]);
            assert_eq!(d.next_telegram(), None, "prefix {cut}");
            assert_eq!(
                d.stats().bytes_skipped,
                0,
                "prefix {cut} must wait, not skip"
            );
            d.push(&a[cut..]);
            assert_eq!(d.next_telegram(), Some(a.clone()), "split at {cut}");
        }
    }

    #[test]
    fn mbus_frames_are_telegrams_of_their_own() {
        let mbus = crate::mbus::link::emit_long(0x08, 1, 0x72, &[0; 12]);
        let dlms = telegram(3, 300);
        let mut stream = mbus.clone();
        stream.extend_from_slice(&[0xE5, 0x10]);
        stream.extend_from_slice(&dlms);
        let mut d = Deframer::new();
        d.push(&stream);
        assert_eq!(d.next_telegram(), Some(mbus));
        assert_eq!(d.next_telegram(), Some(dlms));
        assert_eq!(d.stats().bytes_skipped, 2);
    }

    #[test]
    fn flipped_byte_is_never_handed_out() {
        let a = telegram(3, 260);
        for i in 0..a.len() {
            let mut bad = a.clone();
            bad[i] ^= 0x01;
            let mut d = Deframer::new();
            d.push(&bad);
            let mut out = Vec::new();
            while let Some(t) = d.next_telegram() {
                out.push(t);
            }
            d.finish();
            assert!(out.is_empty(), "byte {i} flipped yet a telegram came out");
            assert_eq!(d.stats().bytes_skipped, bad.len() as u64);
        }
    }
}

/// The telegram finder of a protocol family: M-Bus long frames (DLMS push and
/// EN 13757-3) or P1 text telegrams.
#[derive(Debug, Clone)]
pub enum Framer {
    /// M-Bus framing ([`Deframer`]).
    Mbus(Deframer),
    /// P1 telegrams ([`crate::dsmr::stream::Framer`]).
    Dsmr(crate::dsmr::stream::Framer),
}

impl Framer {
    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        match self {
            Framer::Mbus(f) => f.push(data),
            Framer::Dsmr(f) => f.push(data),
        }
    }

    /// The next complete telegram, or `None` when more bytes are needed.
    pub fn next_telegram(&mut self) -> Option<Vec<u8>> {
        match self {
            Framer::Mbus(f) => f.next_telegram(),
            Framer::Dsmr(f) => f.next_telegram(),
        }
    }

    /// Gives back a telegram the decoder could not verify, for rescanning
    /// (P1 encrypted frames, which only the decoder can verify; M-Bus telegrams
    /// are verified before they are handed out, so nothing happens for them).
    pub fn reject(&mut self, telegram: &[u8]) {
        if let Framer::Dsmr(f) = self {
            if telegram.first() == Some(&0xDB) {
                f.reject(telegram);
            }
        }
    }

    /// Ends the stream.
    pub fn finish(&mut self) {
        match self {
            Framer::Mbus(f) => f.finish(),
            Framer::Dsmr(f) => f.finish(),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        match self {
            Framer::Mbus(f) => f.stats(),
            Framer::Dsmr(f) => f.stats(),
        }
    }

    /// Bytes held back.
    pub fn buffered(&self) -> usize {
        match self {
            Framer::Mbus(f) => f.buffered(),
            Framer::Dsmr(f) => f.buffered(),
        }
    }
}

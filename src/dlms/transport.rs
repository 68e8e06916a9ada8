//! DLMS transport over wired M-Bus: reassembling an APDU from long-frame segments.
//!
//! Source: IEC 62056-7-6 (the 3-layer connection-less profile for wired M-Bus),
//! as used by the Austrian customer interfaces (Netz NÖ "SmartMeter
//! Kundenschnittstelle"; TINETZ interface description). Each segment is a long
//! frame `68 L L 68 | C A CI STSAP DTSAP | segment | CS 16` whose CI-field has
//! bits 7..5 clear, bit 4 set on the last segment, and the segment sequence number
//! in bits 3..0. The APDU is the concatenation of the bytes after DTSAP.

use super::offsets::OffsetMap;
use crate::error::{DecodeError, ErrorKind, Result};
use crate::mbus::LongFrame;

/// CI-field bit set on the last (or only) segment.
pub const CI_LAST_SEGMENT: u8 = 0x10;
/// CI-field bits holding the segment sequence number.
pub const CI_SEQUENCE: u8 = 0x0F;
/// Highest CI-field of the DLMS transport (bits 7..5 clear).
pub const CI_MAX: u8 = 0x1F;

/// An APDU reassembled from M-Bus segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassembled {
    /// The APDU bytes (starting with the general-glo-ciphering tag 0xDB on the push interfaces).
    pub apdu: Vec<u8>,
    /// Where each APDU byte came from in the input.
    pub map: OffsetMap,
    /// How many input bytes the frames took.
    pub consumed: usize,
    /// The number of segments.
    pub segments: usize,
}

/// Whether a verified frame is a DLMS transport segment, and if so its header.
pub fn segment_info(frame: &LongFrame<'_>) -> Result<(u8, bool)> {
    if frame.ci > CI_MAX {
        return Err(DecodeError::new(
            ErrorKind::NotDlmsTransport { ci: frame.ci },
            frame.ci_offset,
        ));
    }
    Ok((frame.ci & CI_SEQUENCE, frame.ci & CI_LAST_SEGMENT != 0))
}

/// Reassembles the APDU from the long frames at the start of `buf`, stopping after
/// the segment with the last-segment bit. Bytes after it are not read.
///
/// # Errors
/// Any [`LongFrame::parse`] error of a segment (with [`ErrorKind::Truncated`] when
/// the input ends inside a frame); [`ErrorKind::MissingSegment`] when the input ends
/// between frames before the last segment; [`ErrorKind::NotDlmsTransport`];
/// [`ErrorKind::SegmentOutOfOrder`]; [`ErrorKind::Truncated`] for a segment without
/// its STSAP and DTSAP bytes.
pub fn reassemble(buf: &[u8]) -> Result<Reassembled> {
    let mut apdu = Vec::with_capacity(buf.len());
    let mut map = OffsetMap::default();
    let mut pos = 0usize;
    let mut expected = 0u8;
    let mut segments = 0usize;
    loop {
        let rest = buf.get(pos..).unwrap_or(&[]);
        if rest.is_empty() {
            return Err(DecodeError::new(
                ErrorKind::MissingSegment { expected },
                pos,
            ));
        }
        let frame = LongFrame::parse(rest, pos)?;
        let (sequence, last) = segment_info(&frame)?;
        if sequence != expected {
            return Err(DecodeError::new(
                ErrorKind::SegmentOutOfOrder {
                    expected,
                    found: sequence,
                },
                frame.ci_offset,
            ));
        }
        // STSAP and DTSAP precede the segment in every frame.
        let segment = frame.data.get(2..).ok_or_else(|| {
            DecodeError::new(
                ErrorKind::Truncated {
                    needed: 2usize.saturating_sub(frame.data.len()),
                },
                frame.data_offset,
            )
        })?;
        map.push(apdu.len(), frame.data_offset + 2, segment.len());
        apdu.extend_from_slice(segment);
        pos += frame.frame_len;
        segments += 1;
        if last {
            return Ok(Reassembled {
                apdu,
                map,
                consumed: pos,
                segments,
            });
        }
        expected = (expected + 1) & CI_SEQUENCE;
    }
}

/// Splits `apdu` into DLMS transport segments of at most `max_segment` bytes each
/// and frames them as M-Bus long frames (C = 0x53, A = 0xFF, STSAP 0x01, DTSAP 0x67),
/// as the Austrian meters push them. The inverse of [`reassemble`], for tests and
/// the simulator.
pub fn emit(apdu: &[u8], max_segment: usize) -> Vec<u8> {
    let chunks: Vec<&[u8]> = apdu.chunks(max_segment.max(1)).collect();
    let mut out = Vec::with_capacity(apdu.len() + 11 * chunks.len());
    for (i, chunk) in chunks.iter().enumerate() {
        let mut ci = (i as u8) & CI_SEQUENCE;
        if i + 1 == chunks.len() {
            ci |= CI_LAST_SEGMENT;
        }
        let mut body = vec![0x53, 0xFF, ci, 0x01, 0x67];
        body.extend_from_slice(chunk);
        out.extend_from_slice(&LongFrame::emit(&body));
    }
    out
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn two_segments_round_trip_with_offsets() {
        let apdu: Vec<u8> = (0..=255u8).chain(0..40).collect();
        let wire = emit(&apdu, 245);
        let r = reassemble(&wire).unwrap();
        assert_eq!(r.apdu, apdu);
        assert_eq!(r.segments, 2);
        assert_eq!(r.consumed, wire.len());
        // APDU byte 0 is at input byte 9; byte 245 is 9 bytes into the second frame.
        assert_eq!(r.map.to_input(0), 9);
        assert_eq!(r.map.to_input(245), 256 + 9);
        assert_eq!(wire[r.map.to_input(250)], apdu[250]);
    }

    #[test]
    fn missing_and_reordered_segments() {
        let apdu = vec![0xAB; 300];
        let wire = emit(&apdu, 200);
        let first_len = 200 + 11;
        let e = reassemble(&wire[..first_len]).unwrap_err();
        assert_eq!(
            e,
            DecodeError::new(ErrorKind::MissingSegment { expected: 1 }, first_len)
        );
        let mut swapped = wire[first_len..].to_vec();
        swapped.extend_from_slice(&wire[..first_len]);
        let e = reassemble(&swapped).unwrap_err();
        assert_eq!(
            e.kind,
            ErrorKind::SegmentOutOfOrder {
                expected: 0,
                found: 1
            }
        );
        assert_eq!(e.offset, 6);
    }

    #[test]
    fn rejects_other_ci_fields() {
        let wire = LongFrame::emit(&[0x08, 0x01, 0x72, 0, 0]);
        let e = reassemble(&wire).unwrap_err();
        assert_eq!(
            e,
            DecodeError::new(ErrorKind::NotDlmsTransport { ci: 0x72 }, 6)
        );
    }
}

//! DLMS over HDLC: frame format type 3 frames carrying a push APDU.
//!
//! Source: IEC 62056-46 (DLMS Green Book, "HDLC" chapter), as the Wiener Netze,
//! Netz Burgenland and Kärnten Netz meters use it (`shared/notes/dlms.md` §2.4):
//!
//! ```text
//! 7E | format(2) | dest addr | src addr | control | HCS(2) | information | FCS(2) | 7E
//! ```
//! * format: type 3 = `0xA` in the upper four bits, segmentation bit S = `0x08` of
//!   the first byte, and an 11-bit length counting the bytes between the flags;
//! * addresses use extended addressing: 1, 2 or 4 bytes, the last with LSB = 1;
//! * HCS (only when there is an information field) is the CRC-16/X.25 of
//!   format..control, FCS the CRC-16/X.25 of format..information, both little-endian;
//! * the first information field of an APDU starts with the LLC header `E6 E7 00`
//!   (`E6 E6 00` also accepted), the APDU is the concatenation of the information
//!   fields of frames up to the first with S clear.
//!
//! Type 3 frames carry their length, so there is no byte stuffing: `0x7E` may occur
//! inside a frame. Parsing never panics; input that ends early is
//! [`ErrorKind::Truncated`] at the end of the input, so a stream reader can wait.

use super::offsets::OffsetMap;
use super::transport::Reassembled;
use crate::error::{DecodeError, ErrorKind, Result};

/// Opening and closing flag.
pub const FLAG: u8 = 0x7E;
/// Frame format type 3, in the upper four bits of the first format byte.
pub const FORMAT_TYPE_3: u8 = 0xA0;
/// Segmentation bit of the first format byte.
pub const SEGMENTATION: u8 = 0x08;
/// Control field of an unnumbered information (UI) frame with the final bit set.
pub const CONTROL_UI: u8 = 0x13;
/// LLC header of a response / push (destination LSAP E6, source LSAP E7, quality 00).
pub const LLC: [u8; 3] = [0xE6, 0xE7, 0x00];
/// LLC header of a command, also accepted on pushes.
pub const LLC_COMMAND: [u8; 3] = [0xE6, 0xE6, 0x00];
/// APDU tag of general-block-transfer (reassembled by [`super::gbt`]).
pub const GENERAL_BLOCK_TRANSFER: u8 = 0xE0;
/// Largest value of the 11-bit length field.
pub const MAX_LENGTH: usize = 0x7FF;
/// Smallest frame: flags, format, 1-byte addresses, control, FCS.
pub const MIN_FRAME: usize = 9;

/// CRC-16/X.25 (reflected polynomial 0x8408, init 0xFFFF, xorout 0xFFFF), the HDLC
/// HCS and FCS (IEC 62056-46 §6.4.4.3, ISO/IEC 13239 §4.2). Check value:
/// `crc16_x25(b"123456789") == 0x906E`. Table-driven (the `crc` crate's
/// CRC-16/IBM-SDLC, its catalogue name for X.25, 16 bytes a step): the
/// bit-by-bit form took half of an L+G E570 push's decode.
pub fn crc16_x25(bytes: &[u8]) -> u16 {
    X25.checksum(bytes)
}

/// The table-driven CRC of [`crc16_x25`], for running checksums too.
pub(crate) const X25: crc::Crc<u16, crc::Table<16>> =
    crc::Crc::<u16, crc::Table<16>>::new(&crc::CRC_16_IBM_SDLC);

/// A verified HDLC frame borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HdlcFrame<'a> {
    /// Offset of the opening flag in the input.
    pub start: usize,
    /// The segmentation bit: more frames of the same APDU follow.
    pub segmented: bool,
    /// The length field: bytes between the flags.
    pub length: usize,
    /// Destination address bytes (extended addressing, last byte has LSB 1).
    pub destination: &'a [u8],
    /// Source address bytes.
    pub source: &'a [u8],
    /// Control field (0x13 = UI with final bit on the push interfaces).
    pub control: u8,
    /// Offset of the HCS in the input, when the frame has an information field.
    pub hcs_offset: Option<usize>,
    /// The information field (empty when there is none).
    pub info: &'a [u8],
    /// Offset of `info[0]` in the input.
    pub info_offset: usize,
    /// Offset of the FCS in the input.
    pub fcs_offset: usize,
    /// Total length of the frame, opening to closing flag: `length + 2`.
    pub frame_len: usize,
}

/// `Truncated` at the end of `input` when it does not reach `end`.
fn truncated(input: &[u8], end: usize) -> DecodeError {
    DecodeError::new(
        ErrorKind::Truncated {
            needed: end.saturating_sub(input.len()).max(1),
        },
        input.len(),
    )
}

fn byte(input: &[u8], at: usize) -> Result<u8> {
    input
        .get(at)
        .copied()
        .ok_or_else(|| truncated(input, at + 1))
}

fn bytes(input: &[u8], from: usize, to: usize) -> Result<&[u8]> {
    input.get(from..to).ok_or_else(|| truncated(input, to))
}

/// Reads a little-endian CRC at `at` and compares it with the CRC of `covered`.
fn check_crc(input: &[u8], at: usize, covered: &[u8], field: &'static str) -> Result<()> {
    let lo = byte(input, at)?;
    let hi = byte(input, at + 1)?;
    let given = u16::from_le_bytes([lo, hi]);
    let computed = crc16_x25(covered);
    if given != computed {
        return Err(DecodeError::new(
            ErrorKind::HdlcCrc {
                field,
                given,
                computed,
            },
            at,
        ));
    }
    Ok(())
}

/// Reads an extended address at `at`: up to the first byte with LSB 1, 1, 2 or 4 bytes.
fn address(input: &[u8], at: usize) -> Result<&[u8]> {
    for len in 1..=4 {
        if byte(input, at + len - 1)? & 1 == 1 {
            if len == 3 {
                return Err(DecodeError::new(ErrorKind::InvalidHdlcAddress { len }, at));
            }
            return bytes(input, at, at + len);
        }
    }
    Err(DecodeError::new(
        ErrorKind::InvalidHdlcAddress { len: 5 },
        at,
    ))
}

impl<'a> HdlcFrame<'a> {
    /// Parses and verifies the frame whose opening flag is `input[at]`. Offsets in the
    /// frame and in errors are offsets into `input`; bytes after the closing flag are
    /// not read.
    ///
    /// The header is checked (HCS) as soon as it is complete, before the rest of the
    /// frame is needed.
    ///
    /// # Errors
    /// [`ErrorKind::Truncated`] (at `input.len()`) when `input` ends inside the frame;
    /// [`ErrorKind::InvalidHdlcFlag`], [`ErrorKind::InvalidHdlcFormat`],
    /// [`ErrorKind::InvalidHdlcAddress`], [`ErrorKind::HdlcLengthTooShort`];
    /// [`ErrorKind::HdlcCrc`] at the HCS or FCS.
    pub fn parse(input: &'a [u8], at: usize) -> Result<Self> {
        let flag = byte(input, at)?;
        if flag != FLAG {
            return Err(DecodeError::new(
                ErrorKind::InvalidHdlcFlag { found: flag },
                at,
            ));
        }
        let format_at = at + 1;
        let f0 = byte(input, format_at)?;
        if f0 & 0xF0 != FORMAT_TYPE_3 {
            return Err(DecodeError::new(
                ErrorKind::InvalidHdlcFormat { found: f0 },
                format_at,
            ));
        }
        let f1 = byte(input, format_at + 1)?;
        let segmented = f0 & SEGMENTATION != 0;
        let length = (usize::from(f0 & 0x07) << 8) | usize::from(f1);
        let destination = address(input, format_at + 2)?;
        let source_at = format_at + 2 + destination.len();
        let source = address(input, source_at)?;
        let control_at = source_at + source.len();
        let control = byte(input, control_at)?;
        let header_end = control_at + 1;
        // Format..control, then FCS.
        let minimum = header_end - format_at + 2;
        let end = format_at + length; // closing flag
        let (hcs_offset, info_offset) = if length == minimum {
            (None, header_end)
        } else if length >= minimum + 2 {
            let header = bytes(input, format_at, header_end)?;
            check_crc(input, header_end, header, "HCS")?;
            (Some(header_end), header_end + 2)
        } else {
            return Err(DecodeError::new(
                ErrorKind::HdlcLengthTooShort { length, minimum },
                format_at,
            ));
        };
        // The whole frame, so a short buffer says how much is missing.
        bytes(input, at, end + 1)?;
        let fcs_offset = end - 2;
        let covered = bytes(input, format_at, fcs_offset)?;
        check_crc(input, fcs_offset, covered, "FCS")?;
        let closing = byte(input, end)?;
        if closing != FLAG {
            return Err(DecodeError::new(
                ErrorKind::InvalidHdlcFlag { found: closing },
                end,
            ));
        }
        let info = bytes(input, info_offset, fcs_offset)?;
        Ok(HdlcFrame {
            start: at,
            segmented,
            length,
            destination,
            source,
            control,
            hcs_offset,
            info,
            info_offset,
            fcs_offset,
            frame_len: length + 2,
        })
    }
}

/// Reassembles the APDU from the HDLC frames at the start of `input`: frames while
/// the segmentation bit is set, up to and including the first frame without it.
/// The LLC header of the first information field is stripped. Bytes after the last
/// frame are not read ([`Reassembled::consumed`] says where it ended); a frame may
/// share its opening flag with the closing flag of the one before.
///
/// # Errors
/// Any [`HdlcFrame::parse`] error; [`ErrorKind::Truncated`] when the input ends
/// after a frame with the segmentation bit; [`ErrorKind::InvalidLlc`].
pub fn reassemble(input: &[u8]) -> Result<Reassembled> {
    reassemble_from(input, 0, true)
}

/// Like [`reassemble`], but from the frame at `start` (which may share its
/// opening flag with the closing flag before it), and with the LLC header
/// optional: the frames after the first of a general block transfer
/// (Landis+Gyr E450/E570) carry the next block without one. An LLC header at the
/// start of the first information field is still stripped.
/// [`Reassembled::consumed`] is the input offset where the frames end.
///
/// # Errors
/// As [`reassemble`], without [`ErrorKind::InvalidLlc`].
pub fn reassemble_continuation(input: &[u8], start: usize) -> Result<Reassembled> {
    reassemble_from(input, start, false)
}

fn reassemble_from(input: &[u8], start: usize, require_llc: bool) -> Result<Reassembled> {
    let mut apdu = Vec::with_capacity(input.len().saturating_sub(start));
    let mut map = OffsetMap::default();
    let mut pos = start;
    let mut frames = 0usize;
    loop {
        if frames > 0 && pos >= input.len() {
            return Err(truncated(input, pos + MIN_FRAME));
        }
        // Shared flag: the previous closing flag opens this frame.
        let at = match (
            input.get(pos),
            pos.checked_sub(1).and_then(|p| input.get(p)),
        ) {
            (Some(&b), Some(&FLAG)) if pos > 0 && b & 0xF0 == FORMAT_TYPE_3 => pos - 1,
            _ => pos,
        };
        let frame = HdlcFrame::parse(input, at)?;
        let (info, info_offset) = if frames == 0 {
            let llc = frame.info.get(..LLC.len()).unwrap_or(frame.info);
            let has_llc = llc == LLC || llc == LLC_COMMAND;
            if !has_llc && !require_llc {
                (frame.info, frame.info_offset)
            } else if !has_llc {
                return Err(DecodeError::new(
                    ErrorKind::InvalidLlc {
                        found: llc.to_vec(),
                    },
                    frame.info_offset,
                ));
            } else {
                (
                    frame.info.get(LLC.len()..).unwrap_or_default(),
                    frame.info_offset + LLC.len(),
                )
            }
        } else {
            (frame.info, frame.info_offset)
        };
        map.push(apdu.len(), info_offset, info.len());
        apdu.extend_from_slice(info);
        pos = at + frame.frame_len;
        frames += 1;
        if !frame.segmented {
            return Ok(Reassembled {
                apdu,
                map,
                consumed: pos,
                segments: frames,
            });
        }
    }
}

/// Frames `apdu` as HDLC type 3 frames, as the push meters send it: LLC header
/// `E6 E7 00` then the APDU, split into information fields of at most `max_info`
/// bytes (at least 3, so the LLC header is in the first frame; at most what the
/// 11-bit length allows), the segmentation bit set on all
/// frames but the last. `destination` and `source` are the address bytes as sent
/// (extended addressing, last byte with LSB 1). The inverse of [`reassemble`], for
/// tests and the simulator.
pub fn emit(
    apdu: &[u8],
    destination: &[u8],
    source: &[u8],
    control: u8,
    max_info: usize,
) -> Vec<u8> {
    let header_len = 2 + destination.len() + source.len() + 1;
    let limit = MAX_LENGTH.saturating_sub(header_len + 4).max(LLC.len());
    let mut info = Vec::with_capacity(apdu.len() + LLC.len());
    info.extend_from_slice(&LLC);
    info.extend_from_slice(apdu);
    let chunks: Vec<&[u8]> = info.chunks(max_info.clamp(LLC.len(), limit)).collect();
    let mut out = Vec::with_capacity(info.len() + (header_len + 6) * chunks.len());
    for (i, chunk) in chunks.iter().enumerate() {
        let segmented = i + 1 < chunks.len();
        push_frame(&mut out, chunk, destination, source, control, segmented);
    }
    out
}

/// Appends one HDLC type 3 frame carrying `info` to `out`: flag, format (with
/// the segmentation bit when `segmented`) and length, addresses, control, HCS,
/// the information field as given (no LLC header added), FCS, flag.
pub fn push_frame(
    out: &mut Vec<u8>,
    info: &[u8],
    destination: &[u8],
    source: &[u8],
    control: u8,
    segmented: bool,
) {
    let header_len = 2 + destination.len() + source.len() + 1;
    let length = header_len + 2 + info.len() + 2;
    let mut f0 = FORMAT_TYPE_3 | ((length >> 8) as u8 & 0x07);
    if segmented {
        f0 |= SEGMENTATION;
    }
    let start = out.len();
    out.push(FLAG);
    out.extend_from_slice(&[f0, (length & 0xFF) as u8]);
    out.extend_from_slice(destination);
    out.extend_from_slice(source);
    out.push(control);
    let hcs = crc16_x25(out.get(start + 1..).unwrap_or_default());
    out.extend_from_slice(&hcs.to_le_bytes());
    out.extend_from_slice(info);
    let fcs = crc16_x25(out.get(start + 1..).unwrap_or_default());
    out.extend_from_slice(&fcs.to_le_bytes());
    out.push(FLAG);
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    /// CRC-16/X.25 bit by bit, as ISO/IEC 13239 defines it: the reference.
    fn crc16_x25_bitwise(bytes: &[u8]) -> u16 {
        let mut crc: u16 = 0xFFFF;
        for &b in bytes {
            crc ^= u16::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0x8408
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn crc_check_value() {
        assert_eq!(crc16_x25(b"123456789"), 0x906E);
        assert_eq!(crc16_x25(b""), 0x0000);
        assert_eq!(crc16_x25_bitwise(b"123456789"), 0x906E);
    }

    proptest::proptest! {
        #[test]
        fn crc_table_equals_bitwise(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            proptest::prop_assert_eq!(crc16_x25(&bytes), crc16_x25_bitwise(&bytes));
        }
    }

    #[test]
    fn emit_parse_one_frame() {
        let wire = emit(&[0xDB, 1, 2, 3], &[0xCE, 0xFF], &[0x03], CONTROL_UI, 100);
        assert_eq!(wire[..3], [0x7E, 0xA0, 0x11]);
        let f = HdlcFrame::parse(&wire, 0).unwrap();
        assert!(!f.segmented);
        assert_eq!(f.destination, &[0xCE, 0xFF]);
        assert_eq!(f.source, &[0x03]);
        assert_eq!(f.control, CONTROL_UI);
        assert_eq!(f.hcs_offset, Some(7));
        assert_eq!(f.info, &[0xE6, 0xE7, 0x00, 0xDB, 1, 2, 3]);
        assert_eq!(f.frame_len, wire.len());
        let r = reassemble(&wire).unwrap();
        assert_eq!(r.apdu, [0xDB, 1, 2, 3]);
        assert_eq!(r.map.to_input(0), 12);
    }

    #[test]
    fn frame_without_information_field() {
        // 7E A0 07 03 21 53 FCS 7E: a header-only frame (e.g. DISC), no HCS.
        let mut body = vec![0xA0, 0x07, 0x03, 0x21, 0x53];
        body.extend_from_slice(&crc16_x25(&body).to_le_bytes());
        let mut wire = vec![FLAG];
        wire.extend_from_slice(&body);
        wire.push(FLAG);
        let f = HdlcFrame::parse(&wire, 0).unwrap();
        assert_eq!(f.hcs_offset, None);
        assert!(f.info.is_empty());
        assert_eq!(f.fcs_offset, 6);
        // No information field: no LLC header either.
        let e = reassemble(&wire).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidLlc { found: vec![] });
    }

    #[test]
    fn segmented_frames_and_shared_flag() {
        let apdu: Vec<u8> = (0..=255u8).collect();
        let wire = emit(&apdu, &[0x03], &[0x02, 0x23], CONTROL_UI, 100);
        let r = reassemble(&wire).unwrap();
        assert_eq!(r.apdu, apdu);
        assert_eq!(r.segments, 3);
        assert_eq!(r.consumed, wire.len());
        for (i, b) in apdu.iter().enumerate() {
            assert_eq!(wire[r.map.to_input(i)], *b);
        }
        // The same frames with one flag between them.
        let mut shared = Vec::new();
        let mut pos = 0;
        while pos < wire.len() {
            let f = HdlcFrame::parse(&wire, pos).unwrap();
            let frame = &wire[pos..pos + f.frame_len];
            shared.extend_from_slice(if pos == 0 { frame } else { &frame[1..] });
            pos += f.frame_len;
        }
        let r = reassemble(&shared).unwrap();
        assert_eq!(r.apdu, apdu);
        assert_eq!(r.consumed, shared.len());
        for (i, b) in apdu.iter().enumerate() {
            assert_eq!(shared[r.map.to_input(i)], *b);
        }
        // Missing last frame: truncated at the end, so a stream waits.
        let first = HdlcFrame::parse(&wire, 0).unwrap().frame_len;
        let e = reassemble(&wire[..first]).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::Truncated { .. }));
        assert_eq!(e.offset, first);
    }

    #[test]
    fn bad_headers() {
        let wire = emit(&[0xDB], &[0x03], &[0x21], CONTROL_UI, 100);
        let mut w = wire.clone();
        w[1] = 0x80;
        assert_eq!(
            HdlcFrame::parse(&w, 0).unwrap_err(),
            DecodeError::new(ErrorKind::InvalidHdlcFormat { found: 0x80 }, 1)
        );
        let mut w = wire.clone();
        w[0] = 0x7F;
        assert_eq!(
            HdlcFrame::parse(&w, 0).unwrap_err(),
            DecodeError::new(ErrorKind::InvalidHdlcFlag { found: 0x7F }, 0)
        );
        let mut w = wire.clone();
        *w.last_mut().unwrap() = 0x00;
        assert_eq!(
            HdlcFrame::parse(&w, 0).unwrap_err(),
            DecodeError::new(ErrorKind::InvalidHdlcFlag { found: 0x00 }, wire.len() - 1)
        );
        // 3-byte and unterminated addresses.
        let e = HdlcFrame::parse(&[0x7E, 0xA0, 0x20, 0x02, 0x02, 0x03], 0).unwrap_err();
        assert_eq!(
            e,
            DecodeError::new(ErrorKind::InvalidHdlcAddress { len: 3 }, 3)
        );
        let e = HdlcFrame::parse(&[0x7E, 0xA0, 0x20, 0x02, 0x02, 0x02, 0x02], 0).unwrap_err();
        assert_eq!(
            e,
            DecodeError::new(ErrorKind::InvalidHdlcAddress { len: 5 }, 3)
        );
        // Length smaller than header + FCS.
        let e = HdlcFrame::parse(&[0x7E, 0xA0, 0x05, 0x03, 0x21, 0x13], 0).unwrap_err();
        assert_eq!(
            e,
            DecodeError::new(
                ErrorKind::HdlcLengthTooShort {
                    length: 5,
                    minimum: 7
                },
                1
            )
        );
    }
}

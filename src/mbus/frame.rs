//! M-Bus long frame (EN 13757-2 §5, format class FT1.2 of IEC 60870-5-1).
//!
//! ```text
//! 68 L L 68 | C A CI data… | CS 16
//!           |<-- L bytes ->|
//! ```
//! `L` counts the bytes from the C-field to the last data byte; `CS` is their
//! 8-bit sum. Parsing never panics: every access is bounds-checked, and input that
//! ends early is [`ErrorKind::Truncated`], so a stream reader can wait for more.
//!
//! **Sagemcom T210-D quirk.** Old firmware of the Netz NÖ Sagemcom T210-D sends a
//! first frame whose body is 257 bytes long; its L-fields hold 257 mod 256 = 1.
//! When the stop byte or checksum fails for `L`, [`LongFrame::parse`] tries
//! `L + 256` and accepts the frame if both verify there.

use crate::error::{DecodeError, ErrorKind, Result};

mod field {
    use core::ops::Range;

    pub const START1: usize = 0;
    pub const L1: usize = 1;
    pub const L2: usize = 2;
    pub const START2: usize = 3;
    /// First byte of the body (C-field).
    pub const BODY: usize = 4;
    pub const CI: usize = 6;
    /// Smallest body: C, A and CI.
    pub const MIN_BODY: usize = 3;

    pub const fn body(len: usize) -> Range<usize> {
        BODY..BODY + len
    }
    pub const fn checksum(len: usize) -> usize {
        BODY + len
    }
    pub const fn stop(len: usize) -> usize {
        BODY + len + 1
    }
    pub const fn total(len: usize) -> usize {
        BODY + len + 2
    }
}

/// Start byte of long and control frames.
pub const START: u8 = 0x68;
/// Stop byte of every frame but the single character.
pub const STOP: u8 = 0x16;

/// A verified long frame borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LongFrame<'a> {
    /// C-field (e.g. 0x53 SND_UD with FCB clear, 0x73 with FCB set).
    pub control: u8,
    /// A-field (0xFF broadcast on the Austrian push interfaces).
    pub address: u8,
    /// CI-field.
    pub ci: u8,
    /// The bytes after the CI-field up to the checksum.
    pub data: &'a [u8],
    /// Absolute offset of `data[0]` in the caller's input.
    pub data_offset: usize,
    /// Absolute offset of the CI-field in the caller's input.
    pub ci_offset: usize,
    /// Total length of the frame in bytes, start to stop byte.
    pub frame_len: usize,
    /// The body length really used: the L-field, or L-field + 256 for the Sagemcom quirk.
    pub body_len: usize,
}

fn sum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |acc, b| acc.wrapping_add(*b))
}

/// Checks stop byte and (when `checksum`) the checksum of a body of `len`
/// bytes; `Ok(None)` when the buffer is too short to tell.
fn verify(buf: &[u8], len: usize, base: usize, checksum: bool) -> Result<Option<()>> {
    let (Some(body), Some(&cs), Some(&stop)) = (
        buf.get(field::body(len)),
        buf.get(field::checksum(len)),
        buf.get(field::stop(len)),
    ) else {
        return Ok(None);
    };
    let computed = sum(body);
    if checksum && cs != computed {
        return Err(DecodeError::new(
            ErrorKind::Checksum {
                expected: cs,
                computed,
            },
            base + field::checksum(len),
        ));
    }
    if stop != STOP {
        return Err(DecodeError::new(
            ErrorKind::InvalidStop { found: stop },
            base + field::stop(len),
        ));
    }
    Ok(Some(()))
}

impl<'a> LongFrame<'a> {
    /// Parses and verifies the long frame at the start of `buf`; `base` is the
    /// absolute offset of `buf[0]` in the caller's input.
    ///
    /// Bytes after the frame are ignored; [`LongFrame::frame_len`] says where it ends.
    ///
    /// # Errors
    /// [`ErrorKind::Truncated`] when `buf` ends inside the frame,
    /// [`ErrorKind::InvalidStart`], [`ErrorKind::LengthMismatch`],
    /// [`ErrorKind::Checksum`], [`ErrorKind::InvalidStop`].
    pub fn parse(buf: &'a [u8], base: usize) -> Result<Self> {
        Self::parse_with(buf, base, true)
    }

    /// [`LongFrame::parse`], the checksum checked only when `verify_checksum`
    /// (for dumps whose checksum is known to be stale, e.g. after the bytes
    /// were redacted by hand); start bytes, L-fields and stop byte are always
    /// checked.
    ///
    /// # Errors
    /// As [`LongFrame::parse`], without [`ErrorKind::Checksum`] when
    /// `verify_checksum` is false.
    pub fn parse_with(buf: &'a [u8], base: usize, verify_checksum: bool) -> Result<Self> {
        let header = buf.get(..field::BODY).ok_or_else(|| {
            DecodeError::new(
                ErrorKind::Truncated {
                    needed: field::BODY - buf.len(),
                },
                base + buf.len(),
            )
        })?;
        for at in [field::START1, field::START2] {
            let found = header.get(at).copied().unwrap_or(0);
            if found != START {
                return Err(DecodeError::new(
                    ErrorKind::InvalidStart { found },
                    base + at,
                ));
            }
        }
        let first = header.get(field::L1).copied().unwrap_or(0);
        let second = header.get(field::L2).copied().unwrap_or(0);
        if first != second {
            return Err(DecodeError::new(
                ErrorKind::LengthMismatch { first, second },
                base + field::L2,
            ));
        }
        let declared = usize::from(first);
        let truncated = |len: usize| {
            DecodeError::new(
                ErrorKind::Truncated {
                    needed: field::total(len) - buf.len(),
                },
                base + buf.len(),
            )
        };
        let plain = if declared >= field::MIN_BODY {
            match verify(buf, declared, base, verify_checksum) {
                Ok(Some(())) => return Self::build(buf, declared, base),
                Ok(None) => return Err(truncated(declared)),
                Err(e) => e,
            }
        } else {
            Self::too_short(declared, base)
        };
        // Sagemcom T210-D: the real body is 256 bytes longer than the L-field says.
        // Only an L-field too small to be a frame waits for the longer body; a
        // frame that failed its own checks is rejected unless the longer one
        // verifies with the bytes already here.
        match verify(buf, declared + 256, base, verify_checksum) {
            Ok(Some(())) => Self::build(buf, declared + 256, base),
            Ok(None) if declared < field::MIN_BODY => Err(truncated(declared + 256)),
            _ => Err(plain),
        }
    }

    /// The frame view over a verified body of `len` bytes.
    fn build(buf: &'a [u8], len: usize, base: usize) -> Result<Self> {
        let body = buf.get(field::body(len)).unwrap_or(&[]);
        let (&control, &address, &ci, data) = match body {
            [c, a, ci, data @ ..] => (c, a, ci, data),
            _ => return Err(Self::too_short(len, base)),
        };
        Ok(LongFrame {
            control,
            address,
            ci,
            data,
            data_offset: base + field::CI + 1,
            ci_offset: base + field::CI,
            frame_len: field::total(len),
            body_len: len,
        })
    }

    fn too_short(len: usize, base: usize) -> DecodeError {
        DecodeError::new(
            ErrorKind::Truncated {
                needed: field::MIN_BODY - len,
            },
            base + field::L1,
        )
    }

    /// Builds a long frame around `body` (C-field, A-field, CI-field and data),
    /// computing L-field and checksum. Used by tests, the simulator and fuzzing.
    ///
    /// A body longer than 255 bytes is written with L = len mod 256, as the
    /// Sagemcom firmware does.
    pub fn emit(body: &[u8]) -> Vec<u8> {
        let l = (body.len() % 256) as u8;
        let mut out = Vec::with_capacity(body.len() + 6);
        out.extend_from_slice(&[START, l, l, START]);
        out.extend_from_slice(body);
        out.push(sum(body));
        out.push(STOP);
        out
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    // Second frame of the Netz NÖ documentation example (Kaifa MA309M).
    static FRAME: [u8; 26] = [
        0x68, 0x14, 0x14, 0x68, 0x53, 0xFF, 0x11, 0x01, 0x67, 0xFC, 0x5A, 0x0C, 0xA2, 0x40, 0x0D,
        0xEF, 0xE0, 0xE5, 0xE4, 0x0C, 0x79, 0x35, 0x08, 0x3B, 0x00, 0x16,
    ];

    fn fixed(mut f: Vec<u8>) -> Vec<u8> {
        // recompute checksum of a hand-edited frame
        let n = f.len();
        let cs = sum(&f[4..n - 2]);
        f[n - 2] = cs;
        f
    }

    #[test]
    fn deconstruct() {
        let f = fixed(FRAME.to_vec());
        let frame = LongFrame::parse(&f, 10).unwrap();
        assert_eq!(frame.control, 0x53);
        assert_eq!(frame.address, 0xFF);
        assert_eq!(frame.ci, 0x11);
        assert_eq!(frame.data.len(), 0x14 - 3);
        assert_eq!(frame.data[..2], [0x01, 0x67]);
        assert_eq!(frame.data_offset, 17);
        assert_eq!(frame.frame_len, 26);
    }

    #[test]
    fn emit_then_parse() {
        let body = [0x53, 0xFF, 0x10, 0x01, 0x67, 0xAA];
        let f = LongFrame::emit(&body);
        assert_eq!(f[..4], [0x68, 6, 6, 0x68]);
        let frame = LongFrame::parse(&f, 0).unwrap();
        assert_eq!(frame.data, &[0x01, 0x67, 0xAA]);
    }

    #[test]
    fn sagemcom_257_byte_body() {
        let mut body = vec![0x53, 0xFF, 0x00, 0x01, 0x67];
        body.resize(257, 0x42);
        let f = LongFrame::emit(&body);
        assert_eq!(f[1], 1);
        let frame = LongFrame::parse(&f, 0).unwrap();
        assert_eq!(frame.body_len, 257);
        assert_eq!(frame.frame_len, 263);
        // Too short to decide: need the rest of the long body.
        let e = LongFrame::parse(&f[..100], 0).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::Truncated { .. }), "{e}");
    }

    #[test]
    fn sagemcom_body_whose_first_byte_looks_like_a_frame() {
        // C = A = CI = 0x16: read with L = 1 the "frame" 68 01 01 68 16 16 16
        // verifies, but it is too short to be one; the 257-byte body is the frame.
        let mut body = vec![0x16, 0x16, 0x16];
        body.resize(257, 0x00);
        let f = LongFrame::emit(&body);
        let frame = LongFrame::parse(&f, 0).unwrap();
        assert_eq!(frame.body_len, 257);
        assert_eq!(frame.ci, 0x16);
    }

    #[test]
    fn errors_name_the_byte() {
        let f = fixed(FRAME.to_vec());
        let mut bad = f.clone();
        bad[24] ^= 0xFF;
        let e = LongFrame::parse(&bad, 0).unwrap_err();
        assert_eq!(e.offset, 24);
        assert!(matches!(e.kind, ErrorKind::Checksum { .. }));
        let mut bad = f.clone();
        bad[25] = 0x17;
        assert_eq!(
            LongFrame::parse(&bad, 0).unwrap_err(),
            DecodeError::new(ErrorKind::InvalidStop { found: 0x17 }, 25)
        );
        let mut bad = f.clone();
        bad[2] = 0x15;
        assert_eq!(LongFrame::parse(&bad, 0).unwrap_err().offset, 2);
        let e = LongFrame::parse(&f[..20], 0).unwrap_err();
        assert_eq!(e, DecodeError::new(ErrorKind::Truncated { needed: 6 }, 20));
        assert!(LongFrame::parse(&[0x68, 0x00, 0x00, 0x68, 0x00, 0x16], 0).is_err());
        assert!(LongFrame::parse(&[], 0).is_err());
    }

    #[test]
    fn checksum_check_can_be_skipped() {
        let mut bad = fixed(FRAME.to_vec());
        bad[24] ^= 0xFF;
        let frame = LongFrame::parse_with(&bad, 0, false).unwrap();
        assert_eq!(frame.frame_len, 26);
        assert_eq!(frame.ci, 0x11);
        // The other checks stay.
        bad[25] = 0x17;
        assert_eq!(
            LongFrame::parse_with(&bad, 0, false).unwrap_err(),
            DecodeError::new(ErrorKind::InvalidStop { found: 0x17 }, 25)
        );
    }
}

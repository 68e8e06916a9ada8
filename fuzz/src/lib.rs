//! Helpers shared by the fuzz targets: the invariants every decoder must keep on
//! arbitrary bytes, fixed keys, and builders that wrap fuzzer bytes in valid
//! framing (checksums fixed up) so the fuzzer reaches the layers behind it.

use mbuspico::dlms::{hdlc, Key, Keys};
use mbuspico::DecodeError;
use std::fmt::Debug;
use std::sync::OnceLock;

/// Asserts the error invariants: the offset points into (or just past) the
/// input, and the message is not empty.
pub fn check_err(e: &DecodeError, input_len: usize, what: &str) {
    assert!(
        e.offset <= input_len,
        "{what}: error offset {} beyond {input_len} bytes: {e}",
        e.offset
    );
    assert!(!e.to_string().is_empty(), "{what}: empty error message");
}

/// Asserts that two decodes of the same input are the same: equal, or (NaN
/// values compare unequal) equal in their `Debug` text.
pub fn same<T: Debug + PartialEq>(a: &T, b: &T, what: &str) {
    if a != b {
        assert_eq!(
            format!("{a:?}"),
            format!("{b:?}"),
            "{what}: not deterministic"
        );
    }
}

/// Checks a decoder result on `input`: an error keeps [`check_err`]; a success
/// is deterministic (decoding again gives the same value, see [`same`]).
pub fn check<T: Debug + PartialEq>(
    input: &[u8],
    what: &str,
    decode: impl Fn(&[u8]) -> Result<T, DecodeError>,
) -> Option<T> {
    match decode(input) {
        Ok(v) => {
            match decode(input) {
                Ok(w) => same(&v, &w, what),
                Err(e) => panic!("{what}: decoded once, then failed: {e}"),
            }
            Some(v)
        }
        Err(e) => {
            check_err(&e, input.len(), what);
            None
        }
    }
}

/// [`check`] for a decoder whose value borrows from the input.
#[macro_export]
macro_rules! check_borrowed {
    ($input:expr, $what:expr, $decode:path) => {{
        let input: &[u8] = $input;
        match $decode(input) {
            Ok(v) => {
                match $decode(input) {
                    Ok(w) => $crate::same(&v, &w, $what),
                    Err(e) => panic!("{}: decoded once, then failed: {e}", $what),
                }
                Some(v)
            }
            Err(e) => {
                $crate::check_err(&e, input.len(), $what);
                None
            }
        }
    }};
}

/// Fixed keys: encryption key 07…07, authentication key 09…09.
pub fn keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| Keys {
        key: Some(Key::new([7; 16])),
        auth_key: Some(Key::new([9; 16])),
        ..Keys::default()
    })
}

/// The fixed keys with the GCM tag check skipped (the decryption goes on to
/// the plaintext parser even though the tag cannot verify).
pub fn keys_skip_tag() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| Keys {
        skip_tag_check: true,
        ..keys().clone()
    })
}

/// DSMR options as `dsmr::decode` gets them by default (built once: the time
/// zone lookup is not free).
pub fn dsmr_options() -> &'static mbuspico::dsmr::Options {
    static O: OnceLock<mbuspico::dsmr::Options> = OnceLock::new();
    O.get_or_init(mbuspico::dsmr::Options::default)
}

/// One HDLC type 3 frame around `info` with valid HCS and FCS (no HCS when
/// `info` is empty, as IEC 62056-46 frames without information field have).
pub fn hdlc_frame(segmented: bool, control: u8, info: &[u8]) -> Vec<u8> {
    let destination = [0xCE, 0xFF];
    let source = [0x03];
    let header_len = 2 + destination.len() + source.len() + 1;
    let length = if info.is_empty() {
        header_len + 2
    } else {
        header_len + 2 + info.len() + 2
    };
    let mut f0 = hdlc::FORMAT_TYPE_3 | ((length >> 8) as u8 & 0x07);
    if segmented {
        f0 |= hdlc::SEGMENTATION;
    }
    let mut frame = vec![f0, (length & 0xFF) as u8];
    frame.extend_from_slice(&destination);
    frame.extend_from_slice(&source);
    frame.push(control);
    if !info.is_empty() {
        let hcs = hdlc::crc16_x25(&frame);
        frame.extend_from_slice(&hcs.to_le_bytes());
        frame.extend_from_slice(info);
    }
    let fcs = hdlc::crc16_x25(&frame);
    frame.extend_from_slice(&fcs.to_le_bytes());
    let mut out = Vec::with_capacity(frame.len() + 2);
    out.push(hdlc::FLAG);
    out.extend_from_slice(&frame);
    out.push(hdlc::FLAG);
    out
}

/// Most information bytes one built HDLC frame carries (its 11-bit length
/// field must hold header, HCS, information and FCS).
pub const MAX_HDLC_INFO: usize = hdlc::MAX_LENGTH - 11;

/// HDLC frames built from fuzzer bytes, each `[h, n, info…]`: bit 0 of `h`
/// sets the segmentation bit, bit 1 picks control 0x03 instead of UI 0x13,
/// bits 2–4 are the high bits of the information length (`n` the low byte).
/// Returns the wire bytes and the number of frames.
pub fn hdlc_frames(mut data: &[u8]) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let mut frames = 0;
    while let [h, n, rest @ ..] = data {
        let len = ((usize::from(*h >> 2) & 7) << 8 | usize::from(*n))
            .min(rest.len())
            .min(MAX_HDLC_INFO);
        let (info, tail) = rest.split_at(len);
        let control = if h & 2 == 0 { hdlc::CONTROL_UI } else { 0x03 };
        out.extend_from_slice(&hdlc_frame(h & 1 != 0, control, info));
        frames += 1;
        data = tail;
    }
    (out, frames)
}

/// A bit-by-bit CRC-16/ARC (poly 0x8005 reflected = 0xA001, init 0, no final
/// XOR): the reference the table-driven crate CRC is checked against.
pub fn crc16_arc_reference(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// Splits `data` into a chunking plan and the stream: the first byte is a
/// flags byte, its low 4 bits the number `k` of chunk-size bytes that follow
/// (each size is the byte + 1, used in turn); the rest is the stream.
pub fn chunking(data: &[u8]) -> (u8, Vec<usize>, &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return (0, vec![1], &[]);
    };
    let k = usize::from(flags & 0x0F).min(rest.len());
    let (sizes, stream) = rest.split_at(k);
    let mut sizes: Vec<usize> = sizes.iter().map(|&s| usize::from(s) + 1).collect();
    if sizes.is_empty() {
        sizes.push(stream.len().max(1));
    }
    (flags, sizes, stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_crc_check_value() {
        assert_eq!(crc16_arc_reference(b"123456789"), 0xBB3D);
    }

    #[test]
    fn built_frames_parse() {
        let (wire, n) = hdlc_frames(&[0, 3, 0xE6, 0xE7, 0x00]);
        assert_eq!(n, 1);
        assert!(hdlc::HdlcFrame::parse(&wire, 0).is_ok());
    }
}

//! Inputs from the cargo-fuzz targets (`fuzz/`, run by `scripts/fuzz`) replayed
//! through the same public API, with the invariants the targets assert: no
//! panic, every `DecodeError` offset inside the input, the framers account for
//! every byte pushed. Crashes the fuzzer finds are added here as hex literals.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use mbuspico::dlms::{self, hdlc, Key, Keys};
use mbuspico::stream::Deframer;
use mbuspico::{dsmr, mbus, DecodeError, ErrorKind};

/// The fuzz targets' keys: encryption key 07…07, authentication key 09…09.
fn keys() -> Keys {
    Keys {
        key: Some(Key::new([7; 16])),
        auth_key: Some(Key::new([9; 16])),
        ..Keys::default()
    }
}

fn hex(s: &str) -> Vec<u8> {
    mbuspico::hex::decode(s).unwrap()
}

fn inside(e: &DecodeError, len: usize) {
    assert!(e.offset <= len, "{e} beyond {len} bytes");
    assert!(!e.to_string().is_empty());
}

/// Every entry point of the fuzz targets on `input`: errors point inside it.
fn replay(input: &[u8]) {
    for k in [keys(), Keys::default()] {
        if let Err(e) = dlms::decode(input, &k) {
            inside(&e, input.len());
        }
        if let Err(e) = dlms::decrypt_apdu(input, &k) {
            inside(&e, input.len());
        }
    }
    if let Err(e) = mbus::decode(input) {
        inside(&e, input.len());
    }
    if let Err(e) = mbus::LongFrame::parse(input, 0) {
        inside(&e, input.len());
    }
    if let Err(e) = hdlc::HdlcFrame::parse(input, 0) {
        inside(&e, input.len());
    }
    if let Err(e) = hdlc::reassemble(input) {
        inside(&e, input.len());
    }
    if let Err(e) = dsmr::decode(input, &dsmr::Options::default()) {
        inside(&e, input.len());
    }
}

/// The `dsmr_crc` target's reference: CRC-16/ARC bit by bit.
fn crc16_arc_bitwise(bytes: &[u8]) -> u16 {
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

#[test]
fn empty_and_single_byte_inputs() {
    replay(&[]);
    for b in 0..=255u8 {
        replay(&[b]);
    }
    assert_eq!(
        dlms::decode(&[], &keys()).unwrap_err(),
        DecodeError::new(ErrorKind::Empty, 0)
    );
}

#[test]
fn dsmr_crc_matches_the_bitwise_reference() {
    assert_eq!(crc16_arc_bitwise(b"123456789"), 0xBB3D);
    let mut bytes = Vec::new();
    for i in 0..600u32 {
        assert_eq!(dsmr::crc::crc16(&bytes), crc16_arc_bitwise(&bytes), "{i}");
        bytes.push((i.wrapping_mul(2_654_435_761) >> 13) as u8);
    }
}

#[test]
fn hdlc_segment_without_its_successor_is_truncated_at_the_end() {
    // An HDLC push cut after its first (segmented) frame, as the `hdlc` target
    // builds them: a clean "truncated" at the end of the input.
    let wire = hdlc::emit(&[0xDB; 40], &[0xCE, 0xFF], &[0x03], 0x13, 20);
    let first = hdlc::HdlcFrame::parse(&wire, 0).unwrap();
    assert!(first.segmented);
    let cut = &wire[..first.frame_len];
    let e = dlms::decode(cut, &keys()).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Truncated { .. }), "{e}");
    assert_eq!(e.offset, cut.len());
    replay(cut);
}

#[test]
fn framers_account_for_every_byte_of_a_byte_by_byte_stream() {
    // The `deframer` target's invariant on a mixed stream pushed one byte at a time.
    let mut stream = hex("00 68 05 05 68 08 01 72 00 11 84 16 7E A0 07 CE FF 03 13");
    stream.extend_from_slice(&dlms::transport::emit(&[0x0F; 30], 16));
    let p1_start = stream.len();
    stream.extend_from_slice(b"/ISk5\r\n1-0:1.8.1(000001.000*kWh)\r\n!");
    let crc = dsmr::crc::crc16(&stream[p1_start..]);
    stream.extend_from_slice(format!("{crc:04X}\r\n/XYZ").as_bytes());
    let mut d = Deframer::new();
    let mut p1 = dsmr::stream::Framer::new();
    let (mut handed_d, mut handed_p1) = (0, 0);
    for (i, b) in stream.iter().enumerate() {
        d.push(&[*b]);
        p1.push(&[*b]);
        while let Some(t) = d.next_telegram() {
            replay(&t);
            handed_d += t.len();
        }
        while let Some(t) = p1.next_telegram() {
            replay(&t);
            handed_p1 += t.len();
        }
        let pushed = i + 1;
        assert_eq!(
            handed_d + d.stats().bytes_skipped as usize + d.buffered(),
            pushed
        );
        assert_eq!(
            handed_p1 + p1.stats().bytes_skipped as usize + p1.buffered(),
            pushed
        );
    }
    d.finish();
    p1.finish();
    assert_eq!(handed_d + d.stats().bytes_skipped as usize, stream.len());
    assert_eq!(handed_p1 + p1.stats().bytes_skipped as usize, stream.len());
    assert!(handed_d > 0 && handed_p1 > 0, "{handed_d} {handed_p1}");
}

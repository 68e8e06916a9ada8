//! The stream framers on arbitrary bytes in fuzzer-chosen chunks (see
//! `mbuspico_fuzz::chunking`): the M-Bus/HDLC `stream::Deframer` and the P1
//! `dsmr::stream::Framer`. Invariants: after every step the bytes handed out,
//! skipped and still buffered add up to the bytes pushed (nothing after
//! `finish`); every telegram handed out is verified framing and decodes or
//! fails with a `DecodeError` inside it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mbuspico::dlms::{self, hdlc};
use mbuspico::mbus::{self, LongFrame};
use mbuspico::framer::Framer;
use mbuspico::stream::{Deframer, Stats};
use mbuspico::{dsmr, ErrorKind};
use mbuspico_fuzz::{check, check_borrowed, chunking, dsmr_options, keys};

/// Bytes handed out + skipped + buffered == pushed + HDLC flags shared by two
/// frames (those are in both telegrams).
fn balance(what: &str, pushed: usize, handed: usize, stats: Stats, buffered: usize) {
    assert_eq!(
        handed + stats.bytes_skipped as usize + buffered,
        pushed + stats.shared_flags as usize,
        "{what}: handed {handed} + skipped {} + buffered {buffered} != pushed {pushed} + shared {}",
        stats.bytes_skipped,
        stats.shared_flags
    );
}

fn mbus_telegram(t: &[u8]) {
    match t.first() {
        Some(&hdlc::FLAG) => {
            if let Err(e) = hdlc::reassemble(t) {
                panic!("HDLC telegram handed out does not reassemble: {e}");
            }
        }
        Some(&0x68) => {
            if let Err(e) = LongFrame::parse(t, 0) {
                panic!("M-Bus telegram handed out does not parse: {e}");
            }
            check_borrowed!(t, "mbus::decode", mbus::decode);
        }
        other => panic!("telegram handed out starts with {other:02X?}"),
    }
    check(t, "dlms::decode", |d| dlms::decode(d, keys()));
}

fn dsmr_telegram(t: &[u8]) {
    if let Err(e) = dsmr::decode(t, dsmr_options()) {
        assert!(
            t.first() != Some(&b'/') || !matches!(e.kind, ErrorKind::Crc16 { .. }),
            "P1 telegram handed out fails its CRC: {e}"
        );
        mbuspico_fuzz::check_err(&e, t.len(), "dsmr::decode");
    }
}

fuzz_target!(|data: &[u8]| {
    let (flags, sizes, stream) = chunking(data);
    // Bit 4: give encrypted P1 frames (0xDB) back as the decoder does when
    // their tag does not verify.
    let reject_db = flags & 0x10 != 0;

    let mut mbus_d = Deframer::new();
    let mut p1 = Framer::Dsmr(dsmr::stream::Framer::new());
    let (mut mbus_handed, mut p1_handed, mut pushed) = (0usize, 0usize, 0usize);
    let mut rest = stream;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes
            .get(i % sizes.len())
            .copied()
            .unwrap_or(1)
            .min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        i += 1;
        pushed += n;
        mbus_d.push(chunk);
        p1.push(chunk);
        while let Some(t) = mbus_d.next_telegram() {
            mbus_handed += t.len();
            mbus_telegram(&t);
        }
        balance(
            "Deframer",
            pushed,
            mbus_handed,
            mbus_d.stats(),
            mbus_d.buffered(),
        );
        while let Some(t) = p1.next_telegram() {
            if reject_db && t.first() == Some(&0xDB) {
                p1.reject(&t);
                continue;
            }
            p1_handed += t.len();
            dsmr_telegram(&t);
        }
        balance("dsmr Framer", pushed, p1_handed, p1.stats(), p1.buffered());
    }
    mbus_d.finish();
    p1.finish();
    assert_eq!(mbus_d.buffered(), 0);
    assert_eq!(p1.buffered(), 0);
    balance("Deframer finished", pushed, mbus_handed, mbus_d.stats(), 0);
    balance("dsmr Framer finished", pushed, p1_handed, p1.stats(), 0);
});

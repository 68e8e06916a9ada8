//! The linear stream framers (issue 19) against the framers as they were
//! before ([`reference`], kept verbatim): on arbitrary bytes mixed with valid
//! frames, broken frames and adversarial prefixes, in any chunking, the same
//! telegrams at the same calls, the same bytes held back after each push,
//! the same counters, and (M-Bus/HDLC) the same saved state.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod reference;

use mbuspico::dlms::{gbt, hdlc, transport};
use mbuspico::dsmr;
use mbuspico::mbus::LongFrame;
use mbuspico::stream::{Deframer, Stats};
use proptest::prelude::*;

/// What a framer did on a stream: after each push, the telegrams it handed
/// out and the bytes it held back; at the end (after `finish`), the counters.
#[derive(Debug, PartialEq, Eq)]
struct Run {
    steps: Vec<(Vec<Vec<u8>>, usize)>,
    stats: Stats,
}

/// The framer calls the comparison makes, on either implementation.
trait Framing {
    fn push(&mut self, data: &[u8]);
    fn next_telegram(&mut self) -> Option<Vec<u8>>;
    fn finish(&mut self);
    fn stats(&self) -> Stats;
    fn buffered(&self) -> usize;
    /// Gives an encrypted P1 frame back (only the P1 framers do).
    fn reject(&mut self, _telegram: &[u8]) {}
    /// The saved state (only the M-Bus/HDLC deframers have one), and the
    /// framer rebuilt from it.
    fn saved(&mut self) -> Option<serde_json::Value> {
        None
    }
}

macro_rules! framing {
    ($t:ty) => {
        fn push(&mut self, data: &[u8]) {
            <$t>::push(self, data)
        }
        fn next_telegram(&mut self) -> Option<Vec<u8>> {
            <$t>::next_telegram(self)
        }
        fn finish(&mut self) {
            <$t>::finish(self)
        }
        fn stats(&self) -> Stats {
            <$t>::stats(self)
        }
        fn buffered(&self) -> usize {
            <$t>::buffered(self)
        }
    };
}

impl Framing for Deframer {
    framing!(Deframer);
    fn saved(&mut self) -> Option<serde_json::Value> {
        let state = serde_json::to_value(&*self).unwrap();
        // Resume from the saved state: what follows must not change.
        *self = serde_json::from_value(state.clone()).unwrap();
        Some(state)
    }
}

impl Framing for reference::deframer::Deframer {
    framing!(reference::deframer::Deframer);
    fn saved(&mut self) -> Option<serde_json::Value> {
        Some(serde_json::to_value(&*self).unwrap())
    }
}

impl Framing for dsmr::stream::Framer {
    framing!(dsmr::stream::Framer);
    fn reject(&mut self, telegram: &[u8]) {
        dsmr::stream::Framer::reject(self, telegram)
    }
}

impl Framing for reference::p1::Framer {
    framing!(reference::p1::Framer);
    fn reject(&mut self, telegram: &[u8]) {
        reference::p1::Framer::reject(self, telegram)
    }
}

/// Feeds `stream` in pieces of the sizes in `chunks` (cycled), taking every
/// telegram after each push; encrypted P1 frames of odd length are given
/// back (as the decoder does with one whose tag fails), and after the
/// pushes listed in `saves` the state is saved (its JSON is recorded with
/// the telegrams) and resumed from.
fn run(f: &mut impl Framing, stream: &[u8], chunks: &[usize], saves: &[usize]) -> Run {
    let mut steps = Vec::new();
    let mut rest = stream;
    for (i, &c) in chunks.iter().cycle().enumerate() {
        if rest.is_empty() {
            break;
        }
        let (piece, after) = rest.split_at(c.clamp(1, rest.len()));
        rest = after;
        f.push(piece);
        let mut out = Vec::new();
        while let Some(t) = f.next_telegram() {
            if t.first() == Some(&0xDB) && t.len() % 2 == 1 {
                f.reject(&t);
            }
            out.push(t);
        }
        if saves.contains(&i) {
            if let Some(state) = f.saved() {
                out.push(serde_json::to_vec(&state).unwrap());
            }
        }
        steps.push((out, f.buffered()));
    }
    f.finish();
    assert_eq!(f.buffered(), 0);
    Run {
        steps,
        stats: f.stats(),
    }
}

/// The new and the old deframer on `stream`: the same in every respect.
fn same_deframing(stream: &[u8], chunks: &[usize], saves: &[usize]) -> Result<(), TestCaseError> {
    let new = run(&mut Deframer::new(), stream, chunks, saves);
    let old = run(
        &mut reference::deframer::Deframer::new(),
        stream,
        chunks,
        saves,
    );
    prop_assert_eq!(&new, &old, "chunks {:?}", chunks);
    let handed: usize = new
        .steps
        .iter()
        .flat_map(|(out, _)| out)
        .filter(|t| t.first() != Some(&b'{'))
        .map(Vec::len)
        .sum();
    let s = new.stats;
    prop_assert_eq!(
        handed as u64 + s.bytes_skipped,
        stream.len() as u64 + s.shared_flags
    );
    Ok(())
}

/// The new and the old P1 framer on `stream`: the same in every respect.
fn same_p1_framing(stream: &[u8], chunks: &[usize]) -> Result<(), TestCaseError> {
    let new = run(&mut dsmr::stream::Framer::new(), stream, chunks, &[]);
    let old = run(&mut reference::p1::Framer::new(), stream, chunks, &[]);
    prop_assert_eq!(new, old, "chunks {:?}", chunks);
    Ok(())
}

/// An HDLC header (flag, format, addresses 03 and 21, control 13) whose HCS
/// verifies, claiming a frame of `length` bytes that never comes.
fn claiming_header(f0: u8, length: u8) -> Vec<u8> {
    let head = [f0, length, 0x03, 0x21, 0x13];
    let mut out = vec![hdlc::FLAG];
    out.extend_from_slice(&head);
    out.extend_from_slice(&hdlc::crc16_x25(&head).to_le_bytes());
    out
}

/// A piece of an M-Bus/HDLC test stream.
fn frame_piece() -> impl Strategy<Value = Vec<u8>> {
    let apdu = |max: usize| prop::collection::vec(any::<u8>(), 1..max);
    let address = prop::sample::select(vec![
        vec![0x03u8],
        vec![0xCE, 0xFF],
        vec![0x02, 0x02, 0x02, 0x23],
    ]);
    prop_oneof![
        // Garbage, plain and rich in start bytes.
        prop::collection::vec(any::<u8>(), 0..40),
        prop::collection::vec(
            prop_oneof![
                Just(0x68u8),
                Just(0x7E),
                Just(0xA0),
                Just(0xA8),
                Just(0x16),
                Just(0xFF),
                any::<u8>()
            ],
            0..30
        ),
        // DLMS pushes in M-Bus segments.
        (apdu(600), 1usize..250).prop_map(|(a, seg)| transport::emit(&a, seg)),
        // EN 13757-3 frames, and Sagemcom bodies of L + 256 bytes.
        (0x20u8..=0xFF, prop::collection::vec(any::<u8>(), 0..60))
            .prop_map(|(ci, data)| mbuspico::mbus::link::emit_long(0x08, 1, ci, &data)),
        (apdu(40), 254usize..262).prop_map(|(a, len)| {
            let mut body = vec![0x53, 0xFF, 0x00, 0x01, 0x67];
            body.extend_from_slice(&a);
            body.resize(len, 0x42);
            LongFrame::emit(&body)
        }),
        // HDLC pushes, segmented or not, and general block transfers.
        (apdu(500), address.clone(), 3usize..300).prop_map(|(a, dest, max)| hdlc::emit(
            &a,
            &dest,
            &[0x21],
            hdlc::CONTROL_UI,
            max
        )),
        (apdu(700), address, 11usize..200).prop_map(|(a, dest, max)| gbt::emit(
            &a,
            &dest,
            &[0x03],
            hdlc::CONTROL_UI,
            max
        )),
        // Adversarial: long-frame headers that never verify, HDLC headers
        // whose HCS verifies claiming long frames, bogus formats.
        (1usize..40).prop_map(|n| [0x68u8, 0xFF, 0xFF, 0x68].repeat(n)),
        (any::<u8>(), 1usize..20).prop_map(|(l, n)| [0x68, l, l, 0x68].repeat(n)),
        (
            prop::sample::select(vec![0xA0u8, 0xA7, 0xA8, 0xAF]),
            any::<u8>(),
            1usize..20
        )
            .prop_map(|(f0, len, n)| claiming_header(f0, len).repeat(n)),
        (1usize..30).prop_map(|n| [0x7E, 0xA0, 0xFF, 0x7E, 0xA8, 0xFF, 0x03].repeat(n)),
    ]
}

/// A stream of pieces, some cut short, some losing their opening flag (a
/// flag shared with the frame before), and a few bytes changed.
fn frame_stream() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(
            (
                frame_piece(),
                prop_oneof![4 => Just(None), 1 => any::<prop::sample::Index>().prop_map(Some)],
                prop::bool::weighted(0.15),
            ),
            0..10,
        ),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
    )
        .prop_map(|(pieces, edits)| {
            let mut out: Vec<u8> = Vec::new();
            for (mut piece, cut, unflag) in pieces {
                if let Some(cut) = cut {
                    piece.truncate(cut.index(piece.len() + 1));
                }
                if unflag && out.last() == Some(&hdlc::FLAG) && piece.first() == Some(&hdlc::FLAG) {
                    piece.remove(0);
                }
                out.extend_from_slice(&piece);
            }
            if !out.is_empty() {
                for (at, byte) in edits {
                    let i = at.index(out.len());
                    out[i] = byte;
                }
            }
            out
        })
}

fn chunking() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        Just(vec![1]),
        Just(vec![4096]),
        Just(vec![usize::MAX]),
        prop::collection::vec(1usize..300, 1..8),
        prop::collection::vec(prop_oneof![Just(1usize), 1usize..8, 100usize..3000], 1..8),
    ]
}

/// A P1 telegram with a CRC, or without one (DSMR 2.2/3.0).
fn p1_telegram(lines: &[(u8, u32)], crc: bool) -> Vec<u8> {
    let mut t = b"/ISK5\\2M550T-1013\r\n\r\n".to_vec();
    for (k, v) in lines {
        t.extend_from_slice(
            format!("1-0:{}.8.1({v:06}.{:03}*kWh)\r\n", k % 3, v % 1000).as_bytes(),
        );
    }
    t.push(b'!');
    if crc {
        let c = dsmr::crc::crc16(&t);
        t.extend_from_slice(format!("{c:04X}").as_bytes());
    }
    t.extend_from_slice(b"\r\n");
    t
}

/// A piece of a P1 test stream.
fn p1_piece() -> impl Strategy<Value = Vec<u8>> {
    let lines = prop::collection::vec((any::<u8>(), any::<u32>()), 0..4);
    prop_oneof![
        (lines.clone(), any::<bool>()).prop_map(|(l, crc)| p1_telegram(&l, crc)),
        // A bad CRC.
        lines.clone().prop_map(|l| {
            let mut t = p1_telegram(&l, true);
            let n = t.len();
            t[n - 3] = if t[n - 3] == b'0' { b'1' } else { b'0' };
            t
        }),
        // Headers over and over, never a `!` (and a line that looks like one).
        (1usize..30)
            .prop_map(|n| { b"/ISK5\\2M550T-1013\r\n\r\n1-0:1.8.1(000123.456*kWh)\r\n".repeat(n) }),
        (1usize..10).prop_map(|n| b"/KFM5KAIFA\r\n!x\r\n1-0:1.8.1(1)!12\r\n".repeat(n)),
        // Smarty frames: DB 08, system title, length (short or 81/82 form).
        (
            prop::collection::vec(any::<u8>(), 0..300),
            prop::sample::select(vec![0u8, 0x81, 0x82, 0x90])
        )
            .prop_map(|(body, form)| {
                let mut f = vec![0xDB, 0x08];
                f.extend_from_slice(b"SYSTEMID");
                match form {
                    0 if body.len() < 0x80 => f.push(body.len() as u8),
                    0 | 0x82 => f.extend_from_slice(&[0x82, 0, body.len() as u8]),
                    0x81 => f.extend_from_slice(&[0x81, body.len() as u8]),
                    other => f.push(other),
                }
                f.extend_from_slice(&body);
                f
            }),
        // Garbage, plain and rich in what the framer looks for.
        prop::collection::vec(any::<u8>(), 0..40),
        prop::collection::vec(
            prop::sample::select(b"/!\r\n)(ABCDEFabcdef0123456789:*.\xDB\x08".to_vec()),
            0..40
        ),
    ]
}

fn p1_stream() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(
            (
                p1_piece(),
                prop_oneof![4 => Just(None), 1 => any::<prop::sample::Index>().prop_map(Some)],
            ),
            0..10,
        ),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
    )
        .prop_map(|(pieces, edits)| {
            let mut out = Vec::new();
            for (mut piece, cut) in pieces {
                if let Some(cut) = cut {
                    piece.truncate(cut.index(piece.len() + 1));
                }
                out.extend_from_slice(&piece);
            }
            if !out.is_empty() {
                for (at, byte) in edits {
                    let i = at.index(out.len());
                    out[i] = byte;
                }
            }
            out
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn deframer_agrees_with_the_reference(
        stream in frame_stream(),
        chunks in chunking(),
        saves in prop::collection::vec(0usize..40, 0..3),
    ) {
        same_deframing(&stream, &chunks, &saves)?;
    }

    #[test]
    fn deframer_agrees_on_any_bytes(
        stream in prop::collection::vec(any::<u8>(), 0..3000),
        chunks in chunking(),
    ) {
        same_deframing(&stream, &chunks, &[])?;
    }

    #[test]
    fn p1_framer_agrees_with_the_reference(stream in p1_stream(), chunks in chunking()) {
        same_p1_framing(&stream, &chunks)?;
    }
}

/// The inputs of the `adversarial_streams` bench (issue 19), shorter.
fn adversarial(len: usize) -> Vec<(&'static str, Vec<u8>)> {
    let repeated = |unit: &[u8]| -> Vec<u8> { unit.iter().copied().cycle().take(len).collect() };
    let claims = [
        claiming_header(0xA0, 0xFF),
        claiming_header(0xA8, 0xFF),
        claiming_header(0xA7, 0xFF),
    ]
    .concat();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let random = (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    vec![
        ("68 FF FF 68", repeated(&[0x68, 0xFF, 0xFF, 0x68])),
        ("HDLC long claims", repeated(&claims)),
        (
            "HDLC bogus headers",
            repeated(&[
                0x7E, 0xA0, 0xFF, 0x7E, 0xA8, 0xFF, 0x03, 0x21, 0x13, 0x00, 0x00,
            ]),
        ),
        ("random", random),
        (
            "P1 headers, no !",
            repeated(b"/ISK5\\2M550T-1013\r\n\r\n1-0:1.8.1(000123.456*kWh)\r\n"),
        ),
    ]
}

#[test]
fn adversarial_streams_agree_with_the_reference() {
    // With a valid telegram after each, so the framers must come out of it.
    let mbus = transport::emit(&[0x11; 300], 245);
    let p1 = p1_telegram(&[(1, 123_456)], true);
    for (name, mut stream) in adversarial(20_000) {
        let is_p1 = name.starts_with("P1");
        stream.extend_from_slice(if is_p1 { &p1 } else { &mbus });
        for chunks in [
            vec![1],
            vec![7],
            vec![4096],
            vec![usize::MAX],
            vec![3, 1000, 1],
        ] {
            if is_p1 {
                same_p1_framing(&stream, &chunks).unwrap();
            } else {
                same_deframing(&stream, &chunks, &[2, 50]).unwrap();
            }
        }
    }
}

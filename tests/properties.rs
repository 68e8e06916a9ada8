//! Property tests on arbitrary bytes: the decoders return a value or a
//! `DecodeError` pointing into the input, never panic; the deframer hands out only
//! verified telegrams whatever the chunking.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use mbuspico::dlms::{self, transport, Key, Keys};
use mbuspico::mbus::LongFrame;
use mbuspico::stream::Deframer;
use proptest::prelude::*;

fn keys() -> Keys {
    Keys {
        key: Some(Key::new([7; 16])),
        auth_key: Some(Key::new([9; 16])),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decode_any_bytes(first in prop::sample::select(vec![0x68u8, 0xDB, 0x0F, 0x00]),
                        rest in prop::collection::vec(any::<u8>(), 0..600)) {
        let mut input = vec![first];
        input.extend_from_slice(&rest);
        for k in [keys(), Keys::default()] {
            if let Err(e) = dlms::decode(&input, &k) {
                prop_assert!(e.offset <= input.len(), "{e} beyond {} bytes", input.len());
                prop_assert!(!e.to_string().is_empty());
            }
        }
    }

    #[test]
    fn framed_any_apdu(apdu in prop::collection::vec(any::<u8>(), 1..800), seg in 1usize..250) {
        // Well-framed garbage: framing passes, the APDU layers must fail cleanly or decode.
        let wire = transport::emit(&apdu, seg);
        let r = transport::reassemble(&wire).unwrap();
        prop_assert_eq!(&r.apdu, &apdu);
        prop_assert_eq!(r.consumed, wire.len());
        for i in 0..apdu.len() {
            prop_assert_eq!(wire[r.map.to_input(i)], apdu[i]);
        }
        let _ = dlms::decode(&wire, &keys());
    }

    #[test]
    fn long_frame_emit_parse(body in prop::collection::vec(any::<u8>(), 3..255)) {
        let wire = LongFrame::emit(&body);
        let f = LongFrame::parse(&wire, 0).unwrap();
        prop_assert_eq!(f.frame_len, wire.len());
        prop_assert_eq!(f.data, &body[3..]);
    }

    #[test]
    fn deframer_any_chunking(garbage in prop::collection::vec(any::<u8>(), 0..300),
                             apdu in prop::collection::vec(any::<u8>(), 1..600),
                             chunks in prop::collection::vec(1usize..64, 1..20)) {
        let telegram = transport::emit(&apdu, 245);
        let mut stream = garbage.clone();
        stream.extend_from_slice(&telegram);
        let mut d = Deframer::new();
        let mut out = Vec::new();
        let mut pos = 0;
        let mut i = 0;
        while pos < stream.len() {
            let n = chunks[i % chunks.len()].min(stream.len() - pos);
            d.push(&stream[pos..pos + n]);
            pos += n;
            i += 1;
            while let Some(t) = d.next_telegram() {
                out.push(t);
            }
        }
        d.finish();
        // Every telegram handed out reassembles; nothing is lost or invented.
        for t in &out {
            prop_assert!(transport::reassemble(t).is_ok());
        }
        let s = d.stats();
        let handed: usize = out.iter().map(Vec::len).sum();
        prop_assert_eq!(s.bytes_skipped as usize + handed, stream.len());
        // Garbage cannot hide a telegram that follows it unless a garbage frame
        // candidate overlaps it; when the garbage has no 0x68 the telegram comes out.
        if !garbage.contains(&0x68) {
            prop_assert_eq!(out.last(), Some(&telegram));
        }
    }
}

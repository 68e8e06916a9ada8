//! Property tests on arbitrary bytes: the decoders return a value or a
//! `DecodeError` pointing into the input, never panic; the deframer hands out only
//! verified telegrams whatever the chunking.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use mbuspico::dlms::{self, transport, Keys};
use mbuspico::mbus::LongFrame;
use mbuspico::stream::Deframer;
use proptest::prelude::*;

mod common;
use common::any_keys as keys;

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
            if let Err(e) = dlms::decrypt_apdu(&input, &k) {
                prop_assert!(e.offset <= input.len(), "{e} beyond {} bytes", input.len());
            }
        }
    }

    #[test]
    fn mutated_real_plaintexts_under_every_profile(
        which in 0usize..4,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        // The object-list (E570, Klagenfurt), Wiener Netze and Burgenland
        // plaintexts with a few bytes changed or cut: every layout walker and
        // every profile check returns a reading or an error inside the input.
        let mut apdu = plaintexts()[which].clone();
        for (at, byte) in &edits {
            let i = at.index(apdu.len());
            apdu[i] = *byte;
        }
        if truncate {
            apdu.truncate(cut.index(apdu.len()) + 1);
        }
        for p in mbuspico::profile::PROFILES {
            match dlms::decode_as(&apdu, &Keys::default(), Some(p)) {
                Ok(r) => prop_assert!(p.layout.is_none() || p.layout == Some(r.layout)),
                Err(e) => prop_assert!(e.offset <= apdu.len(), "{e} beyond {}", apdu.len()),
            }
        }
        if let Err(e) = dlms::decode(&apdu, &Keys::default()) {
            prop_assert!(e.offset <= apdu.len());
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
        let _ = dlms::decrypt_apdu(&wire, &keys());
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

mod mbus {
    use super::*;
    use mbuspico::mbus::data::{self, Application, Header, RecordSpec};
    use mbuspico::mbus::link;

    /// Data codes with fixed lengths (no LVAR, no 0x8/0xF).
    const CODES: [(u8, usize); 12] = [
        (0x0, 0),
        (0x1, 1),
        (0x2, 2),
        (0x3, 3),
        (0x4, 4),
        (0x5, 4),
        (0x6, 6),
        (0x7, 8),
        (0x9, 1),
        (0xA, 2),
        (0xB, 3),
        (0xC, 4),
    ];

    fn spec() -> impl Strategy<Value = RecordSpec> {
        (
            0usize..CODES.len(),
            0u8..0x40,
            prop::collection::vec(any::<u8>(), 0..4),
            // Primary VIFs except the plain-text 0x7C and extension escapes.
            (0u8..0x7B).prop_filter("no 7C", |v| *v != 0x7C),
            prop::collection::vec(any::<u8>(), 0..3),
            prop::collection::vec(any::<u8>(), 8),
        )
            .prop_map(|(code, top, dife, vif, vife, bytes)| {
                let (c, len) = CODES[code];
                RecordSpec {
                    dif: (top & 0x70) | c,
                    dife: dife.iter().map(|b| b & 0x7F).collect(),
                    vif,
                    vife: vife.iter().map(|b| b & 0x7F).collect(),
                    data: bytes[..len].to_vec(),
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// Frames our encoder builds decode to the records they were built from.
        #[test]
        fn encode_decode_round_trip(records in prop::collection::vec(spec(), 0..12),
                                    id in any::<[u8; 4]>(), mfr in any::<u16>()) {
            let header = Header { id, manufacturer: mfr & 0x7FFF, version: 1, medium: 4,
                                  access_number: 9, status: 0, signature: [0, 0], long: true };
            let data = data::emit_variable(&header, &records);
            prop_assume!(data.len() <= 252);
            let frame = link::emit_long(0x08, 1, 0x72, &data);
            let (_, app) = mbuspico::mbus::parse_telegram(&frame).unwrap();
            let Application::Variable { header: h, records: got, more_records_follow } = app else {
                panic!("variable data expected");
            };
            prop_assert_eq!(h, header);
            prop_assert!(!more_records_follow);
            prop_assert_eq!(got.len(), records.len());
            for (g, want) in got.iter().zip(&records) {
                prop_assert_eq!(g.dif & 0x7F, want.dif);
                prop_assert_eq!(g.dife.iter().map(|b| b & 0x7F).collect::<Vec<_>>(), want.dife.clone());
                let vib = g.vib.as_ref().unwrap();
                prop_assert_eq!(vib.vif & 0x7F, want.vif);
                prop_assert_eq!(vib.vife.iter().map(|b| b & 0x7F).collect::<Vec<_>>(), want.vife.clone());
                prop_assert_eq!(g.data, want.data.as_slice());
            }
            // Both XML flavours render every frame we can build.
            prop_assert!(mbuspico::mbus::to_xml(&[&frame], true).is_ok());
        }

        /// Any bytes behind a valid long-frame envelope: a reading or a typed error.
        #[test]
        fn any_application_data(ci in any::<u8>(), data in prop::collection::vec(any::<u8>(), 0..252)) {
            let frame = link::emit_long(0x08, 1, ci, &data);
            match mbuspico::mbus::decode(&frame) {
                Ok(r) => prop_assert_eq!(r.ci, ci),
                Err(e) => prop_assert!(e.offset <= frame.len(), "{}", e),
            }
            let _ = mbuspico::mbus::to_xml(&[&frame], false);
            let _ = mbuspico::mbus::to_xml(&[&frame], true);
        }

        /// Any bytes at all.
        #[test]
        fn any_bytes(first in prop::sample::select(vec![0x68u8, 0x10, 0xE5, 0x00]),
                     rest in prop::collection::vec(any::<u8>(), 0..300)) {
            let mut input = vec![first];
            input.extend_from_slice(&rest);
            if let Err(e) = mbuspico::mbus::decode(&input) {
                prop_assert!(e.offset <= input.len(), "{}", e);
            }
        }
    }
}

/// Decrypted plaintexts of real pushes with the layouts that carry no scaler or
/// no OBIS codes (from `tests/data/dlms/vectors.json`).
fn plaintexts() -> &'static Vec<Vec<u8>> {
    static P: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    P.get_or_init(|| {
        let all = common::vectors();
        let get = |id: &str| {
            let v = all.iter().find(|v| v["id"] == id).unwrap();
            let keys = Keys {
                skip_tag_check: true,
                ..common::keys(v)
            };
            dlms::decrypt_apdu(&common::bytes(v, "hex"), &keys).unwrap()
        };
        vec![
            get("sdc_lg_e570_encrypted"),
            get("klagenfurt_lg_e450_gbt_zero_key"),
            get("wienernetze_siemens_im350"),
            get("amsreader_gh501_1_lg_e450_burgenland"),
        ]
    })
}

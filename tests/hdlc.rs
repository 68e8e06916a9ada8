//! HDLC framing (IEC 62056-46) on the real frames in `tests/data/dlms/vectors.json`:
//! every HDLC vector parses with HCS and FCS verified, the keyed ones decrypt to the
//! recorded plaintext, corruption is a checksum error at the HCS or FCS, truncation
//! is an error (never a panic), and arbitrary bytes after `0x7E` fail cleanly.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use mbuspico::dlms::gbt;
use mbuspico::dlms::hdlc::{self, HdlcFrame};
use mbuspico::dlms::obis::Obis;
use mbuspico::dlms::reading::Value;
use mbuspico::dlms::{self, Key, Keys};
use mbuspico::stream::{Deframer, Stats};
use mbuspico::{Category, DecodeError, ErrorKind};
use proptest::prelude::*;
use serde_json::Value as Json;

mod common;
use common::{any_keys as keys_any, bytes, keys, vectors};

fn hdlc_vectors() -> Vec<Json> {
    let v: Vec<Json> = vectors()
        .into_iter()
        .filter(|v| {
            v["framing"]
                .as_str()
                .is_some_and(|f| f == "hdlc" || f == "hdlc+gbt")
        })
        .collect();
    assert!(
        v.len() >= 10,
        "expected the HDLC vectors, found {}",
        v.len()
    );
    v
}

fn is_gbt(v: &Json) -> bool {
    v["framing"] == "hdlc+gbt"
}

/// All frames of a vector, back to back.
fn frames(wire: &[u8]) -> Vec<HdlcFrame<'_>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < wire.len() {
        let f = HdlcFrame::parse(wire, pos).unwrap_or_else(|e| panic!("frame at {pos}: {e}"));
        pos += f.frame_len;
        out.push(f);
    }
    assert_eq!(pos, wire.len());
    out
}

#[test]
fn every_vector_parses_with_hcs_and_fcs() {
    for v in hdlc_vectors() {
        let id = v["id"].as_str().unwrap();
        let wire = bytes(&v, "hex");
        let fs = frames(&wire);
        for f in &fs {
            assert_eq!(f.control, hdlc::CONTROL_UI, "{id}");
            assert!(f.hcs_offset.is_some(), "{id}");
            let hcs = f.hcs_offset.unwrap();
            let given = u16::from_le_bytes([wire[hcs], wire[hcs + 1]]);
            assert_eq!(given, hdlc::crc16_x25(&wire[f.start + 1..hcs]), "{id}");
        }
        let first = &fs[0];
        assert!(first.info.starts_with(&hdlc::LLC), "{id}");
        let r = hdlc::reassemble(&wire).unwrap();
        println!(
            "{id}: {} frame(s) {:?}, dest {:02X?} src {:02X?}, HCS+FCS ok, APDU {} bytes starting {:02X}, consumed {}/{}",
            fs.len(),
            fs.iter().map(|f| f.frame_len).collect::<Vec<_>>(),
            first.destination,
            first.source,
            r.apdu.len(),
            r.apdu[0],
            r.consumed,
            wire.len()
        );
        if is_gbt(&v) {
            // Each GBT block is its own unsegmented frame; the first is the whole HDLC APDU.
            assert_eq!(r.apdu[0], hdlc::GENERAL_BLOCK_TRANSFER, "{id}");
            assert_eq!(r.consumed, first.frame_len, "{id}");
        } else {
            assert_eq!(fs.len(), 1, "{id}");
            assert_eq!(r.apdu[0], 0xDB, "{id}");
            assert_eq!(r.consumed, wire.len(), "{id}");
            assert_eq!(r.apdu, first.info[3..], "{id}");
        }
    }
}

#[test]
fn keyed_vectors_decrypt_to_plaintext() {
    let mut decrypted = 0;
    for v in hdlc_vectors() {
        let id = v["id"].as_str().unwrap();
        let wire = bytes(&v, "hex");
        let k = keys(&v);
        let got = dlms::decrypt_apdu(&wire, &k);
        if is_gbt(&v) {
            // Reassembled and checked in `gbt_vectors_reassemble_and_decrypt`.
        } else if k.key.is_some() {
            let plain = got.unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!(plain, bytes(&v, "plaintext_hex"), "{id}");
            decrypted += 1;
            let decoded = dlms::decode(&wire, &k);
            println!(
                "{id}: decrypted {} bytes = plaintext_hex; decode: {}",
                plain.len(),
                match decoded {
                    Ok(r) => format!("ok, {} OBIS values", r.obis.0.len()),
                    Err(e) => format!("{e} (layouts not part of this piece)"),
                }
            );
        } else {
            let e = got.unwrap_err();
            assert_eq!(e.kind, ErrorKind::MissingKey, "{id}");
            println!("{id}: {e}");
        }
    }
    // Wiener Netze Siemens, Iskra, L+G and the two Burgenland (tag verified) ones.
    assert_eq!(decrypted, 5);
}

#[test]
fn burgenland_tag_needs_the_auth_key() {
    let v = hdlc_vectors()
        .into_iter()
        .find(|v| v["id"] == "amsreader_gh501_1_lg_e450_burgenland")
        .unwrap();
    let wire = bytes(&v, "hex");
    let mut k = keys(&v);
    k.auth_key = None;
    let e = dlms::decrypt_apdu(&wire, &k).unwrap_err();
    assert_eq!(e.kind, ErrorKind::MissingAuthKey);
    k.auth_key = Some(Key::new([0; 16]));
    let e = dlms::decrypt_apdu(&wire, &k).unwrap_err();
    assert_eq!(e.kind, ErrorKind::AuthenticationFailed);
}

#[test]
fn bit_flips_are_caught_at_the_hcs_or_fcs() {
    for v in hdlc_vectors() {
        let id = v["id"].as_str().unwrap();
        let wire = bytes(&v, "hex");
        let k = keys(&v);
        let f = HdlcFrame::parse(&wire, 0).unwrap();
        let hcs = f.hcs_offset.unwrap();
        let fcs = f.fcs_offset;
        let dest = 3..3 + f.destination.len();
        let src = dest.end..dest.end + f.source.len();
        for i in 0..f.frame_len {
            for bit in 0..8 {
                let mut w = wire.clone();
                w[i] ^= 1 << bit;
                let e = dlms::decrypt_apdu(&w, &k).unwrap_err();
                let hcs_error = DecodeError::new(
                    ErrorKind::HdlcCrc {
                        field: "HCS",
                        given: u16::from_le_bytes([w[hcs], w[hcs + 1]]),
                        computed: hdlc::crc16_x25(&w[1..hcs]),
                    },
                    hcs,
                );
                if i == 0 {
                    assert_eq!(
                        e,
                        DecodeError::new(ErrorKind::UnknownFraming { found: w[0] }, 0),
                        "{id} byte {i} bit {bit}"
                    );
                } else if i == f.frame_len - 1 {
                    assert_eq!(
                        e,
                        DecodeError::new(ErrorKind::InvalidHdlcFlag { found: w[i] }, i),
                        "{id} byte {i} bit {bit}"
                    );
                } else if i == 1 && bit >= 4 {
                    assert_eq!(
                        e,
                        DecodeError::new(ErrorKind::InvalidHdlcFormat { found: w[1] }, 1),
                        "{id} byte {i} bit {bit}"
                    );
                } else if (dest.contains(&i) || src.contains(&i)) && bit == 0 {
                    // The address ends elsewhere: the HCS is read at another place.
                    assert!(
                        matches!(e.kind.category(), Category::Checksum | Category::Frame),
                        "{id} byte {i} bit {bit}: {e}"
                    );
                } else if i < hcs + 2 {
                    if matches!(e.kind, ErrorKind::HdlcCrc { field: "FCS", .. }) {
                        // The flipped length says "no information field": the CRC
                        // at the same place is then the FCS.
                        assert_eq!(e.offset, hcs, "{id} byte {i} bit {bit}");
                        assert_eq!(i, 2, "{id} byte {i} bit {bit}");
                    } else {
                        assert_eq!(e, hcs_error, "{id} byte {i} bit {bit}");
                    }
                } else {
                    assert!(
                        matches!(e.kind, ErrorKind::HdlcCrc { field: "FCS", .. }),
                        "{id} byte {i} bit {bit}: {e}"
                    );
                    assert_eq!(e.offset, fcs, "{id} byte {i} bit {bit}");
                    assert_eq!(e.kind.category(), Category::Checksum);
                }
            }
        }
    }
}

#[test]
fn every_truncation_is_an_error() {
    for v in hdlc_vectors() {
        let id = v["id"].as_str().unwrap();
        let wire = bytes(&v, "hex");
        let k = keys(&v);
        let first_len = HdlcFrame::parse(&wire, 0).unwrap().frame_len;
        for n in 0..wire.len() {
            let cut = &wire[..n];
            let e = dlms::decrypt_apdu(cut, &k).unwrap_err();
            assert!(e.offset <= n, "{id} cut {n}: {e}");
            let _ = dlms::decode(cut, &k).unwrap_err();
            if n < first_len {
                let e = hdlc::reassemble(cut).unwrap_err();
                assert!(
                    matches!(e.kind, ErrorKind::Truncated { needed } if needed >= 1),
                    "{id} cut {n}: {e}"
                );
                assert_eq!(e.offset, n, "{id} cut {n}");
                assert_eq!(e.kind.category(), Category::Frame);
            }
        }
        // After the first HCS is in, a short buffer says how much of the frame is missing.
        let e = HdlcFrame::parse(&wire[..20], 0).unwrap_err();
        assert_eq!(
            e,
            DecodeError::new(
                ErrorKind::Truncated {
                    needed: first_len - 20
                },
                20
            ),
            "{id}"
        );
    }
}

#[test]
fn trailing_bytes_after_the_frame() {
    for v in hdlc_vectors() {
        let Some(suffix) = v["source_extra_suffix_hex"].as_str() else {
            continue;
        };
        let mut wire = bytes(&v, "hex");
        let n = wire.len();
        wire.extend_from_slice(&mbuspico::hex::decode(suffix).unwrap());
        let e = dlms::decrypt_apdu(&wire, &keys(&v)).unwrap_err();
        assert_eq!(
            e,
            DecodeError::new(
                ErrorKind::TrailingBytes {
                    count: wire.len() - n
                },
                n
            )
        );
    }
}

#[test]
fn command_llc_accepted_other_llc_rejected() {
    let v = hdlc_vectors()
        .into_iter()
        .find(|v| v["id"] == "wienernetze_lg_e450")
        .unwrap();
    let wire = bytes(&v, "hex");
    let f = HdlcFrame::parse(&wire, 0).unwrap();
    let (info, fcs) = (f.info_offset, f.fcs_offset);
    let with_llc = |llc: [u8; 3]| {
        let mut w = wire.clone();
        w[info..info + 3].copy_from_slice(&llc);
        let crc = hdlc::crc16_x25(&w[1..fcs]);
        w[fcs..fcs + 2].copy_from_slice(&crc.to_le_bytes());
        w
    };
    let plain = dlms::decrypt_apdu(&with_llc(hdlc::LLC_COMMAND), &keys(&v)).unwrap();
    assert_eq!(plain, bytes(&v, "plaintext_hex"));
    let e = dlms::decrypt_apdu(&with_llc([0xE6, 0xE7, 0x01]), &keys(&v)).unwrap_err();
    assert_eq!(
        e,
        DecodeError::new(
            ErrorKind::InvalidLlc {
                found: vec![0xE6, 0xE7, 0x01]
            },
            info
        )
    );
    assert_eq!(e.kind.category(), Category::Frame);
}

#[test]
fn emitted_vector_apdu_round_trips() {
    for v in hdlc_vectors().into_iter().filter(|v| !is_gbt(v)) {
        let wire = bytes(&v, "hex");
        let f = HdlcFrame::parse(&wire, 0).unwrap();
        let apdu = &f.info[3..];
        // Re-emitting with the meter's own header gives the meter's bytes back.
        let again = hdlc::emit(apdu, f.destination, f.source, f.control, 2000);
        assert_eq!(again, wire, "{}", v["id"]);
    }
}

fn address() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<u8>().prop_map(|a| vec![a | 1]),
        (any::<u8>(), any::<u8>()).prop_map(|(a, b)| vec![a & !1, b | 1]),
        prop::collection::vec(any::<u8>(), 4).prop_map(|mut a| {
            for b in a.iter_mut() {
                *b &= !1;
            }
            a[3] |= 1;
            a
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_bytes_after_flag(format in prop::sample::select(vec![0xA0u8, 0xA8, 0xA7, 0x00]),
                            rest in prop::collection::vec(any::<u8>(), 0..400),
                            take_format in any::<bool>()) {
        let mut input = vec![hdlc::FLAG];
        if take_format {
            input.push(format);
        }
        input.extend_from_slice(&rest);
        if let Err(e) = hdlc::reassemble(&input) {
            prop_assert!(e.offset <= input.len(), "{e} beyond {} bytes", input.len());
            prop_assert!(!e.to_string().is_empty());
        }
        for k in [keys_any(), Keys::default()] {
            if let Err(e) = dlms::decode(&input, &k) {
                prop_assert!(e.offset <= input.len(), "{e} beyond {} bytes", input.len());
            }
            if let Err(e) = dlms::decrypt_apdu(&input, &k) {
                prop_assert!(e.offset <= input.len(), "{e} beyond {} bytes", input.len());
            }
        }
    }

    #[test]
    fn emit_reassemble_round_trip(apdu in prop::collection::vec(any::<u8>(), 0..1500),
                                  dest in address(), src in address(),
                                  max_info in 1usize..300) {
        let wire = hdlc::emit(&apdu, &dest, &src, hdlc::CONTROL_UI, max_info);
        let r = hdlc::reassemble(&wire).unwrap();
        prop_assert_eq!(&r.apdu, &apdu);
        prop_assert_eq!(r.consumed, wire.len());
        for (i, b) in apdu.iter().enumerate() {
            prop_assert_eq!(wire[r.map.to_input(i)], *b);
        }
        // Any cut is an error, at or before the cut.
        let n = wire.len() / 2;
        let e = hdlc::reassemble(&wire[..n]).unwrap_err();
        prop_assert!(e.offset <= n);
        // Framed garbage: the APDU layers fail cleanly or decode.
        let _ = dlms::decode(&wire, &keys_any());
        let _ = dlms::decrypt_apdu(&wire, &keys_any());
    }
}

#[test]
fn unknown_positional_layout_is_refused_not_read_as_zeros() {
    // A clear data-notification (no date-time) whose structure holds three
    // numbers without OBIS codes: no known layout, so no reading.
    let apdu = [
        0x0F, 0, 0, 0, 1, 0x00, 0x02, 0x03, 0x06, 0, 0, 0, 1, 0x06, 0, 0, 0, 2, 0x06, 0, 0, 0, 3,
    ];
    let frame = hdlc::emit(&apdu, &[0xCF], &[0x02, 0x23], hdlc::CONTROL_UI, 200);
    let e = dlms::decode(&frame, &Keys::default()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::UnsupportedLayout);
    assert_eq!(
        e.offset, 12,
        "the APDU's first byte, after flag, header, HCS and LLC"
    );
    // The same body without HDLC framing is generic data and decodes.
    assert!(dlms::decode(&apdu, &Keys::default()).is_ok());
}

fn gbt_vector(id: &str) -> Json {
    hdlc_vectors()
        .into_iter()
        .find(|v| v["id"] == id && is_gbt(v))
        .unwrap_or_else(|| panic!("no GBT vector {id}"))
}

/// The HDLC frames of a GBT vector and the block each carries, as the bytes show:
/// one unsegmented frame per block, LLC only in the first.
#[test]
fn gbt_blocks_sit_one_per_frame() {
    for v in hdlc_vectors().into_iter().filter(is_gbt) {
        let id = v["id"].as_str().unwrap();
        let wire = bytes(&v, "hex");
        for (i, f) in frames(&wire).iter().enumerate() {
            assert!(!f.segmented, "{id}");
            let info = if i == 0 {
                assert!(f.info.starts_with(&hdlc::LLC), "{id}");
                &f.info[3..]
            } else {
                f.info
            };
            let b = gbt::parse_block(info, 0).unwrap();
            assert_eq!(b.number as usize, i + 1, "{id}");
            assert_eq!(b.ack, 0, "{id}");
            assert_eq!(b.end, info.len(), "{id} frame {i}: one block per frame");
            assert_eq!(b.control & gbt::STREAMING, gbt::STREAMING, "{id}");
            println!(
                "{id}: frame {i} at {} block {} control {:02X} data {} bytes",
                f.start,
                b.number,
                b.control,
                b.data.len()
            );
        }
    }
}

#[test]
fn gbt_vectors_reassemble_and_decrypt() {
    // SDC E570: keyed, no tag → the recorded plaintext.
    let v = gbt_vector("sdc_lg_e570_encrypted");
    let wire = bytes(&v, "hex");
    let plain = dlms::decrypt_apdu(&wire, &keys(&v)).unwrap();
    assert_eq!(plain, bytes(&v, "plaintext_hex"));
    // The push with object list, value by value (dlms.md §4.4; the vector's `decoded`).
    let r = dlms::decode(&wire, &keys(&v)).unwrap();
    assert_eq!(r.layout, dlms::reading::Layout::ObjectList);
    assert_eq!(r.active_energy_plus, Some(Value::Int(862_055)));
    assert_eq!(r.active_energy_minus, Some(Value::Int(641_361)));
    assert_eq!(r.power_factor, Some(Value::Float(1.0)));
    assert_eq!(r.timestamp.as_deref(), Some("2024-03-13T09:02:45"));
    let device = r.obis.get(&Obis([0, 0, 42, 0, 0, 255])).unwrap();
    assert_eq!(device.value, Value::Text("LGZ1030769231253".into()));
    // 18 objects less the push setup's two attributes: 16 values.
    assert_eq!(r.obis.0.len(), 16);
    assert_eq!(
        r.obis.get(&Obis([1, 1, 7, 8, 0, 255])).unwrap().value,
        Value::Int(287_389)
    );

    // Klagenfurt E450: all-zero EK and AK.
    let v = gbt_vector("klagenfurt_lg_e450_gbt_zero_key");
    let wire = bytes(&v, "hex");
    let k = keys(&v);
    match dlms::decrypt_apdu(&wire, &k) {
        Ok(plain) => {
            assert_eq!(plain, bytes(&v, "plaintext_hex"));
            println!(
                "klagenfurt: tag verified, {} bytes = plaintext_hex",
                plain.len()
            );
        }
        Err(e) => {
            // dlms.md: the tag did not verify with AK = 0.
            assert_eq!(e.kind, ErrorKind::AuthenticationFailed, "{e}");
            assert!(e.offset <= wire.len());
            // The reassembled ciphertext still decrypts (CTR, zero EK) to the source's plaintext.
            let r = gbt::reassemble(&wire, hdlc::reassemble(&wire).unwrap()).unwrap();
            let h = dlms::security::parse(&r.apdu).unwrap();
            let mut ct = r.apdu[h.ciphertext_start..h.ciphertext_end].to_vec();
            let iv = dlms::cipher::iv(&h.system_title, h.frame_counter);
            dlms::cipher::decrypt_untagged(k.key.as_ref().unwrap(), &iv, &mut ct);
            assert_eq!(ct, bytes(&v, "plaintext_hex"));
            println!("klagenfurt: {e} at {}", e.offset);
        }
    }
    // With the tag check off (the operator hands out no usable AK), it decodes.
    let e = dlms::decode(&wire, &k).unwrap_err();
    assert_eq!(e.kind, ErrorKind::AuthenticationFailed);
    let unchecked = Keys {
        skip_tag_check: true,
        ..k.clone()
    };
    let r = dlms::decode(&wire, &unchecked).unwrap();
    assert_eq!(r.layout, dlms::reading::Layout::ObjectList);
    assert_eq!(r.meter_number.as_deref(), Some("56815930"));
    assert_eq!(r.active_energy_plus, Some(Value::Int(49_805)));
    assert_eq!(r.reactive_energy_plus, Some(Value::Int(4_697)));
    assert_eq!(r.reactive_energy_minus, Some(Value::Int(58_267)));
    assert_eq!(r.voltage_l1, Some(Value::Int(234)));
    assert_eq!(r.timestamp.as_deref(), Some("2023-10-12T14:05:40"));
    assert_eq!(r.frame_counter, Some(0x00B1_CDB5));
    // A wrong key without tag check: the plaintext does not parse.
    let wrong = Keys {
        key: Some(Key::new([1; 16])),
        ..unchecked
    };
    let e = dlms::decode(&wire, &wrong).unwrap_err();
    assert!(
        matches!(e.kind, ErrorKind::ImplausiblePlaintext { .. }),
        "{e}"
    );

    // Steiermark E450 (no key): reassembly reaches decryption.
    let v = gbt_vector("amsreader_em_ct623_lg_e450_steiermark_nokey");
    let wire = bytes(&v, "hex");
    let e = dlms::decrypt_apdu(&wire, &Keys::default()).unwrap_err();
    // The inner APDU's first byte: flag, 2 format, 2+1 addresses, control, HCS, LLC, 6-byte GBT header, 1 length.
    assert_eq!(e, DecodeError::new(ErrorKind::MissingKey, 19));
    assert_eq!(wire[19], 0xDB);
    let e = dlms::decode(&wire, &Keys::default()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::MissingKey);
}

#[test]
fn gbt_without_last_block_is_incomplete() {
    let v = gbt_vector("energyagent_lg_e450_gbt_block1");
    let wire = bytes(&v, "hex");
    let k = keys(&v);
    let e = dlms::decrypt_apdu(&wire, &k).unwrap_err();
    assert_eq!(
        e,
        DecodeError::new(ErrorKind::GbtIncomplete { expected: 2 }, wire.len())
    );
    assert_eq!(e.kind.category(), Category::Frame);
    assert_eq!(e.kind.name(), "gbt_incomplete");
    assert_eq!(dlms::decode(&wire, &k).unwrap_err(), e);
    // Every GBT vector cut after a frame before the last one: the same error.
    for v in hdlc_vectors().into_iter().filter(is_gbt) {
        let wire = bytes(&v, "hex");
        let fs = frames(&wire);
        for (i, f) in fs.iter().enumerate().take(fs.len() - 1) {
            let n = f.start + f.frame_len;
            let e = dlms::decrypt_apdu(&wire[..n], &k).unwrap_err();
            let expected = u16::try_from(i + 2).unwrap();
            assert_eq!(
                e,
                DecodeError::new(ErrorKind::GbtIncomplete { expected }, n),
                "{}",
                v["id"]
            );
        }
    }
}

/// GBT blocks in HDLC frames as the meters send them: LLC only in the first frame.
fn gbt_wire(blocks: &[(u8, u16, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (control, number, data)) in blocks.iter().enumerate() {
        let mut apdu = vec![gbt::TAG, *control];
        apdu.extend_from_slice(&number.to_be_bytes());
        apdu.extend_from_slice(&[0, 0]);
        match data.len() {
            n if n < 0x80 => apdu.push(n as u8),
            n if n < 0x100 => apdu.extend_from_slice(&[0x81, n as u8]),
            n => apdu.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]),
        }
        apdu.extend_from_slice(data);
        let mut frame = hdlc::emit(&apdu, &[0xCE, 0xFF], &[0x03], hdlc::CONTROL_UI, 2000);
        if i > 0 {
            // Drop the LLC and redo the frame's length, HCS and FCS.
            frame.drain(9..12);
            let length = frame.len() - 2;
            frame[1] = 0xA0 | (length >> 8) as u8;
            frame[2] = length as u8;
            let hcs = hdlc::crc16_x25(&frame[1..7]);
            frame[7..9].copy_from_slice(&hcs.to_le_bytes());
            let fcs_at = frame.len() - 3;
            let fcs = hdlc::crc16_x25(&frame[1..fcs_at]);
            frame[fcs_at..fcs_at + 2].copy_from_slice(&fcs.to_le_bytes());
        }
        out.extend_from_slice(&frame);
    }
    out
}

#[test]
fn gbt_block_errors_point_at_the_input() {
    let v = gbt_vector("sdc_lg_e570_encrypted");
    let wire = bytes(&v, "hex");
    let r = hdlc::reassemble(&wire).unwrap();
    let inner = gbt::reassemble(&wire, r).unwrap();
    assert_eq!(inner.segments, 5);
    assert_eq!(inner.consumed, wire.len());
    assert_eq!(inner.apdu[0], 0xDB);
    for (i, b) in inner.apdu.iter().enumerate() {
        assert_eq!(wire[inner.map.to_input(i)], *b, "inner byte {i}");
    }

    let a = vec![0xDB, 1, 2];
    let b = vec![3, 4];
    let c = vec![5];
    // In order: reassembled.
    let ok = gbt_wire(&[
        (0x40, 1, a.clone()),
        (0x40, 2, b.clone()),
        (0xC0, 3, c.clone()),
    ]);
    let r = gbt::reassemble(&ok, hdlc::reassemble(&ok).unwrap()).unwrap();
    assert_eq!(r.apdu, [0xDB, 1, 2, 3, 4, 5]);
    for (i, b) in r.apdu.iter().enumerate() {
        assert_eq!(ok[r.map.to_input(i)], *b);
    }

    // Out of order / missing block: at the block number of the offending block.
    let w = gbt_wire(&[(0x40, 1, a.clone()), (0xC0, 3, c.clone())]);
    let second = HdlcFrame::parse(&w, frames(&w)[1].start).unwrap();
    let e = dlms::decrypt_apdu(&w, &keys_any()).unwrap_err();
    assert_eq!(
        e,
        DecodeError::new(
            ErrorKind::GbtBlockOutOfOrder {
                expected: 2,
                found: 3
            },
            second.info_offset + 2
        )
    );
    assert_eq!(e.kind.category(), Category::Apdu);
    let w = gbt_wire(&[(0xC0, 0, a.clone())]);
    let e = dlms::decrypt_apdu(&w, &keys_any()).unwrap_err();
    assert_eq!(
        e,
        DecodeError::new(
            ErrorKind::GbtBlockOutOfOrder {
                expected: 1,
                found: 0
            },
            14
        )
    );

    // Length beyond the data: at the length byte.
    let mut w = gbt_wire(&[(0xC0, 1, a.clone())]);
    let (info_at, fcs_at) = {
        let f = HdlcFrame::parse(&w, 0).unwrap();
        (f.info_offset, f.fcs_offset)
    };
    let len_at = info_at + 3 + 6;
    w[len_at] += 1;
    let fcs = hdlc::crc16_x25(&w[1..fcs_at]);
    w[fcs_at..fcs_at + 2].copy_from_slice(&fcs.to_le_bytes());
    let e = dlms::decrypt_apdu(&w, &keys_any()).unwrap_err();
    assert_eq!(
        e,
        DecodeError::new(
            ErrorKind::GbtBlockOverrun {
                declared: 4,
                available: 3
            },
            len_at
        )
    );
    assert_eq!(e.kind.name(), "gbt_block_overrun");

    // No last block.
    let w = gbt_wire(&[(0x40, 1, a.clone()), (0x40, 2, b.clone())]);
    let e = dlms::decrypt_apdu(&w, &keys_any()).unwrap_err();
    assert_eq!(
        e,
        DecodeError::new(ErrorKind::GbtIncomplete { expected: 3 }, w.len())
    );

    // A following frame that is not a GBT block.
    let mut w = gbt_wire(&[(0x40, 1, a.clone())]);
    let other = hdlc::emit(&[0xDB], &[0xCE, 0xFF], &[0x03], hdlc::CONTROL_UI, 200);
    let n = w.len();
    w.extend_from_slice(&other);
    let e = dlms::decrypt_apdu(&w, &keys_any()).unwrap_err();
    assert_eq!(
        e,
        DecodeError::new(ErrorKind::UnknownApduTag { tag: 0xDB }, n + 12)
    );

    // Bytes after the frame with the last block.
    let mut w = ok.clone();
    w.push(0);
    let e = dlms::decrypt_apdu(&w, &keys_any()).unwrap_err();
    assert_eq!(
        e,
        DecodeError::new(ErrorKind::TrailingBytes { count: 1 }, ok.len())
    );
}

fn gbt_block() -> impl Strategy<Value = (u8, u16, Vec<u8>)> {
    (
        prop::sample::select(vec![0x40u8, 0xC0, 0x00, 0x80, 0x41, 0xFF]),
        prop_oneof![1u16..6, any::<u16>()],
        prop::collection::vec(any::<u8>(), 0..300),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Arbitrary GBT blocks framed in HDLC, and arbitrary bytes after a valid
    /// first GBT header: a reading/plaintext or an error inside the input.
    #[test]
    fn arbitrary_gbt_is_an_error_within_the_input(
        blocks in prop::collection::vec(gbt_block(), 1..5),
        garbage in prop::collection::vec(any::<u8>(), 0..300),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
    ) {
        let wire = gbt_wire(&blocks);
        let mut inputs = vec![wire.clone(), wire[..cut.index(wire.len() + 1)].to_vec()];
        let mut flipped = wire.clone();
        let i = flip.index(wire.len());
        flipped[i] ^= 0x5A;
        inputs.push(flipped);
        // Garbage after a framed GBT header.
        let mut raw = vec![gbt::TAG, 0x40, 0, 1, 0, 0];
        raw.extend_from_slice(&garbage);
        inputs.push(hdlc::emit(&raw, &[0xCE, 0xFF], &[0x03], hdlc::CONTROL_UI, 2000));
        let mut chained = wire.clone();
        chained.extend_from_slice(&garbage);
        inputs.push(chained);
        for input in &inputs {
            for k in [keys_any(), Keys::default()] {
                if let Err(e) = dlms::decode(input, &k) {
                    prop_assert!(e.offset <= input.len(), "{e} beyond {} bytes", input.len());
                    prop_assert!(!e.to_string().is_empty());
                }
                if let Err(e) = dlms::decrypt_apdu(input, &k) {
                    prop_assert!(e.offset <= input.len(), "{e} beyond {} bytes", input.len());
                }
            }
        }
        // Well-numbered blocks ending with a last block reassemble to their data.
        let numbered: Vec<_> = blocks
            .iter()
            .enumerate()
            .map(|(i, (_, _, d))| {
                let last = i + 1 == blocks.len();
                (if last { 0xC0 } else { 0x40 }, u16::try_from(i + 1).unwrap(), d.clone())
            })
            .collect();
        let w = gbt_wire(&numbered);
        let r = gbt::reassemble(&w, hdlc::reassemble(&w).unwrap()).unwrap();
        let want: Vec<u8> = numbered.iter().flat_map(|(_, _, d)| d.clone()).collect();
        prop_assert_eq!(&r.apdu, &want);
        prop_assert_eq!(r.consumed, w.len());
        for (i, b) in r.apdu.iter().enumerate() {
            prop_assert_eq!(w[r.map.to_input(i)], *b);
        }
    }
}

// ---- The stream deframer on GBT pushes -------------------------------------

/// The GBT vectors with more than one frame (a whole push each).
fn multi_frame_gbt_vectors() -> Vec<(String, Vec<u8>)> {
    let out: Vec<(String, Vec<u8>)> = hdlc_vectors()
        .into_iter()
        .filter(is_gbt)
        .map(|v| (v["id"].as_str().unwrap().to_string(), bytes(&v, "hex")))
        .filter(|(_, wire)| frames(wire).len() > 1)
        .collect();
    let ids: Vec<&str> = out.iter().map(|(id, _)| id.as_str()).collect();
    for id in [
        "sdc_lg_e570_encrypted",
        "klagenfurt_lg_e450_gbt_zero_key",
        "amsreader_em_ct623_lg_e450_steiermark_nokey",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    out
}

/// Byte offsets where each frame of a vector starts, and the end.
fn frame_starts(wire: &[u8]) -> Vec<usize> {
    let mut starts: Vec<usize> = frames(wire).iter().map(|f| f.start).collect();
    starts.push(wire.len());
    starts
}

/// Feeds `stream` in chunks of the given sizes (cycled), collects the telegrams,
/// finishes, and checks that every byte is in a telegram or counted skipped.
fn deframe(stream: &[u8], chunks: &[usize]) -> (Vec<Vec<u8>>, Stats) {
    let mut d = Deframer::new();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < stream.len() {
        let n = chunks[i % chunks.len()].clamp(1, stream.len() - pos);
        d.push(&stream[pos..pos + n]);
        pos += n;
        i += 1;
        while let Some(t) = d.next_telegram() {
            out.push(t);
        }
    }
    d.finish();
    assert_eq!(d.buffered(), 0);
    let s = d.stats();
    let handed: usize = out.iter().map(Vec::len).sum();
    assert_eq!(
        handed as u64 + s.bytes_skipped,
        stream.len() as u64 + s.shared_flags,
        "bytes out + skipped = bytes in + shared flags"
    );
    assert_eq!(s.telegrams, out.len() as u64);
    (out, s)
}

/// Chunk sizes from a fixed xorshift sequence, 1..=max.
fn random_chunks(seed: u64, max: usize) -> Vec<usize> {
    let mut x = seed | 1;
    (0..97)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % max as u64) as usize + 1
        })
        .collect()
}

/// Every chunking the stream tests use: whole, byte by byte, random.
fn chunkings() -> Vec<Vec<usize>> {
    let mut c = vec![vec![usize::MAX], vec![1], vec![2], vec![13]];
    for seed in 1..6 {
        c.push(random_chunks(seed, 200));
    }
    c
}

#[test]
fn deframer_hands_out_each_gbt_push_whole() {
    let garbage: &[&[u8]] = &[
        &[0x00, 0x7E, 0xA0, 0x11, 0x68, 0x16, 0xE5],
        &[0x7E],
        &[0x7E, 0x7E],
        &[0xE6, 0xE7, 0x00, 0xE0, 0xC0, 0x00, 0x01],
    ];
    for (id, wire) in multi_frame_gbt_vectors() {
        let mut stream = Vec::new();
        for g in garbage {
            stream.extend_from_slice(g);
            stream.extend_from_slice(&wire);
        }
        // Back to back as well, and garbage at the end.
        stream.extend_from_slice(&wire);
        stream.extend_from_slice(&[0x7E, 0xA0]);
        let skipped: usize = garbage.iter().map(|g| g.len()).sum::<usize>() + 2;
        for chunks in chunkings() {
            let (out, s) = deframe(&stream, &chunks);
            assert_eq!(out.len(), garbage.len() + 1, "{id} chunks {chunks:?}");
            for t in &out {
                assert!(t == &wire, "{id}: a telegram is not the vector's bytes");
            }
            assert_eq!(s.bytes_skipped, skipped as u64, "{id}");
            assert_eq!(s.incomplete_telegrams, 0, "{id}");
        }
        // The telegram is what the decoder takes whole.
        let (out, _) = deframe(&wire, &[1]);
        assert_eq!(out, vec![wire.clone()], "{id}");
        let r = hdlc::reassemble(&out[0]).unwrap();
        let inner = gbt::reassemble(&out[0], r).unwrap();
        assert_eq!(inner.consumed, wire.len(), "{id}");
        assert_eq!(inner.segments, frames(&wire).len(), "{id}");
        println!(
            "{id}: {} bytes, {} frames, one telegram in every chunking",
            wire.len(),
            inner.segments
        );
    }
}

#[test]
fn deframed_sdc_e570_push_decrypts() {
    let v = gbt_vector("sdc_lg_e570_encrypted");
    let wire = bytes(&v, "hex");
    let mut stream = vec![0x55, 0x7E];
    stream.extend_from_slice(&wire);
    let (out, _) = deframe(&stream, &random_chunks(42, 64));
    assert_eq!(out, vec![wire.clone()]);
    let plain = dlms::decrypt_apdu(&out[0], &keys(&v)).unwrap();
    assert_eq!(plain, bytes(&v, "plaintext_hex"));
    assert_eq!(plain[0], 0x0F);
    let r = dlms::decode(&out[0], &keys(&v)).unwrap();
    assert_eq!(r.active_energy_plus, Some(Value::Int(862_055)));
}

#[test]
fn deframer_drops_block1_only_push_and_decodes_the_next() {
    let partial = bytes(&gbt_vector("energyagent_lg_e450_gbt_block1"), "hex");
    assert_eq!(frames(&partial).len(), 1);
    for (id, wire) in multi_frame_gbt_vectors() {
        // The block-1-only capture, then a whole push.
        let mut stream = partial.clone();
        stream.extend_from_slice(&wire);
        // The push's own first frame, the rest of it lost, then the push again.
        let first = frame_starts(&wire)[1];
        stream.extend_from_slice(&wire[..first]);
        stream.extend_from_slice(&wire);
        for chunks in chunkings() {
            let (out, s) = deframe(&stream, &chunks);
            assert_eq!(out, vec![wire.clone(), wire.clone()], "{id} {chunks:?}");
            assert_eq!(s.incomplete_telegrams, 2, "{id}");
            assert_eq!(s.bytes_skipped, (partial.len() + first) as u64, "{id}");
        }
    }
}

#[test]
fn deframer_skips_the_rest_of_a_push_it_joined_late() {
    for (id, wire) in multi_frame_gbt_vectors() {
        let starts = frame_starts(&wire);
        for &from in &starts[1..starts.len() - 1] {
            let mut stream = wire[from..].to_vec();
            stream.extend_from_slice(&wire);
            for chunks in chunkings() {
                let (out, s) = deframe(&stream, &chunks);
                assert_eq!(out, vec![wire.clone()], "{id} from {from}");
                assert_eq!(s.bytes_skipped, (wire.len() - from) as u64, "{id}");
                // The lost push is counted once, however many of its blocks came.
                assert_eq!(s.incomplete_telegrams, 1, "{id} from {from}");
            }
        }
    }
}

#[test]
fn deframer_drops_a_push_with_a_damaged_frame() {
    for (id, wire) in multi_frame_gbt_vectors() {
        let starts = frame_starts(&wire);
        // Every byte of the second frame flipped in turn, and a few of the others.
        let positions = (starts[1]..starts[2]).chain((0..wire.len()).step_by(7));
        for i in positions {
            for flip in [0x01u8, 0x80, 0xFF] {
                let mut stream = wire.clone();
                stream[i] ^= flip;
                stream.extend_from_slice(&wire);
                for chunks in [vec![usize::MAX], vec![1]] {
                    let (out, s) = deframe(&stream, &chunks);
                    assert_eq!(
                        out,
                        vec![wire.clone()],
                        "{id}: byte {i} ^ {flip:02X}, chunks {chunks:?}"
                    );
                    assert_eq!(s.bytes_skipped, wire.len() as u64);
                }
            }
        }
        // A later frame replaced by a plain (non-GBT) HDLC push: that one comes out,
        // the broken GBT push does not.
        let plain = hdlc::emit(&[0xDB, 1, 2], &[0xCE, 0xFF], &[0x03], hdlc::CONTROL_UI, 200);
        let mut stream = wire[..starts[1]].to_vec();
        stream.extend_from_slice(&plain);
        stream.extend_from_slice(&wire);
        let (out, s) = deframe(&stream, &[3]);
        assert_eq!(out, vec![plain.clone(), wire.clone()], "{id}");
        assert_eq!(s.incomplete_telegrams, 1);
    }
}

#[test]
fn deframer_gbt_blocks_out_of_order_or_too_many() {
    let a = vec![0xDB, 1, 2];
    // Block 2 missing.
    let w = gbt_wire(&[(0x40, 1, a.clone()), (0xC0, 3, a.clone())]);
    let (out, s) = deframe(&w, &[usize::MAX]);
    assert!(out.is_empty());
    assert_eq!(s.incomplete_telegrams, 2);
    // A first frame whose block number is not 1.
    let w = gbt_wire(&[(0xC0, 2, a.clone())]);
    let (out, s) = deframe(&w, &[1]);
    assert!(out.is_empty());
    assert_eq!(s.incomplete_telegrams, 1);
    // More blocks than a push may have: dropped, and the stream goes on.
    let n = mbuspico::stream::MAX_GBT_BLOCKS + 1;
    let blocks: Vec<(u8, u16, Vec<u8>)> = (1..=n)
        .map(|i| {
            let control = if i == n { 0xC0 } else { 0x40 };
            (control, u16::try_from(i).unwrap(), vec![i as u8; 20])
        })
        .collect();
    let long = gbt_wire(&blocks);
    let ok = gbt_wire(
        &blocks[n - 3..]
            .iter()
            .enumerate()
            .map(|(i, (c, _, d))| (*c, u16::try_from(i + 1).unwrap(), d.clone()))
            .collect::<Vec<_>>(),
    );
    let mut stream = long.clone();
    stream.extend_from_slice(&ok);
    for chunks in [vec![usize::MAX], vec![1], vec![50]] {
        let (out, s) = deframe(&stream, &chunks);
        assert_eq!(out, vec![ok.clone()], "{chunks:?}");
        assert_eq!(s.bytes_skipped, long.len() as u64);
    }
}

/// A piece of a test stream: arbitrary bytes, or one frame of a GBT vector.
#[derive(Debug, Clone)]
enum Piece {
    Bytes(Vec<u8>),
    Frame(usize, usize),
}

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..40).prop_map(Piece::Bytes),
        prop::collection::vec(
            prop_oneof![Just(0x7Eu8), Just(0xA0), Just(0xE0), any::<u8>()],
            0..20
        )
        .prop_map(Piece::Bytes),
        (0usize..8, 0usize..8).prop_map(|(v, f)| Piece::Frame(v, f)),
    ]
}

/// The multi-frame GBT vectors, and those plus the block-1-only capture with
/// their frame offsets, loaded once.
#[allow(clippy::type_complexity)]
fn mixed_stream_vectors() -> &'static (Vec<(String, Vec<u8>)>, Vec<(Vec<u8>, Vec<usize>)>) {
    static V: std::sync::OnceLock<(Vec<(String, Vec<u8>)>, Vec<(Vec<u8>, Vec<usize>)>)> =
        std::sync::OnceLock::new();
    V.get_or_init(|| {
        let vectors = multi_frame_gbt_vectors();
        let mut all: Vec<(Vec<u8>, Vec<usize>)> = vectors
            .iter()
            .map(|(_, w)| (w.clone(), frame_starts(w)))
            .collect();
        let block1 = bytes(&gbt_vector("energyagent_lg_e450_gbt_block1"), "hex");
        all.push((block1.clone(), vec![0, block1.len()]));
        (vectors, all)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(1000)))]

    /// Arbitrary bytes mixed with the frames of the GBT vectors, in any order and
    /// chunking: no panic, every byte out or counted skipped, every telegram
    /// handed out a verified HDLC telegram, and a whole push at the end comes
    /// out once the line has been quiet for a longest frame.
    #[test]
    fn deframer_gbt_frames_mixed_with_any_bytes(
        pieces in prop::collection::vec(piece(), 0..12),
        last in 0usize..3,
        chunks in prop::collection::vec(1usize..300, 1..10),
    ) {
        let (vectors, all) = mixed_stream_vectors();
        let mut stream = Vec::new();
        for p in &pieces {
            match p {
                Piece::Bytes(b) => stream.extend_from_slice(b),
                Piece::Frame(v, f) => {
                    let (w, starts) = &all[v % all.len()];
                    let f = f % (starts.len() - 1);
                    stream.extend_from_slice(&w[starts[f]..starts[f + 1]]);
                }
            }
        }
        let whole = &vectors[last % vectors.len()].1;
        stream.extend_from_slice(whole);
        // A header in the arbitrary bytes may pass its HCS and claim up to
        // 2,047 bytes (the 11-bit length of frame format type 3, IEC 62056-46): the
        // deframer waits for them, and only bytes after the push can prove
        // that candidate wrong. A quiet line (zero bytes) of that length does.
        stream.extend_from_slice(&[0u8; 2048]);
        let (out, _) = deframe(&stream, &chunks);
        for t in &out {
            let r = hdlc::reassemble(t);
            prop_assert!(r.is_ok(), "{:?}", r);
            let r = r.unwrap();
            let consumed = if r.apdu.first() == Some(&gbt::TAG) {
                let g = gbt::reassemble(t, r);
                prop_assert!(g.is_ok(), "{:?}", g);
                g.unwrap().consumed
            } else {
                r.consumed
            };
            prop_assert_eq!(consumed, t.len());
        }
        prop_assert_eq!(out.last(), Some(whole));
    }
}

#[test]
fn a_flag_shared_by_two_frames_opens_the_second() {
    // Soak finding: a push that lost its closing flag took the next push's
    // opening flag as its own, and the next (intact) push was lost. One flag
    // may close a frame and open the next (ISO/IEC 13239 §4.3.1).
    let v = hdlc_vectors()
        .into_iter()
        .find(|v| v["id"] == "wienernetze_siemens_im350")
        .unwrap();
    let wire = bytes(&v, "hex");
    let shared: Vec<u8> = [&wire[..], &wire[1..], &wire[1..]].concat();
    for chunks in chunkings() {
        let (out, s) = deframe(&shared, &chunks);
        assert_eq!(out, vec![wire.clone(), wire.clone(), wire.clone()]);
        assert_eq!(s.shared_flags, 2);
        assert_eq!(s.bytes_skipped, 0);
    }
    let r = dlms::decode(&wire, &keys(&v)).unwrap();
    assert_eq!(r.meter_number.as_deref(), Some("SMS1030788000020"));
}

//! Criterion benchmarks of the Rust core on the reference inputs (`cargo bench`).
//!
//! Every decode bench reports frames per second (`Throughput::Elements(1)`);
//! the bench id ends with the input's size in bytes. The stream benches report
//! bytes per second.
//!
//! * `dlms_decode` — [`mbuspico::dlms::decode`] on pushes of
//!   `tests/data/dlms/vectors.json`: the Netz NÖ Kaifa MA309M (`fkw9_kaifa_ma309m_real`,
//!   2 M-Bus frames, AES-GCM without tag), the Polish KSM-West Kaifa
//!   (`amsreader_gh905_kaifa_poland`), the Sagemcom T210-D (`fkw9_sagemcom_t210d_L01`),
//!   the Wiener Netze Siemens IM350 HDLC push (`wienernetze_siemens_im350`), the
//!   Netz Burgenland L+G E450 HDLC push with GCM tag
//!   (`amsreader_gh501_1_lg_e450_burgenland`, auth_key) and the L+G E570 HDLC
//!   general-block-transfer push (`sdc_lg_e570_encrypted`).
//! * `mbus_decode` — [`mbuspico::mbus::decode`] on the Itron CF Echo II frame
//!   (`tests/data/mbus/otb_iot_cf_echo_ii_checksum_corrected.hex`, 13 records)
//!   and on libmbus frames from `tests/data/libmbus/test-frames/`:
//!   `ELV-Elvaco-CMa10.hex` (13 records), `EMU_EMU-Professional-375-M-Bus.hex`
//!   (32 records) and `metrona_ultraheat_xs.hex` (40 records, the most of any
//!   frame in the corpus); plus `mbus::to_xml` (normalized) on the first two.
//! * `dsmr_decode` — [`mbuspico::dsmr::decode`] on the DSMR 5 telegram
//!   (`dsmr_parser/TELEGRAM_V5` of `tests/data/dsmr/vectors.json`), and the
//!   Luxembourg Smarty frame (`meterlogger/luxembourgTelegram` encrypted as
//!   `benchmarks/bench_decode.py` does) through [`mbuspico::dlms::decrypt`] and
//!   `dsmr::decode`, as the Python `Decoder` does; and `dsmr::telegram::parse`
//!   (the grammar and CRC alone) on the DSMR 5 telegram.
//! * `deframer` — [`mbuspico::stream::Deframer`] on 1 MiB of Kaifa pushes with
//!   garbage between, fed in 4 KiB chunks; the same with the HDLC pushes of the
//!   Siemens IM350 (Wiener Netze) and the L+G E570 (general block transfer).
//! * `dsmr_framer` — [`mbuspico::dsmr::stream::Framer`] on 1 MiB of DSMR 5
//!   telegrams with garbage between, fed in 4 KiB chunks.
//! * `adversarial_streams` — the stream framers on input that never verifies
//!   (issue 19), 1 MiB fed in 4 KiB and in 64 KiB chunks (`read_capture`'s
//!   default), and 64 KiB fed byte by byte:
//!   repeated M-Bus long-frame headers `68 FF FF 68` (`mbus_68ffff68`);
//!   HDLC flags and format bytes claiming long frames, with a verifying HCS
//!   (`hdlc_long_claims`: `7E A0 FF …`, `7E A8 FF …`, `7E A7 FF …`, the FCS
//!   never verifies) and without (`hdlc_bogus_headers`); random bytes
//!   (`random`); and for the P1 framer, P1 headers and a data line over and
//!   over, never a `!` (`p1_headers_no_bang`).
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::{dlms_vector, dsmr_text, hex_file, smarty_frame, stream_of};
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use mbuspico::dlms::{self, offsets::OffsetMap};
use mbuspico::dsmr;
use mbuspico::stream::Deframer;
use std::borrow::Cow;
use std::hint::black_box;

/// Benches `f` on one input as `group/name_<bytes>B`, in frames per second.
/// (The result may borrow the input, as `mbus::decode`'s does.)
fn bench_frame<'i, M, R>(
    group: &mut BenchmarkGroup<'_, M>,
    name: &str,
    input: &'i [u8],
    mut f: impl FnMut(&'i [u8]) -> R,
) where
    M: criterion::measurement::Measurement,
{
    group.throughput(Throughput::Elements(1));
    group.bench_function(format!("{name}_{}B", input.len()), |b| {
        b.iter(|| f(black_box(input)))
    });
}

fn dlms_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("dlms_decode");
    for (name, id) in [
        ("kaifa_ma309m_netznoe", "fkw9_kaifa_ma309m_real"),
        ("kaifa_ksm_west_3phase", "amsreader_gh905_kaifa_poland"),
        ("sagemcom_t210d_l01", "fkw9_sagemcom_t210d_L01"),
        (
            "hdlc_siemens_im350_wienernetze",
            "wienernetze_siemens_im350",
        ),
        (
            "hdlc_tagged_lg_e450_burgenland",
            "amsreader_gh501_1_lg_e450_burgenland",
        ),
        ("hdlc_gbt_lg_e570", "sdc_lg_e570_encrypted"),
    ] {
        let (frame, keys) = dlms_vector(id);
        dlms::decode(&frame, &keys).unwrap_or_else(|e| panic!("{id}: {e:?}"));
        bench_frame(&mut group, name, &frame, |f| dlms::decode(f, &keys));
    }
    group.finish();
}

fn mbus_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("mbus_decode");
    for (name, path, records, xml) in [
        // The 83-byte frame of peers-baseline.md (checksum corrected to 0x70).
        (
            "cf_echo_ii_13rec",
            "mbus/otb_iot_cf_echo_ii_checksum_corrected.hex",
            13,
            true,
        ),
        (
            "elvaco_cma10_13rec",
            "libmbus/test-frames/ELV-Elvaco-CMa10.hex",
            13,
            false,
        ),
        (
            "emu_professional_32rec",
            "libmbus/test-frames/EMU_EMU-Professional-375-M-Bus.hex",
            32,
            true,
        ),
        (
            "metrona_ultraheat_xs_40rec",
            "libmbus/test-frames/metrona_ultraheat_xs.hex",
            40,
            false,
        ),
    ] {
        let frame = hex_file(path);
        let reading = mbuspico::mbus::decode(&frame).unwrap();
        assert_eq!(reading.records.len(), records, "{path}");
        bench_frame(&mut group, name, &frame, mbuspico::mbus::decode);
        if xml {
            bench_frame(&mut group, &format!("{name}_xml_normalized"), &frame, |f| {
                mbuspico::mbus::to_xml(&[f], true)
            });
        }
    }
    group.finish();
}

fn dsmr_decode(c: &mut Criterion) {
    let options = dsmr::Options::default();
    let mut group = c.benchmark_group("dsmr_decode");
    let v5 = dsmr_text("dsmr_parser/TELEGRAM_V5");
    dsmr::decode(&v5, &options).unwrap();
    bench_frame(&mut group, "dsmr5_telegram", &v5, |t| {
        dsmr::decode(t, &options)
    });
    // The grammar alone (lines, groups, CRC), without typing the values.
    bench_frame(&mut group, "dsmr5_grammar_only", &v5, dsmr::telegram::parse);
    let (smarty, keys) = smarty_frame();
    // The reading is consumed inside (it may borrow the decrypted plaintext):
    // `Ok(header is Lux5, CRC ok)`.
    let decrypt_decode = |f: &[u8]| {
        let map = OffsetMap::identity(0, f.len());
        let decrypted = dlms::decrypt(Cow::Borrowed(f), &map, &keys)?;
        let reading = black_box(dsmr::decode(decrypted.plaintext(), &options)?);
        Ok::<_, mbuspico::DecodeError>(reading.header.starts_with("Lux5") && reading.crc == "ok")
    };
    assert!(decrypt_decode(&smarty).unwrap());
    bench_frame(&mut group, "smarty_encrypted", &smarty, decrypt_decode);
    group.finish();
}

fn deframe(c: &mut Criterion) {
    let (frame, _) = dlms_vector("fkw9_kaifa_ma309m_real");
    let (stream, pushes) = stream_of(&frame, b"\x00garbage\x68\x16");
    let mut group = c.benchmark_group("deframer");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.sample_size(20);
    let run = || {
        let mut d = Deframer::new();
        let mut n = 0;
        for chunk in stream.chunks(4096) {
            d.push(black_box(chunk));
            while d.next_telegram().is_some() {
                n += 1;
            }
        }
        n
    };
    assert_eq!(run(), pushes);
    group.bench_function("1MiB_kaifa_with_garbage_4k_chunks", |b| b.iter(run));
    // HDLC: the Wiener Netze IM350 push, and the L+G E570 general block transfer.
    for (name, id) in [
        ("hdlc_im350", "wienernetze_siemens_im350"),
        ("hdlc_gbt_e570", "sdc_lg_e570_encrypted"),
    ] {
        let (frame, _) = dlms_vector(id);
        let (stream, pushes) = stream_of(&frame, b"\x00garbage\x7E\xA0\x16");
        let run = || {
            let mut d = Deframer::new();
            let mut n = 0;
            for chunk in stream.chunks(4096) {
                d.push(black_box(chunk));
                while d.next_telegram().is_some() {
                    n += 1;
                }
            }
            n
        };
        assert_eq!(run(), pushes, "{id}");
        group.bench_function(format!("1MiB_{name}_with_garbage_4k_chunks"), |b| {
            b.iter(run)
        });
    }
    group.finish();
}

fn dsmr_frame(c: &mut Criterion) {
    let telegram = dsmr_text("dsmr_parser/TELEGRAM_V5");
    let (stream, telegrams) = stream_of(&telegram, b"\x00\xffgarbage\r\n!\r\n");
    let mut group = c.benchmark_group("dsmr_framer");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.sample_size(20);
    let run = || {
        let mut f = dsmr::stream::Framer::new();
        let mut n = 0;
        for chunk in stream.chunks(4096) {
            f.push(black_box(chunk));
            while f.next_telegram().is_some() {
                n += 1;
            }
        }
        n
    };
    assert_eq!(run(), telegrams);
    group.bench_function("1MiB_dsmr5_with_garbage_4k_chunks", |b| b.iter(run));
    group.finish();
}

/// 1 MiB of `unit` repeated.
fn repeated(unit: &[u8]) -> Vec<u8> {
    unit.iter().copied().cycle().take(1 << 20).collect()
}

/// The inputs of the `adversarial_streams` group (issue 19), 1 MiB each:
/// name, bytes, and whether they are for the P1 framer.
fn adversarial_inputs() -> Vec<(&'static str, Vec<u8>, bool)> {
    // HDLC headers with a verifying HCS whose frames claim 255 (`A0 FF`,
    // `A8 FF` segmented) and 2047 (`A7 FF`) bytes.
    let mut claims = Vec::new();
    for format in [[0xA0, 0xFF], [0xA8, 0xFF], [0xA7, 0xFF]] {
        let mut header = format.to_vec();
        header.extend_from_slice(&[0x03, 0x21, 0x13]);
        let hcs = mbuspico::dlms::hdlc::crc16_x25(&header);
        claims.push(0x7E);
        claims.extend_from_slice(&header);
        claims.extend_from_slice(&hcs.to_le_bytes());
    }
    let bogus = [
        0x7E, 0xA0, 0xFF, 0x7E, 0xA8, 0xFF, 0x03, 0x21, 0x13, 0x00, 0x00, 0x7E, 0xA7, 0xFF, 0xCE,
        0xFF, 0x03, 0x13, 0x12, 0x34,
    ];
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let random = (0..1 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    vec![
        ("mbus_68ffff68", repeated(&[0x68, 0xFF, 0xFF, 0x68]), false),
        ("hdlc_long_claims", repeated(&claims), false),
        ("hdlc_bogus_headers", repeated(&bogus), false),
        ("random", random, false),
        (
            "p1_headers_no_bang",
            repeated(b"/ISK5\\2M550T-1013\r\n\r\n1-0:1.8.1(000123.456*kWh)\r\n"),
            true,
        ),
    ]
}

/// The telegrams a framer hands out of `stream` fed in `chunk`-byte pieces:
/// the M-Bus/HDLC deframer, or the P1 framer when `p1`.
fn frame_all(stream: &[u8], chunk: usize, p1: bool) -> usize {
    macro_rules! run {
        ($framer:expr) => {{
            let mut f = $framer;
            let mut n = 0;
            for piece in stream.chunks(chunk) {
                f.push(black_box(piece));
                while f.next_telegram().is_some() {
                    n += 1;
                }
            }
            f.finish();
            n
        }};
    }
    if p1 {
        run!(dsmr::stream::Framer::new())
    } else {
        run!(Deframer::new())
    }
}

fn adversarial(c: &mut Criterion) {
    let mut group = c.benchmark_group("adversarial_streams");
    group.sample_size(10);
    group.warm_up_time(std::time::Duration::from_millis(500));
    group.measurement_time(std::time::Duration::from_secs(3));
    for (name, stream, p1) in adversarial_inputs() {
        for (how, chunk, len) in [
            ("4k_chunks", 4096, 1 << 20),
            ("64k_chunks", 64 << 10, 1 << 20),
            ("bytewise", 1, 64 << 10),
        ] {
            let input = &stream[..len];
            group.throughput(Throughput::Bytes(input.len() as u64));
            group.bench_function(format!("{name}_{}KiB_{how}", len >> 10), |b| {
                assert_eq!(frame_all(input, chunk, p1), 0, "{name}");
                b.iter(|| frame_all(input, chunk, p1))
            });
        }
    }
    group.finish();
}

criterion_group!(
    benches,
    dlms_decode,
    mbus_decode,
    dsmr_decode,
    deframe,
    dsmr_frame,
    adversarial
);
criterion_main!(benches);

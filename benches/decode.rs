//! Criterion benchmarks of the decoders on real frames (`cargo bench`).
//!
//! Reference inputs from `tests/data/dlms/vectors.json`: the Netz NÖ Kaifa
//! MA309M push (282 bytes, 2 M-Bus frames, AES-GCM without tag), the Polish
//! KSM-West Kaifa push (376 bytes), and the deframer on a stream of them.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mbuspico::dlms::{self, Key, Keys};
use mbuspico::stream::Deframer;
use std::hint::black_box;

fn vector(id: &str) -> (Vec<u8>, Keys) {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/dlms/vectors.json"
    ))
    .unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let v = doc["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == id)
        .unwrap();
    let frame = mbuspico::hex::decode(v["hex"].as_str().unwrap()).unwrap();
    let keys = Keys {
        key: Key::from_hex(v["key"].as_str().unwrap()),
        auth_key: None,
        skip_tag_check: false,
    };
    (frame, keys)
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("dlms_decode");
    for (name, id) in [
        ("kaifa_ma309m_netznoe", "fkw9_kaifa_ma309m_real"),
        ("kaifa_ksm_west_3phase", "amsreader_gh905_kaifa_poland"),
        ("sagemcom_t210d_l01", "fkw9_sagemcom_t210d_L01"),
    ] {
        let (frame, keys) = vector(id);
        dlms::decode(&frame, &keys).unwrap();
        group.throughput(Throughput::Bytes(frame.len() as u64));
        group.bench_function(name, |b| b.iter(|| dlms::decode(black_box(&frame), &keys)));
    }
    group.finish();
}

fn deframe(c: &mut Criterion) {
    let (frame, _) = vector("fkw9_kaifa_ma309m_real");
    let mut stream = Vec::new();
    while stream.len() < 1 << 20 {
        stream.extend_from_slice(b"\x00garbage\x68\x16");
        stream.extend_from_slice(&frame);
    }
    let mut group = c.benchmark_group("deframer");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.sample_size(20);
    group.bench_function("1MiB_kaifa_with_garbage_4k_chunks", |b| {
        b.iter(|| {
            let mut d = Deframer::new();
            let mut n = 0;
            for chunk in stream.chunks(4096) {
                d.push(chunk);
                while d.next_telegram().is_some() {
                    n += 1;
                }
            }
            n
        })
    });
    group.finish();
}

fn mbus(c: &mut Criterion) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/");
    let read = |path: &str| {
        let text = std::fs::read_to_string(format!("{dir}{path}")).unwrap();
        mbuspico::hex::decode(text.trim()).unwrap()
    };
    let mut group = c.benchmark_group("mbus_decode");
    for (name, path) in [
        // The 83-byte frame of peers-baseline.md (checksum corrected to 0x70).
        (
            "cf_echo_ii_13_records",
            "mbus/otb_iot_cf_echo_ii_checksum_corrected.hex",
        ),
        (
            "emu_professional_32_records",
            "libmbus/test-frames/EMU_EMU-Professional-375-M-Bus.hex",
        ),
    ] {
        let frame = read(path);
        mbuspico::mbus::decode(&frame).unwrap();
        group.throughput(Throughput::Bytes(frame.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| mbuspico::mbus::decode(black_box(&frame)))
        });
        group.bench_function(format!("{name}_xml_normalized"), |b| {
            b.iter(|| mbuspico::mbus::to_xml(&[black_box(&frame)], true))
        });
    }
    group.finish();
}

criterion_group!(benches, decode, deframe, mbus);
criterion_main!(benches);

//! Loaders for the reference inputs the benches run on, shared by all groups.
// Each bench binary (`decode`, `steps`) uses a subset of these.
#![allow(dead_code)]

use mbuspico::dlms::{Key, Keys};
use std::sync::OnceLock;

/// A file under `tests/data/`.
pub fn data_path(rel: &str) -> String {
    format!("{}/tests/data/{rel}", env!("CARGO_MANIFEST_DIR"))
}

fn json(rel: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(data_path(rel)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The `vectors` entry with `id` of a vectors file.
fn entry<'a>(doc: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    doc["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == id)
        .unwrap_or_else(|| panic!("no vector {id}"))
}

/// A DLMS push from `tests/data/dlms/vectors.json` with its keys (`key`, and
/// `auth_key` when the vector has one).
pub fn dlms_vector(id: &str) -> (Vec<u8>, Keys) {
    static DOC: OnceLock<serde_json::Value> = OnceLock::new();
    let v = entry(DOC.get_or_init(|| json("dlms/vectors.json")), id);
    let frame = mbuspico::hex::decode(v["hex"].as_str().unwrap()).unwrap();
    let key = |field: &str| v[field].as_str().and_then(Key::from_hex);
    let keys = Keys {
        key: key("key"),
        auth_key: key("auth_key"),
        skip_tag_check: false,
        require_tag: false,
    };
    (frame, keys)
}

/// The `text` of a P1 telegram from `tests/data/dsmr/vectors.json`.
pub fn dsmr_text(id: &str) -> Vec<u8> {
    static DOC: OnceLock<serde_json::Value> = OnceLock::new();
    let v = entry(DOC.get_or_init(|| json("dsmr/vectors.json")), id);
    v["text"].as_str().unwrap().as_bytes().to_vec()
}

/// A hex file under `tests/data/` (whitespace ignored).
pub fn hex_file(rel: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(data_path(rel)).unwrap();
    let text: String = text.split_whitespace().collect();
    mbuspico::hex::decode(&text).unwrap()
}

/// Key, authentication key, system title and frame counter of the Smarty
/// frame of `benchmarks/bench_decode.py` (as `_core.dsmr_encrypt` is called).
pub const SMARTY_KEY: [u8; 16] = [0xAA; 16];
pub const SMARTY_AUTH_KEY: [u8; 16] = [
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF,
];

/// The Luxembourg Smarty telegram (`meterlogger/luxembourgTelegram`) in a
/// general-glo-ciphering frame, built the way `_core.dsmr_encrypt` builds it
/// (security control 0x30, title `SYSTEMID`, frame counter 0x10000001).
pub fn smarty_frame() -> (Vec<u8>, Keys) {
    let plain = dsmr_text("meterlogger/luxembourgTelegram");
    tagged(
        b"SYSTEMID",
        0x1000_0001,
        SMARTY_KEY,
        SMARTY_AUTH_KEY,
        &plain,
    )
}

/// `plain` in a general-glo-ciphering frame with a GCM tag (security control
/// 0x30) from `system_title` and `frame_counter`, with the keys that open it.
fn tagged(
    system_title: &[u8; 8],
    frame_counter: u32,
    key: [u8; 16],
    auth_key: [u8; 16],
    plain: &[u8],
) -> (Vec<u8>, Keys) {
    let (key, auth_key) = (Key::new(key), Key::new(auth_key));
    let frame = mbuspico::dlms::security::emit(
        system_title,
        0x30,
        frame_counter,
        &key,
        Some(&auth_key),
        plain,
    );
    let keys = Keys {
        key: Some(key),
        auth_key: Some(auth_key),
        skip_tag_check: false,
        require_tag: false,
    };
    (frame, keys)
}

/// About 1 MiB of `unit` repeated with `garbage` before each copy.
pub fn stream_of(unit: &[u8], garbage: &[u8]) -> (Vec<u8>, usize) {
    let mut stream = Vec::with_capacity((1 << 20) + unit.len() + garbage.len());
    let mut n = 0;
    while stream.len() < 1 << 20 {
        stream.extend_from_slice(garbage);
        stream.extend_from_slice(unit);
        n += 1;
    }
    (stream, n)
}

/// DLMS A of `benchmarks/compare.py` (peers-baseline.md §1): a data-notification
/// (long-invoke-id 1, date-time 2026-11-21 12:30:00 UTC+1, a structure of six
/// OBIS octet-strings each followed by a double-long-unsigned) in a
/// general-glo-ciphering APDU with a 12-byte GCM tag (security control 0x30,
/// title `4D4D4D0000BC614E`, frame counter 0x01234567), 126 bytes, with its keys.
pub fn dlms_a_frame() -> (Vec<u8>, Keys) {
    let mut body = mbuspico::dlms::axdr::Writer::new();
    body.structure(12);
    for (c, d, value) in [
        (1, 8, 12_345_678),
        (2, 8, 1234),
        (1, 7, 2500),
        (2, 7, 0),
        (3, 8, 4321),
        (4, 8, 98_765),
    ] {
        body.octet_string(&[1, 0, c, d, 0, 255]).u32(value);
    }
    let mut plain = vec![0x0F, 0, 0, 0, 1, 0x0C];
    plain.extend_from_slice(&[
        0x07, 0xEA, 0x0B, 0x15, 0x06, 0x0C, 0x1E, 0x00, 0x00, 0xFF, 0xC4, 0x00,
    ]);
    plain.extend_from_slice(&body.into_bytes());
    let key = std::array::from_fn(|i| i as u8);
    let auth_key = std::array::from_fn(|i| 0xD0 + i as u8);
    let title = [0x4D, 0x4D, 0x4D, 0x00, 0x00, 0xBC, 0x61, 0x4E];
    tagged(&title, 0x0123_4567, key, auth_key, &plain)
}

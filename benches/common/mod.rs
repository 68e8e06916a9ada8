//! Loaders for the reference inputs the benches run on, shared by all groups.

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
    let key = Key::new(SMARTY_KEY);
    let auth_key = Key::new(SMARTY_AUTH_KEY);
    let plain = dsmr_text("meterlogger/luxembourgTelegram");
    let frame = mbuspico::dlms::security::emit(
        b"SYSTEMID",
        0x30,
        0x1000_0001,
        &key,
        Some(&auth_key),
        &plain,
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

//! What the integration tests share: the DLMS vector corpus
//! (`tests/data/dlms/vectors.json`, sources in `tests/data/SOURCES.md`) and keys.
#![allow(dead_code, clippy::unwrap_used)]

use mbuspico::dlms::{Key, Keys};
use serde_json::Value as Json;

/// Every entry of the DLMS vector collection.
pub fn vectors() -> Vec<Json> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/dlms/vectors.json"
    ))
    .unwrap();
    let doc: Json = serde_json::from_str(&text).unwrap();
    doc["vectors"].as_array().unwrap().clone()
}

/// A hex field of a vector as bytes.
pub fn bytes(v: &Json, field: &str) -> Vec<u8> {
    mbuspico::hex::decode(v[field].as_str().unwrap()).unwrap()
}

/// The keys a vector's source published (either may be absent).
pub fn keys(v: &Json) -> Keys {
    Keys {
        key: v["key"].as_str().map(|k| Key::from_hex(k).unwrap()),
        auth_key: v["auth_key"].as_str().map(|k| Key::from_hex(k).unwrap()),
        skip_tag_check: false,
        require_tag: false,
    }
}

/// Fixed keys for property tests on arbitrary bytes.
pub fn any_keys() -> Keys {
    Keys {
        key: Some(Key::new([7; 16])),
        auth_key: Some(Key::new([9; 16])),
        skip_tag_check: false,
        require_tag: false,
    }
}

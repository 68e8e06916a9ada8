//! The libmbus corpus (tests/data/libmbus, BSD-3, see its LICENSE): our XML must
//! equal libmbus's `.xml` and `.norm.xml` byte for byte for at least 95 % of the
//! test frames; every other frame must decode or fail with a typed error.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::{Path, PathBuf};

fn corpus(folder: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/libmbus")
        .join(folder);
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "hex"))
        .collect();
    v.sort();
    v
}

/// libmbus's `mbus_hex2bin`: two characters at a time, whitespace skipped, stop
/// at the first pair that is not hex.
fn hex2bin(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let mut out = Vec::new();
    for pair in digits.chunks(2) {
        let s = std::str::from_utf8(pair).unwrap_or("zz");
        match u8::from_str_radix(s, 16) {
            Ok(b) if pair.len() == 2 => out.push(b),
            _ => break,
        }
    }
    out
}

#[test]
fn test_frames_match_libmbus_xml() {
    let mut total = 0;
    let mut same = 0;
    let mut differ = Vec::new();
    for hex in corpus("test-frames") {
        let frame = hex2bin(&std::fs::read_to_string(&hex).unwrap());
        for (ext, normalized) in [("xml", false), ("norm.xml", true)] {
            let expected = std::fs::read(hex.with_extension(ext)).unwrap();
            total += 1;
            let ours = mbuspico::mbus::to_xml(&[&frame], normalized)
                .unwrap_or_else(|e| panic!("{}: {e}", hex.display()));
            if ours.as_bytes() == expected.as_slice() {
                same += 1;
            } else {
                differ.push(format!(
                    "{}.{ext}",
                    hex.file_stem().unwrap().to_string_lossy()
                ));
            }
        }
    }
    let rate = same as f64 / total as f64;
    println!(
        "libmbus XML: {same}/{total} identical ({:.1} %); differ: {differ:?}",
        rate * 100.0
    );
    assert_eq!(total, 152);
    assert!(rate >= 0.95, "{same}/{total} identical; differ: {differ:?}");
}

#[test]
fn error_and_unsupported_frames_never_crash() {
    for folder in ["error-frames", "unsupported-frames"] {
        for hex in corpus(folder) {
            let frame = hex2bin(&std::fs::read_to_string(&hex).unwrap());
            match mbuspico::mbus::to_xml(&[&frame], false) {
                Ok(xml) => assert!(xml.starts_with("<?xml"), "{}", hex.display()),
                Err(e) => assert!(e.offset <= frame.len(), "{}: {e}", hex.display()),
            }
        }
    }
}

/// Writes our XML next to nothing: `MBUSPICO_XML_DUMP=dir cargo test --test libmbus dump -- --ignored`.
#[test]
#[ignore = "debugging aid: dumps our XML for diffing"]
fn dump() {
    let dir = std::env::var("MBUSPICO_XML_DUMP").unwrap_or_else(|_| "/tmp/mbuspico-xml".into());
    std::fs::create_dir_all(&dir).unwrap();
    for hex in corpus("test-frames") {
        let frame = hex2bin(&std::fs::read_to_string(&hex).unwrap());
        let stem = hex.file_stem().unwrap().to_string_lossy().to_string();
        for (ext, normalized) in [("xml", false), ("norm.xml", true)] {
            let ours = mbuspico::mbus::to_xml(&[&frame], normalized).unwrap();
            std::fs::write(Path::new(&dir).join(format!("{stem}.{ext}")), ours).unwrap();
        }
    }
}

/// Application errors (CI 0x70) print libmbus's `<Error>` XML; the frames libmbus
/// rejects fail here with the matching typed error at the byte concerned.
#[test]
fn error_frames_as_libmbus() {
    use mbuspico::ErrorKind::*;
    let mut xml_same = 0;
    for hex in corpus("error-frames") {
        let name = hex.file_stem().unwrap().to_string_lossy().to_string();
        let frame = hex2bin(&std::fs::read_to_string(&hex).unwrap());
        let result = mbuspico::mbus::to_xml(&[&frame], false);
        let expected = hex.with_extension("xml");
        if expected.exists() {
            let ours = result.unwrap_or_else(|e| panic!("{name}: {e}"));
            // libmbus writes the ´ of "DIFE´s"/"VIFE´s" as one Latin-1 byte.
            let theirs = String::from_utf8(std::fs::read(&expected).unwrap())
                .unwrap_or_else(|e| e.into_bytes().iter().map(|&b| char::from(b)).collect());
            assert_eq!(ours, theirs, "{name}");
            xml_same += 1;
            continue;
        }
        let e = result.expect_err(&name);
        let want = match name.as_str() {
            "premature_end_of_data1" | "premature_end_of_data2" => PrematureEnd { part: "data" },
            "premature_end_of_dif1" | "premature_end_of_dif2" => PrematureEnd { part: "DIF" },
            "premature_end_of_vif1" => PrematureEnd { part: "VIF" },
            "premature_end_of_var_vif1" => PrematureEnd {
                part: "variable length VIF",
            },
            "too_long_var_vif" => PlainTextTooLong { len: 0xF3 },
            "too_many_dife" => TooManyExtensions { part: "DIFE" },
            "too_many_vife" => TooManyExtensions { part: "VIFE" },
            "too_short_header" => HeaderTooShort { len: 5 },
            other => panic!("unexpected error frame {other}"),
        };
        assert_eq!(e.kind, want, "{name}: {e}");
        assert!(e.offset < frame.len(), "{name}: offset {}", e.offset);
    }
    assert_eq!(xml_same, 10);
}

/// What each unsupported frame gives (documented in KNOWN_DIFFERENCES.md).
#[test]
fn unsupported_frames_outcomes() {
    let mut outcomes = Vec::new();
    for hex in corpus("unsupported-frames") {
        let name = hex.file_stem().unwrap().to_string_lossy().to_string();
        let frame = hex2bin(&std::fs::read_to_string(&hex).unwrap());
        let outcome = match mbuspico::mbus::to_xml(&[&frame], false) {
            Ok(xml) => format!("xml with {} records", xml.matches("<DataRecord").count()),
            Err(e) => format!("{}: {e}", e.kind.name()),
        };
        outcomes.push(format!("{name}: {outcome}"));
    }
    println!("{}", outcomes.join("\n"));
    assert_eq!(outcomes.len(), 7);
}

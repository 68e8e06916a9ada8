//! Hex dumps (`hexdump::parse`) on arbitrary text: never a panic, error offsets
//! within the text's characters, the same answer twice; and the differential
//! check: the fuzz input's bytes written in every `hexdump::Style` parse back
//! to exactly those bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mbuspico::hexdump::{self, Style};
use mbuspico_fuzz::{check_err, same};

const STYLES: [Style; 8] = [
    Style::Plain,
    Style::Separated(' '),
    Style::Separated(':'),
    Style::Separated('/'),
    Style::Separated('-'),
    Style::Prefixed(false),
    Style::Lines,
    Style::Otb,
];

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        match hexdump::parse(text) {
            Ok(bytes) => same(&Ok(bytes), &hexdump::parse(text), "hexdump::parse"),
            Err(e) => check_err(&e, text.chars().count(), "hexdump::parse"),
        }
    }
    for style in STYLES {
        let written = hexdump::format(data, style);
        match hexdump::parse(&written) {
            Ok(bytes) => assert_eq!(bytes, data, "{style:?} did not round-trip: {written:?}"),
            Err(e) => panic!("{style:?} of {} bytes did not parse: {e} ({written:?})", data.len()),
        }
    }
});

//! EN 13757-3 application data (data header and records) on arbitrary bytes
//! behind a valid long-frame envelope: the first byte is the CI-field, the rest
//! (at most 252 bytes) the data.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mbuspico::mbus::{self, data, link};
use mbuspico_fuzz::{check_borrowed, check_err};

fuzz_target!(|input: &[u8]| {
    let Some((&ci, rest)) = input.split_first() else {
        return;
    };
    let app = rest.get(..252).unwrap_or(rest);
    let frame = link::emit_long(0x08, 1, ci, app);
    if let Some(r) = check_borrowed!(&frame, "mbus::decode", mbus::decode) {
        assert_eq!(r.ci, ci);
    }
    match data::parse(ci, app, 0) {
        Ok(_) => {}
        Err(e) => check_err(&e, app.len(), "data::parse"),
    }
    let _ = mbus::to_xml(&[&frame], false);
    let _ = mbus::to_xml(&[&frame], true);
});

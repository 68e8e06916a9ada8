//! Wired M-Bus on arbitrary bytes: `mbus::decode` (and the XML of what
//! decodes), the long-frame parser and the link-layer parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mbuspico::mbus::{self, link, LongFrame};
use mbuspico_fuzz::{check_borrowed, check_err};

fuzz_target!(|data: &[u8]| {
    if check_borrowed!(data, "mbus::decode", mbus::decode).is_some() {
        for normalized in [false, true] {
            if let Err(e) = mbus::to_xml(&[data], normalized) {
                panic!("decoded but no XML: {e}");
            }
        }
    }
    match LongFrame::parse(data, 0) {
        Ok(f) => {
            assert!(f.frame_len <= data.len());
            assert!(f.data_offset + f.data.len() <= f.frame_len);
            assert_eq!(
                data.get(f.data_offset..f.data_offset + f.data.len()),
                Some(f.data)
            );
            assert_eq!(data.get(f.ci_offset), Some(&f.ci));
        }
        Err(e) => check_err(&e, data.len(), "LongFrame::parse"),
    }
    // The same frame seen at an offset into a longer input reports offsets there.
    if let Err(e) = LongFrame::parse(data, 1000) {
        check_err(&e, data.len() + 1000, "LongFrame::parse at 1000");
        assert!(
            e.offset >= 1000,
            "offset {} before base 1000: {e}",
            e.offset
        );
    }
    match link::parse(data, 0) {
        Ok((_, len)) => assert!(len <= data.len()),
        Err(e) => check_err(&e, data.len(), "link::parse"),
    }
});

//! Differential: the crate's table-driven CRC-16/ARC against a bit-by-bit one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mbuspico_fuzz::crc16_arc_reference;

fuzz_target!(|data: &[u8]| {
    assert_eq!(
        mbuspico::dsmr::crc::crc16(data),
        crc16_arc_reference(data),
        "{} bytes",
        data.len()
    );
});

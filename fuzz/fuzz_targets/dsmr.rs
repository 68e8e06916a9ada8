//! DSMR P1 on arbitrary bytes: `dsmr::decode` with default options; then the
//! same text with the correct CRC after its `!`, which must never fail the CRC
//! check, so the fuzzer reaches the line parser and reading builder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mbuspico::dsmr;
use mbuspico::ErrorKind;
use mbuspico_fuzz::{check, check_err, dsmr_options, same};

fuzz_target!(|data: &[u8]| {
    let opts = dsmr_options();
    check(data, "dsmr::decode", |d| dsmr::decode(d, opts));

    if let Some(bang) = data.iter().position(|&b| b == b'!') {
        let Some(body) = data.get(..=bang) else {
            return;
        };
        let crc = dsmr::crc::crc16(body);
        let mut fixed = body.to_vec();
        fixed.extend_from_slice(format!("{crc:04X}\r\n").as_bytes());
        match dsmr::decode(&fixed, opts) {
            Ok(r) => match dsmr::decode(&fixed, opts) {
                Ok(again) => same(&r, &again, "dsmr::decode fixed CRC"),
                Err(e) => panic!("decoded once, then failed: {e}"),
            },
            Err(e) => {
                assert!(
                    !matches!(e.kind, ErrorKind::Crc16 { .. }),
                    "CRC {crc:04X} fixed up, still {e}"
                );
                check_err(&e, fixed.len(), "dsmr::decode fixed CRC");
            }
        }
    }
});

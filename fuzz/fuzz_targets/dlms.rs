//! DLMS/COSEM on arbitrary bytes: `dlms::decode` and `decrypt_apdu` with fixed
//! keys (tag checked, tag check skipped, no keys), the plaintext path (the
//! input behind a 0x0F data-notification tag goes straight to the A-XDR
//! parser), and the input as an APDU framed in valid M-Bus transport segments.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mbuspico::dlms::{self, transport, Keys};
use mbuspico_fuzz::{check, keys, keys_skip_tag};

fuzz_target!(|data: &[u8]| {
    let none = Keys::default();
    check(data, "decode", |d| dlms::decode(d, keys()));
    check(data, "decode without keys", |d| dlms::decode(d, &none));
    check(data, "decrypt_apdu", |d| dlms::decrypt_apdu(d, keys()));
    check(data, "decrypt_apdu skip tag", |d| {
        dlms::decrypt_apdu(d, keys_skip_tag())
    });

    let mut plain = Vec::with_capacity(data.len() + 1);
    plain.push(0x0F);
    plain.extend_from_slice(data);
    check(&plain, "decode plaintext", |d| dlms::decode(d, &none));
    if let Some(p) = check(&plain, "decrypt_apdu plaintext", |d| {
        dlms::decrypt_apdu(d, &none)
    }) {
        // A plaintext APDU is handed back as it is.
        assert_eq!(p, plain);
    }

    // The input as an APDU in M-Bus transport segments (the segment size from
    // the length, so every size is reached).
    if !data.is_empty() {
        let wire = transport::emit(data, 1 + data.len() % 250);
        let r = transport::reassemble(&wire);
        assert_eq!(r.as_ref().map(|r| r.apdu.as_slice()).ok(), Some(data));
        check(&wire, "decode framed", |d| dlms::decode(d, keys_skip_tag()));
    }
});

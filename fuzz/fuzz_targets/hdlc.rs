//! HDLC (IEC 62056-46) on arbitrary bytes: `HdlcFrame::parse`, `reassemble`,
//! `reassemble_continuation`, and `dlms::decode` on input starting with 0x7E
//! (which takes the general-block-transfer path when the APDU starts with
//! 0xE0). Then the same bytes as frames with valid HCS and FCS (see
//! `mbuspico_fuzz::hdlc_frames`), so the fuzzer gets past the checksums to the
//! segment and GBT reassembly and the APDU layers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mbuspico::dlms::{self, hdlc};
use mbuspico_fuzz::{check, check_err, hdlc_frames, keys, keys_skip_tag};

fn layers(input: &[u8], what: &str) {
    match hdlc::HdlcFrame::parse(input, 0) {
        Ok(f) => {
            assert!(f.frame_len <= input.len(), "{what}");
            assert!(f.info.len() <= f.frame_len, "{what}");
        }
        Err(e) => check_err(&e, input.len(), what),
    }
    match hdlc::reassemble(input) {
        Ok(r) => {
            assert!(r.consumed <= input.len(), "{what}");
            for i in 0..r.apdu.len() {
                assert_eq!(
                    input.get(r.map.to_input(i)),
                    r.apdu.get(i),
                    "{what}: map at {i}"
                );
            }
        }
        Err(e) => check_err(&e, input.len(), what),
    }
    if let Err(e) = hdlc::reassemble_continuation(input, 0) {
        check_err(&e, input.len(), what);
    }
    check(input, what, |d| dlms::decode(d, keys()));
    check(input, what, |d| dlms::decrypt_apdu(d, keys_skip_tag()));
}

fuzz_target!(|data: &[u8]| {
    layers(data, "raw");
    let mut flagged = Vec::with_capacity(data.len() + 1);
    flagged.push(hdlc::FLAG);
    flagged.extend_from_slice(data);
    layers(&flagged, "7E + raw");

    let (wire, frames) = hdlc_frames(data);
    if frames > 0 {
        // Built frames always verify.
        if let Err(e) = hdlc::HdlcFrame::parse(&wire, 0) {
            panic!("built frame does not parse: {e}");
        }
        layers(&wire, "built frames");
    }
});

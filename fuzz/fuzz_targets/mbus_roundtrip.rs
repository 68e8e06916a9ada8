//! Differential: records written by our EN 13757-3 encoder
//! (`data::emit_variable`) in a long frame decode to the same records
//! (as `tests/properties.rs` `encode_decode_round_trip`, with records drawn
//! from fuzzer bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mbuspico::mbus::data::{self, Application, Header, RecordSpec};
use mbuspico::mbus::link;

/// Data codes with fixed lengths (no LVAR 0xD, no 0x8/0xF specials).
const CODES: [(u8, usize); 13] = [
    (0x0, 0),
    (0x1, 1),
    (0x2, 2),
    (0x3, 3),
    (0x4, 4),
    (0x5, 4),
    (0x6, 6),
    (0x7, 8),
    (0x9, 1),
    (0xA, 2),
    (0xB, 3),
    (0xC, 4),
    (0xE, 6),
];

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn take(&mut self, n: usize) -> Option<Vec<u8>> {
        let (a, b) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = b;
        Some(a.to_vec())
    }
}

fn record(b: &mut Bytes<'_>) -> Option<RecordSpec> {
    let code = b.byte()?;
    let (c, len) = CODES[usize::from(code) % CODES.len()];
    let top = b.byte()?;
    let n_dife = usize::from(b.byte()? % 4);
    let dife = b.take(n_dife)?.iter().map(|x| x & 0x7F).collect();
    // Primary VIFs below the plain-text 0x7C and the extension escapes.
    let vif = b.byte()? % 0x7B;
    let n_vife = usize::from(b.byte()? % 3);
    let vife = b.take(n_vife)?.iter().map(|x| x & 0x7F).collect();
    let data = b.take(len)?;
    Some(RecordSpec {
        dif: (top & 0x70) | c,
        dife,
        vif,
        vife,
        data,
    })
}

fuzz_target!(|input: &[u8]| {
    let mut b = Bytes(input);
    let (Some(id), Some(mfr)) = (b.take(4), b.take(2)) else {
        return;
    };
    let header = Header {
        id: [id[0], id[1], id[2], id[3]],
        manufacturer: u16::from_le_bytes([mfr[0], mfr[1]]) & 0x7FFF,
        version: 1,
        medium: 4,
        access_number: 9,
        status: 0,
        signature: [0, 0],
        long: true,
    };
    // Records while they fit a long frame (252 data bytes, 12 of them header):
    // the rest of the input is not read.
    let mut records = Vec::new();
    let mut size = 12;
    while let Some(r) = record(&mut b) {
        size += 2 + r.dife.len() + r.vife.len() + r.data.len();
        if size > 252 {
            break;
        }
        records.push(r);
    }
    let payload = data::emit_variable(&header, &records);
    if payload.len() > 252 {
        return;
    }
    let frame = link::emit_long(0x08, 1, 0x72, &payload);
    let app = match mbuspico::mbus::parse_telegram(&frame) {
        Ok((_, app)) => app,
        Err(e) => panic!("built frame does not parse: {e}\nrecords {records:?}"),
    };
    let Application::Variable {
        header: h,
        records: got,
        more_records_follow,
    } = app
    else {
        panic!("variable data expected");
    };
    assert_eq!(h, header);
    assert!(!more_records_follow);
    assert_eq!(got.len(), records.len(), "records {records:?}");
    for (g, want) in got.iter().zip(&records) {
        assert_eq!(g.dif & 0x7F, want.dif, "{want:?}");
        let dife: Vec<u8> = g.dife.iter().map(|b| b & 0x7F).collect();
        assert_eq!(dife, want.dife, "{want:?}");
        let Some(vib) = g.vib.as_ref() else {
            panic!("no VIB for {want:?}");
        };
        assert_eq!(vib.vif & 0x7F, want.vif, "{want:?}");
        let vife: Vec<u8> = vib.vife.iter().map(|b| b & 0x7F).collect();
        assert_eq!(vife, want.vife, "{want:?}");
        assert_eq!(g.data, want.data.as_slice(), "{want:?}");
    }
    for normalized in [false, true] {
        if let Err(e) = mbuspico::mbus::to_xml(&[&frame], normalized) {
            panic!("no XML ({normalized}): {e}");
        }
    }
});

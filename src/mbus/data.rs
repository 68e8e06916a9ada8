//! EN 13757-3 application layer: data headers and data records.
//!
//! CI-fields handled (EN 13757-3 Table 2):
//! * 0x72 variable data, long header (identification BCD, manufacturer, version,
//!   medium, access number, status, signature); 0x76 the same, MSB first;
//!   0x7A variable data, short header (access number, status, signature);
//!   0x78 and 0x51 variable data without header;
//! * 0x73 fixed data structure (16 bytes);
//! * 0x70 application error.
//!
//! Data records (§6.3–6.5): DIF, up to 10 DIFE, VIF (0x7C/0xFC plain text as
//! libmbus reads it: length and text right after the VIF), up to 10 VIFE, then
//! the data field whose length the DIF data code gives (LVAR for 0xD). DIF 0x2F
//! is an idle filler; 0x0F/0x1F start manufacturer-specific data to the end of
//! the telegram (0x1F: more records follow). Unknown but well-formed codes are
//! data, never errors; structural faults are [`ErrorKind`]s at the byte found.

use super::value;
use super::vif::Vib;
use crate::cursor::Cursor;
use crate::error::{DecodeError, ErrorKind, Result};

/// Most DIFE or VIFE in one record (libmbus's limit).
pub const MAX_EXTENSIONS: usize = 10;
/// Longest plain-text VIF (libmbus's limit).
pub const MAX_PLAIN_TEXT: usize = 128;

/// The 12-byte long data header (CI 0x72/0x76), or the parts of it a short
/// header (CI 0x7A) carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    /// Identification number, 4 bytes as sent (BCD, LSB first).
    pub id: [u8; 4],
    /// Manufacturer code (three letters packed in 15 bits, LSB first).
    pub manufacturer: u16,
    /// Version (generation).
    pub version: u8,
    /// Medium (device type), EN 13757-3 Table 3.
    pub medium: u8,
    /// Access number.
    pub access_number: u8,
    /// Status byte.
    pub status: u8,
    /// Signature (configuration word), 2 bytes as sent.
    pub signature: [u8; 2],
    /// Whether identification, manufacturer, version and medium were sent (long header).
    pub long: bool,
}

impl Header {
    /// The identification as libmbus prints it: the 4 bytes as one little-endian
    /// number in hex (the decimal digits for valid BCD).
    pub fn id_text(&self) -> String {
        format!("{:X}", u32::from_le_bytes(self.id))
    }

    /// The three-letter manufacturer (FLAG) code, e.g. `KAM`.
    pub fn manufacturer_text(&self) -> String {
        self.manufacturer_letters()
            .iter()
            .map(|&c| char::from(c))
            .collect()
    }

    /// The manufacturer code's three letters (ASCII 0x40–0x5F).
    pub fn manufacturer_letters(&self) -> [u8; 3] {
        let m = self.manufacturer;
        [(m >> 10) & 0x1F, (m >> 5) & 0x1F, m & 0x1F].map(|c| c as u8 + 64)
    }
}

/// One data record, borrowing from the telegram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// Absolute offset of the DIF in the caller's input.
    pub offset: usize,
    /// The whole record as sent (DIF to last data byte).
    pub bytes: &'a [u8],
    /// DIF.
    pub dif: u8,
    /// DIFE bytes (borrowed: they follow the DIF in the telegram).
    pub dife: &'a [u8],
    /// The value information; `None` for manufacturer-specific data (DIF 0x0F/0x1F).
    pub vib: Option<Vib<'a>>,
    /// The LVAR byte of a variable-length field (DIF data code 0xD).
    pub lvar: Option<u8>,
    /// The data field.
    pub data: &'a [u8],
}

/// DIF bits 5–4 (EN 13757-3 Table 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// Instantaneous value.
    Instantaneous,
    /// Maximum value.
    Maximum,
    /// Minimum value.
    Minimum,
    /// Value during error state.
    Error,
    /// Manufacturer-specific data (DIF 0x0F).
    ManufacturerSpecific,
    /// Manufacturer-specific data, more records follow in the next telegram (DIF 0x1F).
    MoreRecordsFollow,
}

impl Record<'_> {
    /// The DIF data code (low nibble).
    pub fn data_code(&self) -> u8 {
        self.dif & 0x0F
    }

    /// What kind of value this is.
    pub fn function(&self) -> Function {
        match (self.vib.is_none(), self.dif, (self.dif >> 4) & 3) {
            (true, 0x1F, _) => Function::MoreRecordsFollow,
            (true, _, _) => Function::ManufacturerSpecific,
            (false, _, 0) => Function::Instantaneous,
            (false, _, 1) => Function::Maximum,
            (false, _, 2) => Function::Minimum,
            _ => Function::Error,
        }
    }

    /// Storage number: DIF bit 6, then 4 bits from each DIFE.
    pub fn storage_number(&self) -> u64 {
        let mut n = u64::from((self.dif >> 6) & 1);
        for (i, e) in self.dife.iter().enumerate() {
            n |= u64::from(e & 0x0F) << (1 + 4 * i);
        }
        n
    }

    /// Tariff: 2 bits from each DIFE.
    pub fn tariff(&self) -> u64 {
        self.dife
            .iter()
            .enumerate()
            .fold(0, |t, (i, e)| t | (u64::from((e >> 4) & 3) << (2 * i)))
    }

    /// Subunit (device): 1 bit from each DIFE.
    pub fn subunit(&self) -> u64 {
        self.dife
            .iter()
            .enumerate()
            .fold(0, |t, (i, e)| t | (u64::from((e >> 6) & 1) << i))
    }
}

/// The fixed data structure (CI 0x73).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fixed {
    /// Identification number (BCD, LSB first).
    pub id: [u8; 4],
    /// Access number.
    pub access_number: u8,
    /// Status: bit 7 binary counters (else BCD), bit 6 stored (else actual) values.
    pub status: u8,
    /// Medium and unit bytes of counter 1 and 2.
    pub units: [u8; 2],
    /// Counter 1, 4 bytes as sent.
    pub counter1: [u8; 4],
    /// Counter 2, 4 bytes as sent.
    pub counter2: [u8; 4],
}

impl Fixed {
    /// The medium: the top two bits of each unit byte.
    pub fn medium(&self) -> u8 {
        let [a, b] = self.units;
        ((a & 0xC0) >> 6) | ((b & 0xC0) >> 4)
    }

    /// A counter's value: binary when status bit 7 is set, else BCD.
    pub fn counter(&self, c: &[u8; 4]) -> i64 {
        if self.status & 0x80 != 0 {
            value::int_le(c)
        } else {
            value::bcd_lenient(c)
        }
    }
}

/// The application data of a telegram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Application<'a> {
    /// Variable data structure.
    Variable {
        /// The data header (all zero with `long` false for the short header).
        header: Header,
        /// The data records, manufacturer-specific data last.
        records: Vec<Record<'a>>,
        /// DIF 0x1F ended the telegram: request the next one.
        more_records_follow: bool,
    },
    /// Fixed data structure.
    Fixed(Fixed),
    /// Application error with its code (EN 13757-3 Table 5); 0 when no byte was sent.
    Error(u8),
}

fn premature(part: &'static str, at: usize) -> DecodeError {
    DecodeError::new(ErrorKind::PrematureEnd { part }, at)
}

/// Bytes of a data field of data code `code` (`None` for LVAR).
fn data_length(code: u8) -> Option<usize> {
    Some(match code {
        0x0 | 0x8 | 0xF => 0,
        0x1 | 0x9 => 1,
        0x2 | 0xA => 2,
        0x3 | 0xB => 3,
        0x4 | 0x5 | 0xC => 4,
        0x6 | 0xE => 6,
        0x7 => 8,
        _ => return None,
    })
}

/// Bytes after an LVAR byte (EN 13757-3 Table 7, as libmbus reads it).
fn lvar_length(lvar: u8) -> usize {
    match lvar {
        0x00..=0xBF => usize::from(lvar),
        0xC0..=0xC9 => 2 * usize::from(lvar - 0xC0),
        0xD0..=0xD9 => 2 * usize::from(lvar - 0xD0),
        0xE0..=0xEF => usize::from(lvar - 0xE0),
        0xF0..=0xF4 => 4 * usize::from(lvar - 0xEC),
        0xF5 => 48,
        0xF6 => 64,
        _ => 0,
    }
}

/// Parses one record at the cursor (which is on a DIF that is not a filler).
fn record<'a>(cur: &mut Cursor<'a>, all: &'a [u8]) -> Result<Record<'a>> {
    let start = cur.position();
    let offset = cur.offset();
    let dif = cur.u8()?;
    if dif & 0x0F == 0x0F {
        // Manufacturer-specific data to the end of the telegram.
        let data = cur.take(cur.remaining())?;
        return Ok(Record {
            offset,
            bytes: all.get(start..cur.position()).unwrap_or_default(),
            dif,
            dife: &[],
            vib: None,
            lvar: None,
            data,
        });
    }
    let dife_start = cur.position();
    let mut last = dif;
    while last & 0x80 != 0 {
        if cur.position() - dife_start == MAX_EXTENSIONS {
            return Err(cur.error(ErrorKind::TooManyExtensions { part: "DIFE" }));
        }
        last = cur.u8().map_err(|e| premature("DIF", e.offset))?;
    }
    let dife = all.get(dife_start..cur.position()).unwrap_or_default();
    let vif = cur.u8().map_err(|e| premature("VIF", e.offset))?;
    let mut text = None;
    if vif & 0x7F == 0x7C {
        let len_at = cur.offset();
        let len = usize::from(
            cur.u8()
                .map_err(|e| premature("variable length VIF", e.offset))?,
        );
        if len > MAX_PLAIN_TEXT {
            return Err(DecodeError::new(
                ErrorKind::PlainTextTooLong { len },
                len_at,
            ));
        }
        let bytes = cur
            .take(len)
            .map_err(|e| premature("variable length VIF", e.offset))?;
        // Sent last character first.
        text = Some(value::reversed_text(bytes));
    }
    let vife_start = cur.position();
    let mut last = vif;
    while last & 0x80 != 0 {
        if cur.position() - vife_start == MAX_EXTENSIONS {
            return Err(cur.error(ErrorKind::TooManyExtensions { part: "VIFE" }));
        }
        last = cur.u8().map_err(|e| premature("VIF", e.offset))?;
    }
    let vife = all.get(vife_start..cur.position()).unwrap_or_default();
    let (lvar, len) = match data_length(dif & 0x0F) {
        Some(len) => (None, len),
        None => {
            let l = cur.u8().map_err(|e| premature("data", e.offset))?;
            (Some(l), lvar_length(l))
        }
    };
    let data = cur.take(len).map_err(|e| premature("data", e.offset))?;
    Ok(Record {
        offset,
        bytes: all.get(start..cur.position()).unwrap_or_default(),
        dif,
        dife,
        vib: Some(Vib { vif, vife, text }),
        lvar,
        data,
    })
}

/// Parses the application data after the CI-field. `data` is everything after
/// the CI-field; `base` its absolute offset.
///
/// # Errors
/// [`ErrorKind::UnsupportedCi`] for CI-fields other than those listed in the
/// module docs; [`ErrorKind::HeaderTooShort`]; [`ErrorKind::FixedDataLength`];
/// record errors: [`ErrorKind::PrematureEnd`], [`ErrorKind::TooManyExtensions`],
/// [`ErrorKind::PlainTextTooLong`].
pub fn parse(ci: u8, data: &[u8], base: usize) -> Result<Application<'_>> {
    let mut cur = Cursor::new(data, base);
    let header = match ci {
        0x70 => return Ok(Application::Error(data.first().copied().unwrap_or(0))),
        0x73 => {
            let arr: [u8; 16] = data.try_into().map_err(|_| {
                DecodeError::new(ErrorKind::FixedDataLength { len: data.len() }, base)
            })?;
            let [i0, i1, i2, i3, access_number, status, u0, u1, a0, a1, a2, a3, b0, b1, b2, b3] =
                arr;
            return Ok(Application::Fixed(Fixed {
                id: [i0, i1, i2, i3],
                access_number,
                status,
                units: [u0, u1],
                counter1: [a0, a1, a2, a3],
                counter2: [b0, b1, b2, b3],
            }));
        }
        0x72 | 0x76 => {
            let h: [u8; 12] = data
                .get(..12)
                .and_then(|s| s.try_into().ok())
                .ok_or_else(|| {
                    DecodeError::new(ErrorKind::HeaderTooShort { len: data.len() }, base)
                })?;
            let [i0, i1, i2, i3, m0, m1, version, medium, access_number, status, s0, s1] = h;
            cur.take(12)?;
            Header {
                id: [i0, i1, i2, i3],
                manufacturer: u16::from_le_bytes([m0, m1]),
                version,
                medium,
                access_number,
                status,
                signature: [s0, s1],
                long: true,
            }
        }
        0x7A => {
            let h: [u8; 4] = data
                .get(..4)
                .and_then(|s| s.try_into().ok())
                .ok_or_else(|| {
                    DecodeError::new(ErrorKind::HeaderTooShort { len: data.len() }, base)
                })?;
            let [access_number, status, s0, s1] = h;
            cur.take(4)?;
            Header {
                access_number,
                status,
                signature: [s0, s1],
                ..Header::default()
            }
        }
        0x51 | 0x78 => Header::default(),
        _ => {
            return Err(DecodeError::new(
                ErrorKind::UnsupportedCi { ci },
                base.saturating_sub(1),
            ))
        }
    };
    // A record takes at least 2 bytes and most take 4 to 7: one allocation.
    let mut records = Vec::with_capacity(cur.remaining() / 4 + 1);
    let mut more_records_follow = false;
    while let Ok(dif) = cur.peek() {
        if dif == 0x2F {
            cur.u8()?;
            continue;
        }
        let r = record(&mut cur, data)?;
        if r.vib.is_none() {
            more_records_follow = r.dif == 0x1F;
        }
        records.push(r);
    }
    Ok(Application::Variable {
        header,
        records,
        more_records_follow,
    })
}

/// A data record to write (the emit side of [`parse`]), for the simulated slave
/// and round-trip tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSpec {
    /// DIF (its extension bit is set by [`emit_variable`] when DIFE follow).
    pub dif: u8,
    /// DIFE (extension bits set as needed).
    pub dife: Vec<u8>,
    /// VIF (extension bit set when VIFE follow).
    pub vif: u8,
    /// VIFE (extension bits set as needed).
    pub vife: Vec<u8>,
    /// The data field, its length matching the DIF data code.
    pub data: Vec<u8>,
}

fn with_extension_bits(first: u8, rest: &[u8], out: &mut Vec<u8>) {
    let mut prev = if rest.is_empty() {
        first & 0x7F
    } else {
        first | 0x80
    };
    out.push(prev);
    for (i, b) in rest.iter().enumerate() {
        prev = if i + 1 < rest.len() {
            b | 0x80
        } else {
            b & 0x7F
        };
        out.push(prev);
    }
}

/// Writes a variable data structure with a long header (CI 0x72 data).
pub fn emit_variable(header: &Header, records: &[RecordSpec]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&header.id);
    out.extend_from_slice(&header.manufacturer.to_le_bytes());
    out.extend_from_slice(&[
        header.version,
        header.medium,
        header.access_number,
        header.status,
    ]);
    out.extend_from_slice(&header.signature);
    for r in records {
        with_extension_bits(r.dif, &r.dife, &mut out);
        with_extension_bits(r.vif, &r.vife, &mut out);
        out.extend_from_slice(&r.data);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    // ACW Itron BM +m (libmbus corpus), after the CI-field.
    const ITRON: &str = "78 03 49 11 77 04 0E 16 0A 00 00 00 0C 78 78 03 49 11 04 13 31 D4 00 00 \
        42 6C 00 00 44 13 00 00 00 00 04 6D 0B 0B CD 13 02 27 00 00 09 FD 0E 02 09 FD 0F 06 0F \
        00 01 75 13";

    #[test]
    fn itron_records() {
        let data = crate::hex::decode(ITRON).unwrap();
        let Application::Variable {
            header, records, ..
        } = parse(0x72, &data, 7).unwrap()
        else {
            panic!("variable")
        };
        assert_eq!(header.id_text(), "11490378");
        assert_eq!(header.manufacturer_text(), "ACW");
        assert_eq!(records.len(), 9);
        assert_eq!(records[2].storage_number(), 1);
        assert_eq!(records[8].function(), Function::ManufacturerSpecific);
        assert_eq!(records[8].data, [0x00, 0x01, 0x75, 0x13]);
        assert_eq!(records[0].offset, 7 + 12);
    }

    #[test]
    fn record_errors_name_the_part_and_byte() {
        // Header then DIF 0x04, VIF 0x13, but only 2 of 4 data bytes.
        let mut data = vec![0; 12];
        data.extend_from_slice(&[0x04, 0x13, 0x01, 0x02]);
        let e = parse(0x72, &data, 0).unwrap_err();
        assert_eq!(e.kind, ErrorKind::PrematureEnd { part: "data" });
        // Reported where the short data field starts.
        assert_eq!(e.offset, 14);
        let e = parse(0x72, &[0; 5], 7).unwrap_err();
        assert_eq!(e.kind, ErrorKind::HeaderTooShort { len: 5 });
        let mut data = vec![0; 12];
        data.push(0x84);
        data.extend_from_slice(&[0x80; 11]);
        let e = parse(0x72, &data, 0).unwrap_err();
        assert_eq!(e.kind, ErrorKind::TooManyExtensions { part: "DIFE" });
        assert_eq!(
            parse(0x99, &[], 7).unwrap_err().kind,
            ErrorKind::UnsupportedCi { ci: 0x99 }
        );
        assert_eq!(parse(0x70, &[8], 7).unwrap(), Application::Error(8));
    }

    #[test]
    fn dife_fields() {
        // DIF 0xC4 (storage bit), DIFE 0x5B: storage 1 | (0xB << 1), tariff 1, subunit 1.
        let mut data = vec![0; 12];
        data.extend_from_slice(&[0xC4, 0x5B, 0x13, 1, 2, 3, 4]);
        let Application::Variable { records, .. } = parse(0x72, &data, 0).unwrap() else {
            panic!("variable")
        };
        let r = &records[0];
        assert_eq!(r.storage_number(), 1 | (0xB << 1));
        assert_eq!(r.tariff(), 1);
        assert_eq!(r.subunit(), 1);
    }
}

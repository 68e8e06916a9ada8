//! What a data record's bytes mean: the value by DIF data code and VIF
//! (EN 13757-3 §6.3 Table 4 data field codings, Annex A types).

use super::data::{Function, Record};
use super::value::{self, DateTime};

/// A decoded data field, borrowing its bytes from the telegram.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordValue<'a> {
    /// No data (data code 0x0, selection for readout 0x8 aside).
    Empty,
    /// A binary integer (data codes 0x1–0x4, 0x6, 0x7).
    Int(i64),
    /// A BCD number (data codes 0x9–0xC, 0xE), with its raw bytes.
    Bcd(i64, &'a [u8]),
    /// A 32-bit real (data code 0x5).
    Real(f32),
    /// A date (type G) or date-time (types F and I).
    Date(DateTime),
    /// Variable-length text (LVAR ≤ 0xBF), as sent: last character first
    /// (see [`value::reversed_text`]).
    Text(&'a [u8]),
    /// Bytes shown as hex in this order (manufacturer data).
    Hex(&'a [u8]),
    /// Bytes shown as hex last byte first (binary LVAR: libmbus shows it most
    /// significant byte first).
    HexReversed(&'a [u8]),
    /// Data code 0x8 (selection for readout) or another code without value.
    Unknown(u8),
}

fn is_time_point_fd(r: &Record<'_>) -> bool {
    r.vib.as_ref().is_some_and(|v| {
        v.vif == 0xFD
            && v.vife
                .first()
                .is_some_and(|e| matches!(e & 0x7F, 0x30 | 0x70))
    })
}

/// Decodes the data field of `r`.
pub fn decode<'a>(r: &Record<'a>) -> RecordValue<'a> {
    let Some(vib) = &r.vib else {
        return RecordValue::Hex(r.data);
    };
    let vif = vib.vif & 0x7F;
    let len = r.data.len();
    match r.data_code() {
        0x0 => RecordValue::Empty,
        0x1..=0x4 => {
            if vif == 0x6C && len == 2 {
                RecordValue::Date(value::date_g(r.data))
            } else if (vif == 0x6D || is_time_point_fd(r)) && len == 4 {
                RecordValue::Date(value::datetime_f(r.data))
            } else {
                RecordValue::Int(value::int_le(r.data))
            }
        }
        0x5 => {
            let bits = value::uint_le(r.data) as u32;
            RecordValue::Real(f32::from_bits(bits))
        }
        0x6 => {
            if (vif == 0x6D || is_time_point_fd(r)) && len == 6 {
                RecordValue::Date(value::datetime_i(r.data))
            } else {
                RecordValue::Int(value::int_le(r.data))
            }
        }
        0x7 => RecordValue::Int(value::int_le(r.data)),
        0x9..=0xC | 0xE => RecordValue::Bcd(value::bcd_lenient(r.data), r.data),
        0xD => match r.lvar {
            Some(0x00..=0xBF) => RecordValue::Text(r.data),
            // Binary LVAR: libmbus shows it most significant byte first.
            _ => RecordValue::HexReversed(r.data),
        },
        0xF => RecordValue::Hex(r.data),
        _ => RecordValue::Unknown(r.dif),
    }
}

/// The value as libmbus prints it in its non-normalized XML.
pub fn text(r: &Record<'_>, v: &RecordValue) -> String {
    match v {
        RecordValue::Empty => String::new(),
        RecordValue::Int(i) => i.to_string(),
        RecordValue::Bcd(i, raw) => {
            if r.function() == Function::Error {
                // libmbus shows BCD of an error-state value as its raw digits.
                format!("{:X}", value::uint_le(raw))
            } else {
                i.to_string()
            }
        }
        RecordValue::Real(f) => format!("{:.6}", f64::from(*f)),
        RecordValue::Date(d) => d.iso(),
        RecordValue::Text(s) => value::reversed_text(s),
        RecordValue::Hex(b) => value::hex_spaced(b.iter().copied()),
        RecordValue::HexReversed(b) => value::hex_spaced(b.iter().rev().copied()),
        RecordValue::Unknown(dif) => format!("Unknown DIF (0x{dif:02x})"),
    }
}

/// The raw number, for scaling.
pub fn number(v: &RecordValue) -> Option<f64> {
    match v {
        RecordValue::Int(i) | RecordValue::Bcd(i, _) => Some(*i as f64),
        RecordValue::Real(f) => Some(f64::from(*f)),
        _ => None,
    }
}

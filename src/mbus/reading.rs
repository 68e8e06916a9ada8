//! A decoded M-Bus telegram as a reading: header fields and records with
//! quantity, base unit and scaled value.

use super::data::{Application, Function, Record};
use super::record_value::{self, RecordValue};
use super::vif;
use super::LongFrame;
use crate::dlms::reading::Value;
use crate::hex;

/// One data record of a reading.
#[derive(Debug, Clone, PartialEq)]
pub struct MbusRecord {
    /// `instantaneous`, `maximum`, `minimum`, `error` (value during error
    /// state), `manufacturer_specific`, `more_records_follow`; fixed data:
    /// `actual` or `stored`.
    pub function: &'static str,
    /// Storage number (0 = current value).
    pub storage_number: u64,
    /// Tariff.
    pub tariff: u64,
    /// Subunit (device).
    pub subunit: u64,
    /// Quantity (`Energy`, `Volume`, …, or a plain-text VIF); `None` when unknown.
    pub quantity: Option<String>,
    /// Base unit (`Wh`, `m^3`, `°C`, …); `None` when dimensionless or unknown.
    pub unit: Option<String>,
    /// Value in that unit: a number, ISO 8601 date or date-time, text, or hex.
    pub value: Value,
    /// The record's bytes, hex.
    pub raw: String,
}

/// The header fields of a telegram with a long data header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderInfo {
    /// Identification number (8 digits for BCD).
    pub id: String,
    /// Manufacturer FLAG code.
    pub manufacturer: String,
    /// Version.
    pub version: u8,
    /// Product name when known (libmbus's table), else empty.
    pub product_name: &'static str,
    /// Medium, EN 13757-3 Table 3 in libmbus's words.
    pub medium: String,
}

/// A decoded wired M-Bus telegram.
#[derive(Debug, Clone, PartialEq)]
pub struct MbusReading {
    /// C-field.
    pub control: u8,
    /// A-field.
    pub address: u8,
    /// CI-field.
    pub ci: u8,
    /// Identification, manufacturer, version and medium (long header and fixed data).
    pub header: Option<HeaderInfo>,
    /// Access number.
    pub access_number: Option<u8>,
    /// Status byte.
    pub status: Option<u8>,
    /// Signature (configuration word), as a number.
    pub signature: Option<u16>,
    /// The data records.
    pub records: Vec<MbusRecord>,
    /// DIF 0x1F ended the telegram: the slave has more.
    pub more_records_follow: bool,
    /// Application error code and text (CI 0x70).
    pub error: Option<(u8, String)>,
}

fn function_name(f: Function) -> &'static str {
    match f {
        Function::Instantaneous => "instantaneous",
        Function::Maximum => "maximum",
        Function::Minimum => "minimum",
        Function::Error => "error",
        Function::ManufacturerSpecific => "manufacturer_specific",
        Function::MoreRecordsFollow => "more_records_follow",
    }
}

/// `raw × factor + offset`, as an int when that is exact, dividing by powers of
/// ten so decimal values come out as the nearest double (54.321, not 54.321000000000005).
fn scale(raw: f64, factor: f64, offset: f64) -> Value {
    if offset == 0.0 && factor >= 1.0 && factor.fract() == 0.0 && raw.fract() == 0.0 {
        let v = raw * factor;
        if v.abs() < 9.0e15 {
            return Value::Int(v as i64);
        }
        return Value::Float(v);
    }
    if factor > 0.0 && factor < 1.0 {
        let inverse = (1.0 / factor).round();
        if (inverse * factor - 1.0).abs() < 1e-12 {
            return Value::Float(raw / inverse + offset);
        }
    }
    Value::Float(raw * factor + offset)
}

fn record(r: &Record<'_>) -> MbusRecord {
    let value = record_value::decode(r);
    let norm = r.vib.as_ref().and_then(vif::normalized);
    let (quantity, unit) = match (&r.vib, &norm) {
        (Some(v), Some(n)) => (
            Some(v.text.clone().unwrap_or_else(|| n.quantity.to_owned())),
            match n.unit {
                "" | "-" => None,
                u => Some(u.to_owned()),
            },
        ),
        (None, _) => (Some("Manufacturer specific".to_owned()), None),
        _ => (None, None),
    };
    let v = match (&value, record_value::number(&value), &norm) {
        // Invalid (IV bit) or impossible dates ("2000-00-00") are no dates.
        (RecordValue::Date(d), _, _) if d.invalid || !(1..=12).contains(&d.month) || d.day == 0 => {
            Value::Null
        }
        (RecordValue::Date(d), _, _) => Value::Text(d.iso()),
        (_, Some(x), Some(n)) => scale(x, n.factor, n.offset),
        (RecordValue::Real(f), _, None) => Value::Float(f64::from(*f)),
        (RecordValue::Int(i) | RecordValue::Bcd(i, _), _, None) => Value::Int(*i),
        (RecordValue::Text(s), _, _) => Value::Text(s.clone()),
        (RecordValue::Hex(b), _, _) => Value::Text(hex::encode(b)),
        _ => Value::Null,
    };
    MbusRecord {
        function: function_name(r.function()),
        storage_number: r.storage_number(),
        tariff: r.tariff(),
        subunit: r.subunit(),
        quantity,
        unit,
        value: v,
        raw: hex::encode(r.bytes),
    }
}

/// Builds the reading of a parsed telegram.
pub fn build(frame: &LongFrame<'_>, app: &Application<'_>) -> MbusReading {
    let mut out = MbusReading {
        control: frame.control,
        address: frame.address,
        ci: frame.ci,
        header: None,
        access_number: None,
        status: None,
        signature: None,
        records: Vec::new(),
        more_records_follow: false,
        error: None,
    };
    match app {
        Application::Error(code) => out.error = Some((*code, vif::error_text(*code))),
        Application::Fixed(f) => {
            out.header = Some(HeaderInfo {
                id: format!("{:X}", u32::from_le_bytes(f.id)),
                manufacturer: String::new(),
                version: 0,
                product_name: "",
                medium: vif::fixed_medium_text(f.medium()).to_owned(),
            });
            out.access_number = Some(f.access_number);
            out.status = Some(f.status);
            let function = if f.status & 0x40 != 0 {
                "stored"
            } else {
                "actual"
            };
            for (unit, counter) in [(f.units[0], &f.counter1), (f.units[1], &f.counter2)] {
                out.records.push(MbusRecord {
                    function,
                    storage_number: 0,
                    tariff: 0,
                    subunit: 0,
                    quantity: None,
                    unit: Some(vif::fixed_unit_text(unit).to_owned()),
                    value: Value::Int(f.counter(counter)),
                    raw: hex::encode(counter),
                });
            }
        }
        Application::Variable {
            header,
            records,
            more_records_follow,
        } => {
            if header.long {
                let manufacturer = header.manufacturer_text();
                out.header = Some(HeaderInfo {
                    id: header.id_text(),
                    product_name: vif::product_name(
                        &manufacturer,
                        header.version,
                        header.medium,
                        header.id[3],
                    ),
                    manufacturer,
                    version: header.version,
                    medium: vif::medium_text(header.medium),
                });
            }
            if header.long || frame.ci == 0x7A {
                out.access_number = Some(header.access_number);
                out.status = Some(header.status);
                out.signature = Some(u16::from_le_bytes(header.signature));
            }
            out.records = records.iter().map(record).collect();
            out.more_records_follow = *more_records_follow;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_is_exact() {
        assert_eq!(scale(54321.0, 1.0e-3, 0.0), Value::Float(54.321));
        assert_eq!(scale(2.0, 3600.0, 0.0), Value::Int(7200));
        assert_eq!(scale(12.0, 1.0, 0.0), Value::Int(12));
        assert_eq!(scale(-17.0, 1.0e-1, 0.0), Value::Float(-1.7));
    }
}

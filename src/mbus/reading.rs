//! A decoded M-Bus telegram as a reading: header fields and records with
//! quantity, base unit and scaled value.

use std::borrow::Cow;

use super::data::{Application, Function, Record};
use super::record_value::{self, RecordValue};
use super::value::{self, DateTime};
use super::vif;
use super::LongFrame;
use crate::hex;
use crate::value::Value;

/// The value of a record, borrowing from the telegram: text is only made when
/// asked for ([`MbusValue::to_value`], [`MbusValue::text`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MbusValue<'a> {
    /// No value (empty data, unknown coding, invalid date).
    Null,
    /// A whole number.
    Int(i64),
    /// A number with a fractional part.
    Float(f64),
    /// A date or date-time, shown as ISO 8601 ([`DateTime::iso`]).
    Date(DateTime),
    /// Variable-length text as sent: last character first, one Latin-1
    /// character per byte.
    Text(&'a [u8]),
    /// Bytes shown as lower-case hex in this order.
    Hex(&'a [u8]),
    /// Bytes shown as lower-case hex last byte first (binary LVAR).
    HexReversed(&'a [u8]),
}

impl MbusValue<'_> {
    /// The text of a text, date or hex value; `None` for numbers and null.
    pub fn text(&self) -> Option<String> {
        match self {
            MbusValue::Null | MbusValue::Int(_) | MbusValue::Float(_) => None,
            MbusValue::Date(d) => Some(d.iso()),
            MbusValue::Text(b) => Some(value::reversed_text(b)),
            MbusValue::Hex(b) => Some(hex::encode(b)),
            MbusValue::HexReversed(b) => {
                Some(hex::encode(&b.iter().rev().copied().collect::<Vec<u8>>()))
            }
        }
    }

    /// As a generic reading [`Value`] (text made here).
    pub fn to_value(&self) -> Value {
        match self {
            MbusValue::Null => Value::Null,
            MbusValue::Int(i) => Value::Int(*i),
            MbusValue::Float(f) => Value::Float(*f),
            other => other.text().map_or(Value::Null, Value::Text),
        }
    }
}

/// One data record of a reading, borrowing from the telegram.
#[derive(Debug, Clone, PartialEq)]
pub struct MbusRecord<'a> {
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
    /// Quantity (`Energy`, `Volume`, …, or a plain-text VIF); `None` when
    /// unknown. Owned only for a plain-text VIF.
    pub quantity: Option<Cow<'static, str>>,
    /// Base unit (`Wh`, `m^3`, `°C`, …); `None` when dimensionless or unknown.
    pub unit: Option<&'static str>,
    /// Value in that unit: a number, date or date-time, text, or hex.
    pub value: MbusValue<'a>,
    /// The record's bytes as sent ([`MbusRecord::raw_hex`] for the hex).
    pub raw: &'a [u8],
}

impl MbusRecord<'_> {
    /// The record's bytes, lower-case hex.
    pub fn raw_hex(&self) -> String {
        hex::encode(self.raw)
    }
}

/// The header fields of a telegram with a long data header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderInfo {
    /// Identification number: the 4 bytes as one little-endian number, shown
    /// in upper-case hex (the decimal digits for valid BCD; [`HeaderInfo::id_text`]).
    pub id: u32,
    /// Manufacturer FLAG code, three ASCII letters; `None` for fixed data.
    pub manufacturer: Option<[u8; 3]>,
    /// Version.
    pub version: u8,
    /// Product name when known (libmbus's table), else empty.
    pub product_name: &'static str,
    /// Medium, EN 13757-3 Table 3 in libmbus's words.
    pub medium: Cow<'static, str>,
}

impl HeaderInfo {
    /// The identification as libmbus prints it (`{:X}` of [`HeaderInfo::id`]).
    pub fn id_text(&self) -> String {
        format!("{:X}", self.id)
    }

    /// The manufacturer code, e.g. `KAM`; `None` for fixed data.
    pub fn manufacturer_text(&self) -> Option<&str> {
        self.manufacturer
            .as_ref()
            .and_then(|m| std::str::from_utf8(m).ok())
    }
}

/// A decoded wired M-Bus telegram, borrowing from the telegram's bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct MbusReading<'a> {
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
    pub records: Vec<MbusRecord<'a>>,
    /// DIF 0x1F ended the telegram: the slave has more.
    pub more_records_follow: bool,
    /// Application error code and text (CI 0x70).
    pub error: Option<(u8, Cow<'static, str>)>,
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
fn scale(raw: f64, factor: f64, offset: f64) -> MbusValue<'static> {
    if offset == 0.0 && factor >= 1.0 && factor.fract() == 0.0 && raw.fract() == 0.0 {
        let v = raw * factor;
        if v.abs() < 9.0e15 {
            return MbusValue::Int(v as i64);
        }
        return MbusValue::Float(v);
    }
    if factor > 0.0 && factor < 1.0 {
        let inverse = (1.0 / factor).round();
        if (inverse * factor - 1.0).abs() < 1e-12 {
            return MbusValue::Float(raw / inverse + offset);
        }
    }
    MbusValue::Float(raw * factor + offset)
}

fn record<'a>(r: &Record<'a>) -> MbusRecord<'a> {
    let value = record_value::decode(r);
    let norm = r.vib.as_ref().and_then(vif::normalized);
    let (quantity, unit) = match (&r.vib, &norm) {
        (Some(v), Some(n)) => (
            Some(match &v.text {
                Some(t) => Cow::Owned(t.clone()),
                None => Cow::Borrowed(n.quantity),
            }),
            match n.unit {
                "" | "-" => None,
                u => Some(u),
            },
        ),
        (None, _) => (Some(Cow::Borrowed("Manufacturer specific")), None),
        _ => (None, None),
    };
    let v = match (&value, record_value::number(&value), &norm) {
        // Invalid (IV bit) or impossible dates ("2000-00-00") are no dates.
        (RecordValue::Date(d), _, _) if d.invalid || !(1..=12).contains(&d.month) || d.day == 0 => {
            MbusValue::Null
        }
        (RecordValue::Date(d), _, _) => MbusValue::Date(*d),
        (_, Some(x), Some(n)) => scale(x, n.factor, n.offset),
        (RecordValue::Real(f), _, None) => MbusValue::Float(f64::from(*f)),
        (RecordValue::Int(i) | RecordValue::Bcd(i, _), _, None) => MbusValue::Int(*i),
        (RecordValue::Text(s), _, _) => MbusValue::Text(s),
        (RecordValue::Hex(b), _, _) => MbusValue::Hex(b),
        (RecordValue::HexReversed(b), _, _) => MbusValue::HexReversed(b),
        _ => MbusValue::Null,
    };
    MbusRecord {
        function: function_name(r.function()),
        storage_number: r.storage_number(),
        tariff: r.tariff(),
        subunit: r.subunit(),
        quantity,
        unit,
        value: v,
        raw: r.bytes,
    }
}

/// Builds the reading of a parsed telegram.
pub fn build<'a>(frame: &LongFrame<'a>, app: &Application<'a>) -> MbusReading<'a> {
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
                id: u32::from_le_bytes(f.id),
                manufacturer: None,
                version: 0,
                product_name: "",
                medium: Cow::Borrowed(vif::fixed_medium_text(f.medium())),
            });
            out.access_number = Some(f.access_number);
            out.status = Some(f.status);
            let function = if f.status & 0x40 != 0 {
                "stored"
            } else {
                "actual"
            };
            // The counters as sent: bytes 8–11 and 12–15 of the fixed structure.
            let raw = [
                frame.data.get(8..12).unwrap_or_default(),
                frame.data.get(12..16).unwrap_or_default(),
            ];
            out.records = [(f.units[0], &f.counter1), (f.units[1], &f.counter2)]
                .into_iter()
                .zip(raw)
                .map(|((unit, counter), raw)| MbusRecord {
                    function,
                    storage_number: 0,
                    tariff: 0,
                    subunit: 0,
                    quantity: None,
                    unit: Some(vif::fixed_unit_text(unit)),
                    value: MbusValue::Int(f.counter(counter)),
                    raw,
                })
                .collect();
        }
        Application::Variable {
            header,
            records,
            more_records_follow,
        } => {
            if header.long {
                let manufacturer = header.manufacturer_letters();
                let name = std::str::from_utf8(&manufacturer).unwrap_or_default();
                out.header = Some(HeaderInfo {
                    id: u32::from_le_bytes(header.id),
                    product_name: vif::product_name(
                        name,
                        header.version,
                        header.medium,
                        header.id[3],
                    ),
                    manufacturer: Some(manufacturer),
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

/// Every `&'static str` a reading's record `function`, `quantity` and `unit`
/// and header `medium` can be, with duplicates: for callers that convert each
/// text once and find it again by address.
pub fn static_texts() -> Vec<&'static str> {
    let mut out = vec!["actual", "stored", "Manufacturer specific"];
    out.extend(
        [
            Function::Instantaneous,
            Function::Maximum,
            Function::Minimum,
            Function::Error,
            Function::ManufacturerSpecific,
            Function::MoreRecordsFollow,
        ]
        .map(function_name),
    );
    let bytes: [u8; 256] = std::array::from_fn(|i| i as u8);
    let mut vibs = Vec::with_capacity(3 * 256);
    for b in &bytes {
        vibs.push(vif::Vib {
            vif: *b,
            vife: &[],
            text: None,
        });
        for vif in [0xFB, 0xFD] {
            vibs.push(vif::Vib {
                vif,
                vife: std::slice::from_ref(b),
                text: None,
            });
        }
    }
    for n in vibs.iter().filter_map(vif::normalized) {
        out.push(n.quantity);
        out.push(n.unit);
    }
    for code in 0..=255u8 {
        if let Cow::Borrowed(m) = vif::medium_text(code) {
            out.push(m);
        }
        out.push(vif::fixed_medium_text(code));
        out.push(vif::fixed_unit_text(code));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_is_exact() {
        assert_eq!(scale(54321.0, 1.0e-3, 0.0), MbusValue::Float(54.321));
        assert_eq!(scale(2.0, 3600.0, 0.0), MbusValue::Int(7200));
        assert_eq!(scale(12.0, 1.0, 0.0), MbusValue::Int(12));
        assert_eq!(scale(-17.0, 1.0e-1, 0.0), MbusValue::Float(-1.7));
    }
}

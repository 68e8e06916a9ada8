//! From a parsed telegram to a reading: typed values, names, timestamps, M-Bus
//! channels (DSMR 5.0.2 §6.4–6.12; e-MUCS 1.7.1 for Belgium; Luxembourg Smarty
//! P1 specification v1.1.3).
//!
//! Values: `Fn(x,y)` decimals become floats (the original digits are kept in
//! `raw`), integers ints, octet strings (equipment identifiers, messages, the
//! tariff indicator `0001`) stay text as sent, empty groups `()` are None.
//! Timestamps `YYMMDDhhmmssX` are the meter's local time: the offset comes from
//! the meter's time zone (default Europe/Amsterdam), and in the repeated autumn
//! hour X decides (S = still summer time, W = winter time). Placeholders such as
//! `632525252525S` are None, never errors.

use std::borrow::Cow;

use jiff::civil::DateTime as Civil;
use jiff::tz::{AmbiguousOffset, TimeZone};

use super::names::Names;
use super::telegram::{Code, Crc, Line, Telegram};
use crate::value::Value;

/// A decoded timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// ISO 8601 local time with the UTC offset.
    pub iso: String,
    /// Seconds since 1970-01-01 UTC.
    pub unix: i64,
}

/// Converts `YYMMDDhhmmss[S|W]` in `tz`; `None` for placeholders and nonsense.
pub fn timestamp(raw: &[u8], tz: &TimeZone) -> Option<Stamp> {
    let digits = raw.get(..12)?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let flag = raw.get(12).copied();
    if raw.len() > 13 || !matches!(flag, None | Some(b'S' | b'W' | b's' | b'w')) {
        return None;
    }
    let n = |i: usize| -> i8 {
        let hi = digits.get(i).map_or(0, |d| d - b'0');
        let lo = digits.get(i + 1).map_or(0, |d| d - b'0');
        (hi * 10 + lo) as i8
    };
    // YY is 20YY; 70 and later are placeholders ("700101010000W", the epoch
    // an empty M-Bus channel reports; "632525252525S" fails as a date anyway).
    if n(0) >= 70 {
        return None;
    }
    let civil = Civil::new(2000 + i16::from(n(0)), n(2), n(4), n(6), n(8), n(10), 0).ok()?;
    let offset = match tz.to_ambiguous_timestamp(civil).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset,
        // Repeated hour: S is the first occurrence (summer time), W the second.
        AmbiguousOffset::Fold { before, after } => match flag {
            Some(b'W' | b'w') => after,
            _ => before,
        },
        // Skipped hour: no such local time; keep the clock's reading on the old offset.
        AmbiguousOffset::Gap { before, .. } => before,
    };
    let unix = offset.to_timestamp(civil).ok()?.as_second();
    Some(Stamp {
        iso: iso(civil, offset.seconds()),
        unix,
    })
}

/// `YYYY-MM-DDThh:mm:ss±hh:mm` of a local time (year 0 to 9999) and its UTC
/// offset in seconds, written digit by digit (this runs for most telegrams).
fn iso(civil: Civil, offset: i32) -> String {
    let mut buf = *b"0000-00-00T00:00:00+00:00";
    let mut put2 = |at: usize, v: i32| {
        if let Some([hi, lo]) = buf.get_mut(at..at + 2) {
            *hi = b'0' + (v / 10 % 10) as u8;
            *lo = b'0' + (v % 10) as u8;
        }
    };
    let year = i32::from(civil.year());
    put2(0, year / 100);
    put2(2, year % 100);
    put2(5, i32::from(civil.month()));
    put2(8, i32::from(civil.day()));
    put2(11, i32::from(civil.hour()));
    put2(14, i32::from(civil.minute()));
    put2(17, i32::from(civil.second()));
    let abs = offset.unsigned_abs() as i32;
    put2(20, abs / 3600);
    put2(23, abs % 3600 / 60);
    if offset < 0 {
        if let Some(sign) = buf.get_mut(19) {
            *sign = b'-';
        }
    }
    std::str::from_utf8(&buf).map_or_else(|_| String::new(), str::to_owned)
}

/// How a code's value is typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Numbers (with or without unit).
    Number,
    /// Text as sent (octet strings, identifiers, versions, tariff indicator).
    Text,
    /// A timestamp.
    Time,
}

/// The default name of each OBIS code (lower-case dsmr_parser names, which
/// users of Home Assistant and dsmr-reader know), and its value kind. Channel
/// codes `0-n:…` are listed with B = 1 and match any channel.
const TABLE: &[(&str, &str, Kind)] = &[
    ("1-3:0.2.8", "p1_message_header", Kind::Text),
    ("0-0:1.0.0", "p1_message_timestamp", Kind::Time),
    ("0-0:96.1.1", "equipment_identifier", Kind::Text),
    ("0-0:96.1.4", "belgium_version_information", Kind::Text),
    ("0-0:42.0.0", "luxembourg_equipment_identifier", Kind::Text),
    ("1-0:1.8.0", "electricity_imported_total", Kind::Number),
    ("1-0:2.8.0", "electricity_exported_total", Kind::Number),
    ("1-0:1.8.1", "electricity_used_tariff_1", Kind::Number),
    ("1-0:1.8.2", "electricity_used_tariff_2", Kind::Number),
    ("1-0:1.8.3", "electricity_used_tariff_3", Kind::Number),
    ("1-0:1.8.4", "electricity_used_tariff_4", Kind::Number),
    ("1-0:2.8.1", "electricity_delivered_tariff_1", Kind::Number),
    ("1-0:2.8.2", "electricity_delivered_tariff_2", Kind::Number),
    ("1-0:2.8.3", "electricity_delivered_tariff_3", Kind::Number),
    ("1-0:2.8.4", "electricity_delivered_tariff_4", Kind::Number),
    ("0-0:96.14.0", "electricity_active_tariff", Kind::Text),
    ("1-0:1.7.0", "current_electricity_usage", Kind::Number),
    ("1-0:2.7.0", "current_electricity_delivery", Kind::Number),
    ("0-0:17.0.0", "actual_threshold_electricity", Kind::Number),
    ("0-0:96.3.10", "actual_switch_position", Kind::Number),
    ("0-0:96.7.21", "short_power_failure_count", Kind::Number),
    ("0-0:96.7.9", "long_power_failure_count", Kind::Number),
    ("1-0:99.97.0", "power_event_failure_log", Kind::Number),
    ("1-0:32.32.0", "voltage_sag_l1_count", Kind::Number),
    ("1-0:52.32.0", "voltage_sag_l2_count", Kind::Number),
    ("1-0:72.32.0", "voltage_sag_l3_count", Kind::Number),
    ("1-0:32.36.0", "voltage_swell_l1_count", Kind::Number),
    ("1-0:52.36.0", "voltage_swell_l2_count", Kind::Number),
    ("1-0:72.36.0", "voltage_swell_l3_count", Kind::Number),
    ("0-0:96.13.1", "text_message_code", Kind::Text),
    ("0-0:96.13.0", "text_message", Kind::Text),
    ("1-0:32.7.0", "instantaneous_voltage_l1", Kind::Number),
    ("1-0:52.7.0", "instantaneous_voltage_l2", Kind::Number),
    ("1-0:72.7.0", "instantaneous_voltage_l3", Kind::Number),
    ("1-0:31.7.0", "instantaneous_current_l1", Kind::Number),
    ("1-0:51.7.0", "instantaneous_current_l2", Kind::Number),
    ("1-0:71.7.0", "instantaneous_current_l3", Kind::Number),
    (
        "1-0:21.7.0",
        "instantaneous_active_power_l1_positive",
        Kind::Number,
    ),
    (
        "1-0:41.7.0",
        "instantaneous_active_power_l2_positive",
        Kind::Number,
    ),
    (
        "1-0:61.7.0",
        "instantaneous_active_power_l3_positive",
        Kind::Number,
    ),
    (
        "1-0:22.7.0",
        "instantaneous_active_power_l1_negative",
        Kind::Number,
    ),
    (
        "1-0:42.7.0",
        "instantaneous_active_power_l2_negative",
        Kind::Number,
    ),
    (
        "1-0:62.7.0",
        "instantaneous_active_power_l3_negative",
        Kind::Number,
    ),
    (
        "1-0:3.8.0",
        "electricity_reactive_imported_total",
        Kind::Number,
    ),
    (
        "1-0:4.8.0",
        "electricity_reactive_exported_total",
        Kind::Number,
    ),
    (
        "1-0:3.7.0",
        "instantaneous_reactive_power_positive",
        Kind::Number,
    ),
    (
        "1-0:4.7.0",
        "instantaneous_reactive_power_negative",
        Kind::Number,
    ),
    (
        "1-0:23.7.0",
        "instantaneous_reactive_power_l1_positive",
        Kind::Number,
    ),
    (
        "1-0:43.7.0",
        "instantaneous_reactive_power_l2_positive",
        Kind::Number,
    ),
    (
        "1-0:63.7.0",
        "instantaneous_reactive_power_l3_positive",
        Kind::Number,
    ),
    (
        "1-0:24.7.0",
        "instantaneous_reactive_power_l1_negative",
        Kind::Number,
    ),
    (
        "1-0:44.7.0",
        "instantaneous_reactive_power_l2_negative",
        Kind::Number,
    ),
    (
        "1-0:64.7.0",
        "instantaneous_reactive_power_l3_negative",
        Kind::Number,
    ),
    (
        "1-0:9.7.0",
        "instantaneous_apparent_power_positive",
        Kind::Number,
    ),
    (
        "1-0:10.7.0",
        "instantaneous_apparent_power_negative",
        Kind::Number,
    ),
    ("1-0:13.7.0", "instantaneous_power_factor", Kind::Number),
    ("1-0:33.7.0", "instantaneous_power_factor_l1", Kind::Number),
    ("1-0:53.7.0", "instantaneous_power_factor_l2", Kind::Number),
    ("1-0:73.7.0", "instantaneous_power_factor_l3", Kind::Number),
    ("1-0:14.7.0", "frequency", Kind::Number),
    ("1-0:31.4.0", "fuse_threshold_l1", Kind::Number),
    ("1-0:1.4.0", "belgium_current_average_demand", Kind::Number),
    ("1-0:1.6.0", "belgium_maximum_demand_month", Kind::Number),
    (
        "0-0:98.1.0",
        "belgium_maximum_demand_13_months",
        Kind::Number,
    ),
    ("0-1:24.1.0", "mbus_device_type", Kind::Number),
    ("0-1:96.1.0", "mbus_equipment_identifier", Kind::Text),
    ("0-1:96.1.1", "mbus_equipment_identifier", Kind::Text),
    ("0-1:24.2.1", "mbus_meter_reading", Kind::Number),
    ("0-1:24.2.3", "mbus_meter_reading_uncorrected", Kind::Number),
    ("0-1:24.3.0", "gas_meter_reading", Kind::Number),
    ("0-1:24.4.0", "mbus_valve_position", Kind::Number),
];

/// Value groups A…E as one number.
fn packed(groups: [u8; 5]) -> u64 {
    let [a, b, c, d, e] = groups;
    u64::from_be_bytes([0, 0, 0, a, b, c, d, e])
}

/// Slots of the default table's hash (a power of two, about four times the
/// table, so probes stay short).
const SLOTS: usize = 512;

/// The slot where the probe for `key` starts.
fn slot(key: u64) -> usize {
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 55) as usize & (SLOTS - 1)
}

/// A slot of the default table's hash: packed code, name, kind.
type Slot = Option<(u64, &'static str, Kind)>;

/// The default table by [`packed`] value groups in an open-addressing hash,
/// built once (for duplicate codes the first entry counts).
fn table() -> &'static [Slot] {
    static HASHED: std::sync::OnceLock<Vec<Slot>> = std::sync::OnceLock::new();
    HASHED.get_or_init(|| {
        let mut slots = vec![None; SLOTS];
        for (code, name, kind) in TABLE {
            let Some(c) = Code::parse(code.as_bytes()) else {
                continue;
            };
            let key = packed(c.groups);
            let mut i = slot(key);
            // Linear probing; the table is never more than a quarter full.
            for _ in 0..SLOTS {
                match slots.get_mut(i) {
                    Some(Some((k, _, _))) if *k == key => break,
                    Some(s @ None) => {
                        *s = Some((key, *name, *kind));
                        break;
                    }
                    _ => i = (i + 1) & (SLOTS - 1),
                }
            }
        }
        slots
    })
}

/// The default table entry of `code` (M-Bus channel codes match any channel).
fn entry(code: &Code) -> Option<(&'static str, Kind)> {
    let [a, b, c, d, e] = code.groups;
    let b = if a == 0 && b >= 1 && matches!((c, d), (24, _) | (96, 1)) {
        1
    } else {
        b
    };
    let key = packed([a, b, c, d, e]);
    let t = table();
    let mut i = slot(key);
    loop {
        match t.get(i)? {
            Some((k, name, kind)) if *k == key => return Some((*name, *kind)),
            Some(_) => i = (i + 1) & (SLOTS - 1),
            None => return None,
        }
    }
}

/// One value of a reading.
#[derive(Debug, Clone, PartialEq)]
pub struct DsmrValue {
    /// The value: number, text, ISO timestamp, a list for multi-value lines, or None.
    pub value: Value,
    /// The unit as sent (`kWh`, `kW`, `V`, `A`, `m3`, `GJ`, `s`, …).
    pub unit: Option<Cow<'static, str>>,
    /// The name from the table (default or the user's).
    pub name: Option<Cow<'static, str>>,
    /// The timestamp the line carries (M-Bus readings, peak demand).
    pub timestamp: Option<String>,
}

/// A M-Bus device on the meter's channel n (EN 13757-3 device type).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MbusDevice {
    /// Device type (3 gas, 4 heat, 7 water, …).
    pub device_type: Option<i64>,
    /// Equipment identifier as sent.
    pub equipment_id: Option<String>,
    /// Meter reading.
    pub value: Option<Value>,
    /// Its unit (`m3`, `GJ`, `kWh`).
    pub unit: Option<Cow<'static, str>>,
    /// Capture time of the reading.
    pub timestamp: Option<String>,
    /// Valve position.
    pub valve_position: Option<i64>,
}

/// A decoded P1 telegram.
#[derive(Debug, Clone, PartialEq)]
pub struct DsmrReading {
    /// The header line without `/`, e.g. `ISK5\2M550T-1013`.
    pub header: String,
    /// The CRC verdict: `ok`, `missing` or `mismatch`.
    pub crc: &'static str,
    /// The telegram used LF alone as line end.
    pub lf_only: bool,
    /// 0-0:1.0.0, ISO 8601 with offset.
    pub timestamp: Option<String>,
    /// Every value by OBIS code (`A-B:C.D.E` as [`Code::text`] writes it), in telegram order.
    pub obis: Vec<(Code, DsmrValue)>,
    /// M-Bus devices by channel.
    pub mbus: Vec<(u8, MbusDevice)>,
    /// Lines that are not COSEM lines.
    pub unknown_lines: Vec<String>,
    /// MBusPico's field names (see [`DsmrReading::mbuspico_fields`]).
    pub fields: MbusPicoFields,
}

/// MBusPico's reading fields of a P1 telegram, so that a P1 meter's reading has
/// the same shape as a DLMS push's (`shared/notes/dlms.md` §5).
#[derive(Debug, Clone, PartialEq)]
pub struct MbusPicoFields {
    /// Loxone time of the telegram's timestamp (local seconds since 2009-01-01).
    pub lx_timestamp: Option<i64>,
    /// 0-0:96.1.0 or the equipment identifier 0-0:96.1.1 (hex-encoded ASCII decoded).
    pub meter_number: Option<String>,
    /// `(field, value)`: activePowerPlus/Minus (W), activeEnergyPlus/Minus (Wh),
    /// reactiveEnergyPlus/Minus (varh), voltageL1..3 (V), currentL1..3 (A), powerFactor.
    pub values: Vec<(&'static str, Option<Value>)>,
}

/// The factor from a P1 unit to MBusPico's (W, Wh, varh, var, V, A).
fn to_base(unit: Option<&str>) -> f64 {
    match unit {
        Some("kW" | "kWh" | "kvar" | "kvarh" | "kVArh" | "kVAr") => 1000.0,
        _ => 1.0,
    }
}

fn in_base(v: &DsmrValue) -> Option<Value> {
    let factor = to_base(v.unit.as_deref());
    match v.value {
        Value::Int(i) if factor == 1.0 => Some(Value::Int(i)),
        ref other => {
            let x = other.as_f64()? * factor;
            let rounded = x.round();
            // kWh with three decimals is a whole number of Wh.
            if factor != 1.0 && (x - rounded).abs() < 1e-6 && rounded.abs() < 9e15 {
                Some(Value::Int(rounded as i64))
            } else {
                Some(Value::Float(x))
            }
        }
    }
}

/// Printable ASCII of an even-length hex string (the P1 equipment identifier).
fn hex_ascii(s: &str) -> Option<String> {
    let hex = s.as_bytes();
    if hex.iter().any(u8::is_ascii_whitespace) {
        // Hex with spaces in it, as `hex::decode` reads it.
        let bytes = crate::hex::decode(s).ok()?;
        let ok = !bytes.is_empty() && bytes.iter().all(|b| (0x20..0x7F).contains(b));
        return ok.then(|| bytes.iter().map(|&b| char::from(b)).collect());
    }
    if hex.is_empty() || hex.len() % 2 != 0 {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16);
    hex.chunks_exact(2)
        .map(|pair| match pair {
            [hi, lo] => {
                let b = nibble(*hi)? << 4 | nibble(*lo)?;
                (0x20..0x7F).contains(&b).then(|| char::from(b as u8))
            }
            _ => None,
        })
        .collect()
}

impl DsmrReading {
    /// MBusPico's field names for this telegram (units converted from kW/kWh
    /// to W/Wh, DSMR P1 Companion Standard 5.0.2 §6.12).
    pub fn mbuspico_fields(&self) -> &MbusPicoFields {
        &self.fields
    }
}

/// MBusPico's fields of a telegram, from its lines in one pass: totals
/// `1-0:C.8.0`, or the sum of the tariff registers `1-0:C.8.x` (Dutch and
/// Belgian meters send only those) when there is no total.
fn mbuspico_fields(
    lines: &[Line],
    obis: &[(Code, DsmrValue)],
    timestamp: Option<&str>,
) -> MbusPicoFields {
    const POWER_PLUS: usize = 0;
    const VOLTAGE_L1: usize = 6;
    const CURRENT_L1: usize = 9;
    const POWER_FACTOR: usize = 12;
    let mut values: [Option<Value>; 13] = Default::default();
    // Per register C = 1..=4: the total if sent, else the tariffs' sum.
    let mut totals: [Option<Value>; 4] = Default::default();
    let mut tariffs = [0.0f64; 4];
    let mut any_tariff = [false; 4];
    let mut meter_number = None;
    let mut equipment_id = None;
    for (line, (_, v)) in lines.iter().zip(obis) {
        let slot = match line.code.groups {
            [1, 0, c @ 1..=4, 8, e] => {
                let i = usize::from(c - 1);
                if e == 0 {
                    if let Some(t @ None) = totals.get_mut(i) {
                        *t = in_base(v);
                    }
                } else if let Some(x) = in_base(v).and_then(|x| x.as_f64()) {
                    if let (Some(sum), Some(seen)) = (tariffs.get_mut(i), any_tariff.get_mut(i)) {
                        *sum += x;
                        *seen = true;
                    }
                }
                continue;
            }
            [1, 0, 1, 7, 0] => POWER_PLUS,
            [1, 0, 2, 7, 0] => POWER_PLUS + 1,
            [1, 0, 32, 7, 0] => VOLTAGE_L1,
            [1, 0, 52, 7, 0] => VOLTAGE_L1 + 1,
            [1, 0, 72, 7, 0] => VOLTAGE_L1 + 2,
            [1, 0, 31, 7, 0] => CURRENT_L1,
            [1, 0, 51, 7, 0] => CURRENT_L1 + 1,
            [1, 0, 71, 7, 0] => CURRENT_L1 + 2,
            [1, 0, 13, 7, 0] => POWER_FACTOR,
            [0, 0, 96, 1, 0] => {
                meter_number = meter_number.or(Some(&v.value));
                continue;
            }
            [0, 0, 96, 1, 1] => {
                equipment_id = equipment_id.or(Some(&v.value));
                continue;
            }
            _ => continue,
        };
        if let Some(field) = values.get_mut(slot) {
            if field.is_none() {
                *field = in_base(v);
            }
        }
    }
    for (i, total) in totals.into_iter().enumerate() {
        let value = total.or_else(|| {
            let sum = *tariffs.get(i)?;
            any_tariff.get(i).copied().unwrap_or(false).then(|| {
                if sum.fract() == 0.0 && sum.abs() < 9e15 {
                    Value::Int(sum as i64)
                } else {
                    Value::Float(sum)
                }
            })
        });
        // Energy slots 2..=5 follow the two power slots.
        if let Some(slot) = values.get_mut(2 + i) {
            *slot = value;
        }
    }
    let lx_timestamp = timestamp.and_then(|t| {
        let local: Civil = match civil_of(t) {
            Some(c) => c,
            None => t.get(..19)?.parse().ok()?,
        };
        let epoch = jiff::civil::date(2009, 1, 1).at(0, 0, 0, 0);
        Some(local.duration_since(epoch).as_secs())
    });
    let meter_number = meter_number.or(equipment_id).and_then(|v| match v {
        Value::Text(s) => Some(hex_ascii(s).unwrap_or_else(|| s.clone())),
        _ => None,
    });
    let [p_plus, p_minus, a_plus, a_minus, r_plus, r_minus, u1, u2, u3, i1, i2, i3, pf] = values;
    MbusPicoFields {
        lx_timestamp,
        meter_number,
        values: vec![
            ("activePowerPlus", p_plus),
            ("activePowerMinus", p_minus),
            ("activeEnergyPlus", a_plus),
            ("activeEnergyMinus", a_minus),
            ("reactiveEnergyPlus", r_plus),
            ("reactiveEnergyMinus", r_minus),
            ("voltageL1", u1),
            ("voltageL2", u2),
            ("voltageL3", u3),
            ("currentL1", i1),
            ("currentL2", i2),
            ("currentL3", i3),
            ("powerFactor", pf),
        ],
    }
}

/// The local time of `YYYY-MM-DDThh:mm:ss…` as [`iso`] writes it, read by
/// position (`None` for any other text, which jiff's parser then reads).
fn civil_of(iso: &str) -> Option<Civil> {
    let b = iso.as_bytes();
    let shape = b.get(..19)?;
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(i, c)| shape.get(i) != Some(&c)) {
        return None;
    }
    let num = |at: usize, len: usize| -> Option<i32> {
        shape.get(at..at + len)?.iter().try_fold(0i32, |v, &d| {
            d.is_ascii_digit().then(|| v * 10 + i32::from(d - b'0'))
        })
    };
    Civil::new(
        i16::try_from(num(0, 4)?).ok()?,
        i8::try_from(num(5, 2)?).ok()?,
        i8::try_from(num(8, 2)?).ok()?,
        i8::try_from(num(11, 2)?).ok()?,
        i8::try_from(num(14, 2)?).ok()?,
        i8::try_from(num(17, 2)?).ok()?,
        0,
    )
    .ok()
}

/// A unit as sent; the ones P1 meters use are not allocated.
fn unit_text(bytes: &[u8]) -> Cow<'static, str> {
    Cow::Borrowed(match bytes {
        b"kWh" => "kWh",
        b"kW" => "kW",
        b"V" => "V",
        b"A" => "A",
        b"m3" => "m3",
        b"GJ" => "GJ",
        b"s" => "s",
        b"Wh" => "Wh",
        b"W" => "W",
        b"kvarh" => "kvarh",
        b"kvar" => "kvar",
        b"varh" => "varh",
        b"var" => "var",
        b"kVArh" => "kVArh",
        b"kVAr" => "kVAr",
        b"m\xC2\xB3" => "m³",
        _ => return Cow::Owned(text(bytes)),
    })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `value*unit` → (value, unit).
fn split_unit(group: &[u8]) -> (&[u8], Option<&[u8]>) {
    match group.iter().rposition(|&b| b == b'*') {
        Some(i) => (group.get(..i).unwrap_or_default(), group.get(i + 1..)),
        None => (group, None),
    }
}

/// A number from decimal digits (optional sign, optional point).
fn number(raw: &[u8]) -> Option<Value> {
    fast_number(raw).or_else(|| slow_number(raw))
}

/// [`number`] for the usual shapes, `-?d+` and `-?d+.d+` with at most 15
/// digits, without a string: the digits as an integer and, with a point,
/// divided by the power of ten of its decimals. Both are exact as `f64`, so
/// the quotient is the correctly rounded value, which `str::parse` gives too.
/// `None` for any other shape (left to [`slow_number`]).
fn fast_number(raw: &[u8]) -> Option<Value> {
    /// 10^0 … 10^15, all exact as `f64`.
    const POW10: [f64; 16] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    ];
    let (negative, digits) = match raw.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, raw),
    };
    if digits.len() > 16 {
        return None;
    }
    let mut m = 0i64;
    let mut point = None;
    for (i, &b) in digits.iter().enumerate() {
        match b {
            // At most 16 digits: no overflow.
            b'0'..=b'9' => m = m.wrapping_mul(10).wrapping_add(i64::from(b - b'0')),
            b'.' if point.is_none() => point = Some(i),
            _ => return None,
        }
    }
    let m = if negative { -m } else { m };
    match point {
        None if !digits.is_empty() => Some(Value::Int(m)),
        Some(p) if p > 0 && p + 1 < digits.len() => {
            let decimals = digits.len() - p - 1;
            let x = m as f64 / POW10.get(decimals)?;
            // "-0.0" is negative zero, as `str::parse` reads it.
            Some(Value::Float(if negative && m == 0 { -x } else { x }))
        }
        _ => None,
    }
}

/// [`number`] by `str::parse`.
fn slow_number(raw: &[u8]) -> Option<Value> {
    let s = std::str::from_utf8(raw).ok()?;
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    if s.contains('.') {
        s.parse::<f64>().ok().map(Value::Float)
    } else {
        s.parse::<i64>().ok().map(Value::Int)
    }
}

/// `YYMMDDhhmmss` with or without the S/W flag (placeholders included).
fn time_shaped(raw: &[u8]) -> bool {
    let flag_ok = match raw.len() {
        12 => true,
        13 => matches!(raw.last(), Some(b'S' | b'W' | b's' | b'w')),
        _ => false,
    };
    flag_ok
        && raw
            .get(..12)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
}

fn looks_like_time(raw: &[u8]) -> bool {
    raw.len() == 13 && time_shaped(raw)
}

/// The value of one group.
fn group_value(raw: &[u8], kind: Kind, tz: &TimeZone) -> Value {
    if raw.is_empty() {
        return Value::Null;
    }
    if kind == Kind::Time || looks_like_time(raw) {
        return timestamp(raw, tz).map_or(Value::Null, |s| Value::Text(s.iso));
    }
    match kind {
        Kind::Text => Value::Text(text(raw)),
        _ => number(raw).unwrap_or_else(|| Value::Text(text(raw))),
    }
}

/// Builds the reading. `names` overrides or adds names by code text or pattern.
pub fn build(t: &Telegram<'_>, tz: &TimeZone, names: &Names) -> DsmrReading {
    let mut obis = Vec::with_capacity(t.lines.len());
    let mut mbus: Vec<(u8, MbusDevice)> = Vec::new();
    let mut timestamp_value = None;
    for line in &t.lines {
        let known = entry(&line.code);
        let kind = known.map_or(Kind::Number, |(_, k)| k);
        let custom = if names.is_empty() {
            None
        } else {
            names
                .get(&line.code.text())
                .map(|n| Cow::Owned(n.to_owned()))
        };
        let name = custom.or_else(|| known.map(|(n, _)| Cow::Borrowed(n)));
        let v = line_value(&line.code, t.groups_of(line), kind, tz);
        let [a, b, c, d, _] = line.code.groups;
        if a == 0 && b >= 1 {
            let idx = match mbus.iter().position(|(ch, _)| *ch == b) {
                Some(i) => i,
                None => {
                    mbus.push((b, MbusDevice::default()));
                    mbus.len() - 1
                }
            };
            let Some((_, dev)) = mbus.get_mut(idx) else {
                continue;
            };
            match (c, d) {
                (24, 1) => dev.device_type = as_int(&v.value),
                (96, 1) => {
                    if let Value::Text(s) = &v.value {
                        dev.equipment_id = Some(s.clone());
                    }
                }
                (24, 2) | (24, 3) => {
                    dev.value = Some(v.value.clone());
                    dev.unit = v.unit.clone();
                    dev.timestamp = v.timestamp.clone();
                }
                (24, 4) => dev.valve_position = as_int(&v.value),
                _ => {}
            }
        }
        if line.code.groups == [0, 0, 1, 0, 0] {
            if let Value::Text(s) = &v.value {
                timestamp_value = Some(s.clone());
            }
        }
        obis.push((line.code, DsmrValue { name, ..v }));
    }
    let fields = mbuspico_fields(&t.lines, &obis, timestamp_value.as_deref());
    DsmrReading {
        fields,
        header: text(t.header),
        crc: match t.crc {
            Crc::Ok(_) => "ok",
            Crc::Missing => "missing",
            Crc::Mismatch { .. } => "mismatch",
        },
        lf_only: t.lf_only,
        timestamp: timestamp_value,
        obis,
        mbus,
        unknown_lines: t.unknown.iter().map(|l| text(l)).collect(),
    }
}

fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Float(f) => Some(*f as i64),
        Value::Text(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The value of a line: single values, `(timestamp)(value*unit)` pairs, the
/// DSMR 2.2 gas line, the power-failure log, and a list for anything else.
fn line_value(code: &Code, groups: &[Cow<'_, [u8]>], kind: Kind, tz: &TimeZone) -> DsmrValue {
    let plain = |value: Value, unit: Option<&[u8]>, timestamp: Option<String>| DsmrValue {
        value,
        unit: unit.filter(|u| !u.is_empty()).map(unit_text),
        name: None,
        timestamp,
    };
    // Most lines carry one group.
    if let [one] = groups {
        let (v, unit) = split_unit(one);
        return plain(group_value(v, kind, tz), unit, None);
    }
    // The groups as plain slices, on the stack for the usual few.
    let small: [&[u8]; 8];
    let many: Vec<&[u8]>;
    let g: &[&[u8]] = if groups.len() <= 8 {
        small = std::array::from_fn(|i| groups.get(i).map_or(&[][..], |c| c.as_ref()));
        small.get(..groups.len()).unwrap_or_default()
    } else {
        many = groups.iter().map(|c| c.as_ref()).collect();
        &many
    };
    let [a, _, c, d, e] = code.groups;
    match g {
        [] => plain(Value::Null, None, None),
        [one] => {
            let (v, unit) = split_unit(one);
            plain(group_value(v, kind, tz), unit, None)
        }
        // DSMR 2.2/3.0 gas: (time)(status)(60)(1)(0-n:24.2.1)(unit) then (value).
        [ts, _, _, _, _, unit, value] if a == 0 && c == 24 && d == 3 && e == 0 => plain(
            number(value).unwrap_or(Value::Null),
            Some(unit),
            timestamp(ts, tz).map(|s| s.iso),
        ),
        // Power-failure log: (count)(0-0:96.7.19)(time)(duration*s)…
        [count, _id, rest @ ..] if a == 1 && c == 99 && d == 97 => {
            let n = number(count).and_then(|v| as_int(&v)).unwrap_or(0).max(0) as usize;
            let events = rest
                .chunks(2)
                .take(n)
                .filter_map(|pair| match pair {
                    [ts, dur] => {
                        let (v, unit) = split_unit(dur);
                        Some(Value::List(vec![
                            timestamp(ts, tz).map_or(Value::Null, |s| Value::Text(s.iso)),
                            number(v).unwrap_or(Value::Null),
                            unit.map_or(Value::Null, |u| Value::Text(text(u))),
                        ]))
                    }
                    _ => None,
                })
                .collect();
            plain(Value::List(events), None, None)
        }
        // Belgian 13-month peaks: (count)(1-0:1.6.0)(1-0:1.6.0) then per month
        // (month start)(time of the peak)(value*kW).
        [count, id, _, rest @ ..] if a == 0 && c == 98 && d == 1 && Code::parse(id).is_some() => {
            let n = number(count).and_then(|v| as_int(&v)).unwrap_or(0).max(0) as usize;
            let stamp = |raw: &[u8]| timestamp(raw, tz).map_or(Value::Null, |s| Value::Text(s.iso));
            let entries = rest
                .chunks(3)
                .take(n)
                .filter_map(|e| match e {
                    [month, at, value] => {
                        let (v, unit) = split_unit(value);
                        Some(Value::List(vec![
                            stamp(month),
                            stamp(at),
                            number(v).unwrap_or(Value::Null),
                            unit.map_or(Value::Null, |u| Value::Text(text(u))),
                        ]))
                    }
                    _ => None,
                })
                .collect();
            plain(Value::List(entries), None, None)
        }
        // (time)(value*unit): M-Bus readings, peak demand.
        [ts, value] if time_shaped(ts) => {
            let (v, unit) = split_unit(value);
            plain(
                group_value(v, kind, tz),
                unit,
                timestamp(ts, tz).map(|s| s.iso),
            )
        }
        many => {
            let items = many
                .iter()
                .map(|raw| {
                    let (v, _) = split_unit(raw);
                    group_value(v, Kind::Number, tz)
                })
                .collect();
            let unit = many.iter().find_map(|raw| split_unit(raw).1);
            plain(Value::List(items), unit, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ams() -> TimeZone {
        TimeZone::get("Europe/Amsterdam").unwrap_or(TimeZone::UTC)
    }

    #[test]
    fn timestamps_with_the_fold() {
        let tz = ams();
        assert_eq!(
            timestamp(b"181028023000S", &tz).unwrap().unix,
            1_540_686_600
        );
        assert_eq!(
            timestamp(b"181028023000W", &tz).unwrap().unix,
            1_540_690_200
        );
        assert_eq!(
            timestamp(b"170102192002W", &tz).unwrap().iso,
            "2017-01-02T19:20:02+01:00"
        );
        assert_eq!(timestamp(b"160410130000", &tz).unwrap().unix, 1_460_286_000);
        assert!(timestamp(b"632525252525S", &tz).is_none());
        assert!(timestamp(b"700101010000W", &tz).is_none());
        assert!(timestamp(b"12345", &tz).is_none());
    }

    #[test]
    fn numbers_read_as_str_parse_reads_them() {
        assert_eq!(number(b"00.244"), Some(Value::Float(0.244)));
        assert_eq!(number(b"0230.0"), Some(Value::Float(230.0)));
        assert_eq!(number(b"000004.426"), Some(Value::Float(4.426)));
        assert_eq!(number(b"00013"), Some(Value::Int(13)));
        assert_eq!(number(b"-5"), Some(Value::Int(-5)));
        let Some(Value::Float(z)) = number(b"-0.000") else {
            panic!("-0.000 is no float");
        };
        assert!(z == 0.0 && z.is_sign_negative());
        // Shapes left to str::parse.
        assert_eq!(number(b"5."), Some(Value::Float(5.0)));
        assert_eq!(
            number(b"1234567890.1234567"),
            Some(Value::Float(1_234_567_890.123_456_7))
        );
        assert_eq!(number(b"1.2.3"), None);
        assert_eq!(number(b"-"), None);
        assert_eq!(number(b"12a"), None);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(5000))]

        /// The fast path gives exactly (bit for bit) what str::parse gives.
        #[test]
        fn fast_numbers_are_str_parse(s in "-?[0-9]{0,12}(\\.[0-9]{0,8})?") {
            let fast = fast_number(s.as_bytes());
            let slow = slow_number(s.as_bytes());
            match (&fast, &slow) {
                (Some(Value::Float(a)), Some(Value::Float(b))) => {
                    proptest::prop_assert_eq!(a.to_bits(), b.to_bits(), "{}", s);
                }
                (Some(_), _) => proptest::prop_assert_eq!(&fast, &slow, "{}", s),
                (None, _) => {}
            }
            proptest::prop_assert_eq!(number(s.as_bytes()), slow);
        }

        /// iso() writes what format! wrote, for any local time and offset.
        #[test]
        fn iso_is_the_formatted_time(
            y in 0i16..=9999, mo in 1i8..=12, d in 1i8..=28, h in 0i8..=23,
            mi in 0i8..=59, sec in 0i8..=59, offset in -93_599i32..=93_599,
        ) {
            let civil = Civil::new(y, mo, d, h, mi, sec, 0).unwrap();
            let abs = offset.unsigned_abs();
            let sign = if offset < 0 { '-' } else { '+' };
            let expected = format!(
                "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{sec:02}{sign}{:02}:{:02}",
                abs / 3600,
                abs % 3600 / 60
            );
            proptest::prop_assert_eq!(iso(civil, offset), expected.clone());
            proptest::prop_assert_eq!(civil_of(&expected), expected.get(..19).unwrap().parse().ok());
        }
    }

    #[test]
    fn every_table_code_is_found() {
        for (code, name, kind) in TABLE {
            let c = Code::parse(code.as_bytes()).unwrap();
            let first = TABLE
                .iter()
                .find(|(other, _, _)| Code::parse(other.as_bytes()) == Some(c))
                .unwrap();
            assert_eq!(entry(&c), Some((first.1, first.2)), "{code}");
            if first.1 == *name {
                assert_eq!(entry(&c), Some((*name, *kind)));
            }
        }
        // Any channel of an M-Bus code; unknown codes have no entry.
        let gas = Code::parse(b"0-3:24.2.1").unwrap();
        assert_eq!(entry(&gas).map(|e| e.0), Some("mbus_meter_reading"));
        assert_eq!(entry(&Code::parse(b"1-0:99.99.9").unwrap()), None);
        assert_eq!(entry(&Code::parse(b"0-2:1.8.0").unwrap()), None);
    }
}

//! Value information (EN 13757-3 §6.4, Tables 10–14): what a VIF/VIFE means.
//!
//! Two views of each code:
//! * [`unit_text`]: the description libmbus prints in its non-normalized XML
//!   (e.g. `Volume (m m^3)` for VIF 0x13), kept byte for byte so existing XML
//!   consumers keep working;
//! * [`normalized`]: quantity, base unit and the factor to it (e.g. VIF 0x13 →
//!   Volume, m^3, ×1e-3), as libmbus's normalized XML and our readings use.
//!
//! VIF 0xFD selects the main extension table (EN 13757-3 Table 14), 0xFB the
//! alternate one (Table 13), 0x7C/0xFC a plain-text unit, 0x7F/0xFF
//! manufacturer-specific coding. Only the first VIFE after 0xFD/0xFB selects
//! the code; further VIFEs are orthogonal (combinable) extensions.

use std::borrow::Cow;

/// A value information block as sent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Vib<'a> {
    /// The VIF byte.
    pub vif: u8,
    /// VIFE bytes (at most 10), borrowed from the telegram.
    pub vife: &'a [u8],
    /// Plain-text unit of VIF 0x7C/0xFC, in reading order (reversed from the wire).
    pub text: Option<String>,
}

/// libmbus's prefix for a decimal exponent.
fn prefix(exp: i32) -> String {
    match exp {
        0 => String::new(),
        -3 => "m".into(),
        -6 => "my".into(),
        1 => "10 ".into(),
        2 => "100 ".into(),
        3 => "k".into(),
        4 => "10 k".into(),
        5 => "100 k".into(),
        6 => "M".into(),
        9 => "G".into(),
        e => format!("1e{e} "),
    }
}

fn duration(n: u8) -> &'static str {
    match n & 3 {
        0 => "seconds",
        1 => "minutes",
        2 => "hours",
        _ => "days",
    }
}

/// Primary VIF (bit 7 masked) → libmbus text.
fn primary_text(v: u8) -> String {
    let n = i32::from(v & 0x07);
    match v & 0x7F {
        0x00..=0x07 => format!("Energy ({}Wh)", prefix(n - 3)),
        0x08..=0x0F => format!("Energy ({}J)", prefix(n)),
        0x10..=0x17 => format!("Volume ({} m^3)", prefix(n - 6)),
        0x18..=0x1F => format!("Mass ({}kg)", prefix(n - 3)),
        0x20..=0x23 => format!("On time ({})", duration(v)),
        0x24..=0x27 => format!("Operating time ({})", duration(v)),
        0x28..=0x2F => format!("Power ({}W)", prefix(n - 3)),
        0x30..=0x37 => format!("Power ({}J/h)", prefix(n)),
        0x38..=0x3F => format!("Volume flow ({} m^3/h)", prefix(n - 6)),
        0x40..=0x47 => format!("Volume flow ({} m^3/min)", prefix(n - 7)),
        0x48..=0x4F => format!("Volume flow ({} m^3/s)", prefix(n - 9)),
        0x50..=0x57 => format!("Mass flow ({} kg/h)", prefix(n - 3)),
        0x58..=0x5B => format!("Flow temperature ({}deg C)", prefix(i32::from(v & 3) - 3)),
        0x5C..=0x5F => format!("Return temperature ({}deg C)", prefix(i32::from(v & 3) - 3)),
        0x60..=0x63 => format!(
            "Temperature Difference ({} deg C)",
            prefix(i32::from(v & 3) - 3)
        ),
        0x64..=0x67 => format!(
            "External temperature ({} deg C)",
            prefix(i32::from(v & 3) - 3)
        ),
        0x68..=0x6B => format!("Pressure ({} bar)", prefix(i32::from(v & 3) - 3)),
        0x6C => "Time Point (date)".into(),
        0x6D => "Time Point (time & date)".into(),
        0x6E => "Units for H.C.A.".into(),
        0x6F => "Reserved".into(),
        0x70..=0x73 => format!("Averaging Duration ({})", duration(v)),
        0x74..=0x77 => format!("Actuality Duration ({})", duration(v)),
        0x78 => "Fabrication number".into(),
        0x7A => "Bus Address".into(),
        0x7F => "Manufacturer specific".into(),
        other => format!("Unknown (VIF=0x{other:02X})"),
    }
}

fn unit_of(n: u8, units: [&'static str; 4]) -> &'static str {
    units.get(usize::from(n & 3)).copied().unwrap_or("")
}

/// Main extension table (VIF 0xFD, EN 13757-3 Table 14) → libmbus text.
fn fd_text(e: u8) -> String {
    let e = e & 0x7F;
    let secs = ["second(s)", "minute(s)", "hour(s)", "day(s)"];
    let long = ["hour(s)", "day(s)", "month(s)", "year(s)"];
    match e {
        0x00..=0x03 => format!(
            "Credit of {}the nominal local legal currency units",
            prefix(i32::from(e & 3) - 3)
        ),
        0x04..=0x07 => format!(
            "Debit of {}the nominal local legal currency units",
            prefix(i32::from(e & 3) - 3)
        ),
        0x08 => "Access Number (transmission count)".into(),
        0x09 => "Medium (as in fixed header)".into(),
        0x0A => "Manufacturer (as in fixed header)".into(),
        0x0B => "Parameter set identification".into(),
        0x0C => "Model / Version".into(),
        0x0D => "Hardware version".into(),
        0x0E => "Firmware version".into(),
        0x0F => "Software version".into(),
        0x10 => "Customer location".into(),
        0x11 => "Customer".into(),
        0x12 => "Access Code User".into(),
        0x13 => "Access Code Operator".into(),
        0x14 => "Access Code System Operator".into(),
        0x15 => "Access Code Developer".into(),
        0x16 => "Password".into(),
        0x17 => "Error flags".into(),
        0x18 => "Error mask".into(),
        0x1A => "Digital output (binary)".into(),
        0x1B => "Digital input (binary)".into(),
        0x1C => "Baudrate [Baud]".into(),
        0x1D => "response delay time [bittimes]".into(),
        0x1E => "Retry".into(),
        0x20 => "First storage # for cyclic storage".into(),
        0x21 => "Last storage # for cyclic storage".into(),
        0x22 => "Size of storage block".into(),
        0x24..=0x27 => format!("Storage interval {}", unit_of(e, secs)),
        0x28 => "Storage interval month(s)".into(),
        0x29 => "Storage interval year(s)".into(),
        0x2C..=0x2F => format!("Duration since last readout {}", unit_of(e, secs)),
        0x30 => "Start (date/time) of tariff".into(),
        0x31..=0x33 => format!("Duration of tariff {}", unit_of(e, secs)),
        0x34..=0x37 => format!("Period of tariff {}", unit_of(e, secs)),
        0x38 => "Period of tariff months(s)".into(),
        0x39 => "Period of tariff year(s)".into(),
        0x3A => "dimensionless / no VIF".into(),
        0x40..=0x4F => format!("{} V", prefix(i32::from(e & 0x0F) - 9)),
        0x50..=0x5F => format!("{} A", prefix(i32::from(e & 0x0F) - 12)),
        0x60 => "Reset counter".into(),
        0x61 => "Cumulation counter".into(),
        0x62 => "Control signal".into(),
        0x63 => "Day of week".into(),
        0x64 => "Week number".into(),
        0x65 => "Time point of day change".into(),
        0x66 => "State of parameter activation".into(),
        0x67 => "Special supplier information".into(),
        0x68..=0x6B => format!("Duration since last cumulation {}", unit_of(e, long)),
        0x6C..=0x6F => format!("Operating time battery {}", unit_of(e, long)),
        0x70 => "Date and time of battery change".into(),
        0x71..=0x7F => "Reserved VIF extension".into(),
        _ => "Reserved".into(),
    }
}

/// Alternate extension table (VIF 0xFB, EN 13757-3 Table 13) → libmbus text.
fn fb_text(e: u8) -> String {
    let e = e & 0x7F;
    let n = i32::from(e & 1);
    let t = i32::from(e & 3) - 3;
    match e {
        0x00 | 0x01 => format!("Energy ({} MWh)", if n == 0 { "0.1" } else { "1" }),
        0x08 | 0x09 => format!("Energy ({} GJ)", if n == 0 { "0.1" } else { "1" }),
        0x10 | 0x11 => format!("Volume ({} m3)", if n == 0 { "100" } else { "1000" }),
        0x18 | 0x19 => format!("Mass ({} t)", if n == 0 { "100" } else { "1000" }),
        0x21 => "Volume (0.1 feet^3)".into(),
        0x22 | 0x23 => format!(
            "Volume ({} american gallon)",
            if e == 0x22 { "0.1" } else { "1" }
        ),
        0x24 => "Volume flow (0.001 american gallon/min)".into(),
        0x25 => "Volume flow (1 american gallon/min)".into(),
        0x26 => "Volume flow (1 american gallon/h)".into(),
        0x28 | 0x29 => format!("Power ({} MW)", if n == 0 { "0.1" } else { "1" }),
        0x30 | 0x31 => format!("Power ({} GJ/h)", if n == 0 { "0.1" } else { "1" }),
        0x58..=0x5B => format!("Flow Temperature ({}degree F)", prefix(t)),
        0x5C..=0x5F => format!("Return Temperature ({}degree F)", prefix(t)),
        0x60..=0x63 => format!("Temperature Difference ({}degree F)", prefix(t)),
        0x64..=0x67 => format!("External Temperature ({}degree F)", prefix(t)),
        0x70..=0x73 => format!("Cold / Warm Temperature Limit ({}degree F)", prefix(t)),
        0x74..=0x77 => format!("Cold / Warm Temperature Limit ({}degree C)", prefix(t)),
        0x78..=0x7F => format!(
            "Cumulative count max power ({}W)",
            prefix(i32::from(e & 7) - 3)
        ),
        other => format!("Reserved (0x{other:02x})"),
    }
}

/// The unit description libmbus prints in its non-normalized XML.
pub fn unit_text(v: &Vib) -> String {
    if let Some(text) = &v.text {
        // Plain-text unit; 0xFC with a scaling VIFE gets libmbus's prefix.
        if v.vif == 0xFC {
            if let Some(e @ 0x70..=0x77) = v.vife.first().map(|e| e & 0x7F) {
                return format!("{} {}", prefix(i32::from(e & 7) - 6), text);
            }
        }
        return text.clone();
    }
    match v.vif {
        0xFD | 0xFB => match v.vife.first() {
            None => "Missing VIF extension".into(),
            Some(&e) if v.vif == 0xFD => fd_text(e),
            Some(&e) => fb_text(e),
        },
        0xFF => "Manufacturer specific".into(),
        vif => primary_text(vif),
    }
}

/// How a raw value becomes a value in the base unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalized {
    /// Multiply the raw value by this.
    pub factor: f64,
    /// Then add this (temperature-limit offsets of VIFE 0x78–0x7B).
    pub offset: f64,
    /// Base unit (`Wh`, `J`, `m^3`, `kg`, `W`, `J/h`, `m^3/h`, `°C`, `K`, `bar`,
    /// `s`, `V`, `A`, `-` for dates and plain text, empty for counts and codes).
    pub unit: &'static str,
    /// Quantity (`Energy`, `Volume`, `Flow temperature`, …).
    pub quantity: &'static str,
}

const fn n(factor: f64, unit: &'static str, quantity: &'static str) -> Option<Normalized> {
    Some(Normalized {
        factor,
        offset: 0.0,
        unit,
        quantity,
    })
}

/// 10^e as the literal libmbus's table uses (`1.0e-3`, …), so products round alike.
fn pow10(e: i32) -> f64 {
    match e {
        -12 => 1.0e-12,
        -11 => 1.0e-11,
        -10 => 1.0e-10,
        -9 => 1.0e-9,
        -8 => 1.0e-8,
        -7 => 1.0e-7,
        -6 => 1.0e-6,
        -5 => 1.0e-5,
        -4 => 1.0e-4,
        -3 => 1.0e-3,
        -2 => 1.0e-2,
        -1 => 1.0e-1,
        0 => 1.0,
        1 => 1.0e1,
        2 => 1.0e2,
        3 => 1.0e3,
        4 => 1.0e4,
        5 => 1.0e5,
        6 => 1.0e6,
        7 => 1.0e7,
        8 => 1.0e8,
        9 => 1.0e9,
        e => 10f64.powi(e),
    }
}

fn seconds(n: u8) -> f64 {
    match n & 3 {
        0 => 1.0,
        1 => 60.0,
        2 => 3600.0,
        _ => 86400.0,
    }
}

fn long_seconds(n: u8) -> f64 {
    match n & 3 {
        0 => 3600.0,
        1 => 86400.0,
        2 => 2_629_743.83,
        _ => 31_556_926.0,
    }
}

fn primary_normalized(v: u8) -> Option<Normalized> {
    let k = i32::from(v & 7);
    let t = i32::from(v & 3);
    match v & 0x7F {
        0x00..=0x07 => n(pow10(k - 3), "Wh", "Energy"),
        0x08..=0x0F => n(pow10(k), "J", "Energy"),
        0x10..=0x17 => n(pow10(k - 6), "m^3", "Volume"),
        0x18..=0x1F => n(pow10(k - 3), "kg", "Mass"),
        0x20..=0x23 => n(seconds(v), "s", "On time"),
        0x24..=0x27 => n(seconds(v), "s", "Operating time"),
        0x28..=0x2F => n(pow10(k - 3), "W", "Power"),
        0x30..=0x37 => n(pow10(k), "J/h", "Power"),
        0x38..=0x3F => n(pow10(k - 6), "m^3/h", "Volume flow"),
        0x40..=0x47 => n(pow10(k - 7), "m^3/min", "Volume flow"),
        0x48..=0x4F => n(pow10(k - 9), "m^3/s", "Volume flow"),
        0x50..=0x57 => n(pow10(k - 3), "kg/h", "Mass flow"),
        0x58..=0x5B => n(pow10(t - 3), "°C", "Flow temperature"),
        0x5C..=0x5F => n(pow10(t - 3), "°C", "Return temperature"),
        0x60..=0x63 => n(pow10(t - 3), "K", "Temperature difference"),
        0x64..=0x67 => n(pow10(t - 3), "°C", "External temperature"),
        0x68..=0x6B => n(pow10(t - 3), "bar", "Pressure"),
        0x6C => n(1.0, "-", "Time point (date)"),
        0x6D => n(1.0, "-", "Time point (date & time)"),
        0x6E => n(1.0, "Units for H.C.A.", "H.C.A."),
        0x6F => n(0.0, "Reserved", "Reserved"),
        0x70..=0x73 => n(seconds(v), "s", "Averaging Duration"),
        0x74..=0x77 => n(seconds(v), "s", "Actuality Duration"),
        0x78 => n(1.0, "", "Fabrication No"),
        0x79 => n(1.0, "", "(Enhanced) Identification"),
        0x7A => n(1.0, "", "Bus Address"),
        0x7E => n(1.0, "", "Any VIF"),
        0x7F => n(1.0, "", "Manufacturer specific"),
        _ => None,
    }
}

fn fd_normalized(e: u8) -> Option<Normalized> {
    let e = e & 0x7F;
    match e {
        0x00..=0x03 => n(pow10(i32::from(e & 3) - 3), "", "Credit"),
        0x04..=0x07 => n(pow10(i32::from(e & 3) - 3), "", "Debit"),
        0x08 => n(1.0, "", "Access Number (transmission count)"),
        0x09 => n(1.0, "", "Medium"),
        0x0A => n(1.0, "", "Manufacturer"),
        0x0B => n(1.0, "", "Parameter set identification"),
        0x0C => n(1.0, "", "Model / Version"),
        0x0D => n(1.0, "", "Hardware version"),
        0x0E => n(1.0, "", "Firmware version"),
        0x0F => n(1.0, "", "Software version"),
        0x10 => n(1.0, "", "Customer location"),
        0x11 => n(1.0, "", "Customer"),
        0x12 => n(1.0, "", "Access Code User"),
        0x13 => n(1.0, "", "Access Code Operator"),
        0x14 => n(1.0, "", "Access Code System Operator"),
        0x15 => n(1.0, "", "Access Code Developer"),
        0x16 => n(1.0, "", "Password"),
        0x17 => n(1.0, "", "Error flags"),
        0x18 => n(1.0, "", "Error mask"),
        0x1A => n(1.0, "", "Digital Output"),
        0x1B => n(1.0, "", "Digital Input"),
        0x1C => n(1.0, "Baud", "Baud rate"),
        0x1D => n(1.0, "Bittimes", "Response delay time"),
        0x1E => n(1.0, "", "Retry"),
        0x20 => n(1.0, "", "First storage # for cyclic storage"),
        0x21 => n(1.0, "", "Last storage # for cyclic storage"),
        0x22 => n(1.0, "", "Size of storage block"),
        0x24..=0x27 => n(seconds(e), "s", "Storage interval"),
        0x28 => n(2_629_743.83, "s", "Storage interval"),
        0x29 => n(31_556_926.0, "s", "Storage interval"),
        0x2C..=0x2F => n(seconds(e), "s", "Duration since last readout"),
        0x30 => n(1.0, "Reserved", "Reserved"),
        0x31..=0x33 => n(seconds(e), "s", "Duration of tariff"),
        0x34..=0x37 => n(seconds(e), "s", "Period of tariff"),
        0x38 => n(2_629_743.83, "s", "Period of tariff"),
        0x39 => n(31_556_926.0, "s", "Period of tariff"),
        0x3A => n(1.0, "", "Dimensionless"),
        0x40..=0x4F => n(pow10(i32::from(e & 0x0F) - 9), "V", "Voltage"),
        0x50..=0x5F => n(pow10(i32::from(e & 0x0F) - 12), "A", "Current"),
        0x60 => n(1.0, "", "Reset counter"),
        0x61 => n(1.0, "", "Cumulation counter"),
        0x62 => n(1.0, "", "Control signal"),
        0x63 => n(1.0, "", "Day of week"),
        0x64 => n(1.0, "", "Week number"),
        0x65 => n(1.0, "", "Time point of day change"),
        0x66 => n(1.0, "", "State of parameter activation"),
        0x67 => n(1.0, "", "Special supplier information"),
        0x68..=0x6B => n(long_seconds(e), "s", "Duration since last cumulation"),
        0x6C..=0x6F => n(long_seconds(e), "s", "Operating time battery"),
        0x70 => n(1.0, "-", "Time point of battery change"),
        _ => n(1.0, "Reserved", "Reserved"),
    }
}

fn fb_normalized(e: u8) -> Option<Normalized> {
    let e = e & 0x7F;
    let k = i32::from(e & 1);
    let t = i32::from(e & 3) - 3;
    match e {
        0x00 | 0x01 => n(pow10(k + 5), "Wh", "Energy"),
        // libmbus labels GJ "Reserved" but scales to J.
        0x08 | 0x09 => n(pow10(k + 8), "Reserved", "Energy"),
        0x10 | 0x11 => n(pow10(k + 2), "m^3", "Volume"),
        0x18 | 0x19 => n(pow10(k + 5), "kg", "Mass"),
        0x21 => n(0.1, "feet^3", "Volume"),
        0x22 => n(0.1, "American gallon", "Volume"),
        0x23 => n(1.0, "American gallon", "Volume"),
        0x24 => n(1.0e-3, "American gallon/min", "Volume flow"),
        0x25 => n(1.0, "American gallon/min", "Volume flow"),
        0x26 => n(1.0, "American gallon/h", "Volume flow"),
        0x28 | 0x29 => n(pow10(k + 5), "W", "Power"),
        // libmbus prints GJ/h as "J".
        0x30 | 0x31 => n(pow10(k + 8), "J", "Power"),
        0x58..=0x5B => n(pow10(t), "°F", "Flow temperature"),
        0x5C..=0x5F => n(pow10(t), "°F", "Return temperature"),
        0x60..=0x63 => n(pow10(t), "°F", "Temperature difference"),
        0x64..=0x67 => n(pow10(t), "°F", "External temperature"),
        0x70..=0x73 => n(pow10(t), "°F", "Cold / Warm Temperature Limit"),
        0x74..=0x77 => n(pow10(t), "°C", "Cold / Warm Temperature Limit"),
        0x78..=0x7F => n(
            pow10(i32::from(e & 7) - 3),
            "W",
            "Cumulative count max power",
        ),
        _ => n(1.0, "Reserved", "Reserved"),
    }
}

/// Quantity, base unit and factor of a VIB, as libmbus normalizes it (for a
/// plain-text VIF: unit `-` and an empty quantity, which is the text); `None`
/// when libmbus cannot (VIF 0x7B/0x7D, 0xFB/0xFD without VIFE): such a record
/// is written as an empty element in its normalized XML.
///
/// Orthogonal VIFE (EN 13757-3 Table 15) after a primary VIF: only the first is
/// applied, and only 0x70–0x77 (×10^(n−6)), 0x78–0x7B (+10^(n−3)) and 0x7D (×1000).
pub fn normalized(v: &Vib) -> Option<Normalized> {
    let base = match v.vif {
        // Plain text: the caller shows the text as quantity.
        _ if v.text.is_some() => n(1.0, "-", "")?,
        0xFD => return v.vife.first().and_then(|&e| fd_normalized(e)),
        0xFB => return v.vife.first().and_then(|&e| fb_normalized(e)),
        vif => primary_normalized(vif)?,
    };
    let mut out = base;
    if v.vif & 0x80 != 0 {
        if let Some(&e) = v.vife.first() {
            match e & 0x7F {
                e @ 0x70..=0x77 => out.factor *= pow10(i32::from(e & 7) - 6),
                e @ 0x78..=0x7B => out.offset += pow10(i32::from(e & 3) - 3),
                0x7D => out.factor *= 1.0e3,
                _ => {}
            }
        }
    }
    Some(out)
}

/// Medium of the variable data header (EN 13757-3 Table 3), as libmbus names it.
pub fn medium_text(code: u8) -> Cow<'static, str> {
    let s = match code {
        0x00 => "Other",
        0x01 => "Oil",
        0x02 => "Electricity",
        0x03 => "Gas",
        0x04 => "Heat: Outlet",
        0x05 => "Steam",
        0x06 => "Warm water (30-90°C)",
        0x07 => "Water",
        0x08 => "Heat Cost Allocator",
        0x09 => "Compressed Air",
        0x0A => "Cooling load meter: Outlet",
        0x0B => "Cooling load meter: Inlet",
        0x0C => "Heat: Inlet",
        0x0D => "Heat / Cooling load meter",
        0x0E => "Bus/System",
        0x0F => "Unknown Medium",
        0x10 => "Irrigation Water",
        0x11 => "Water Logger",
        0x12 => "Gas Logger",
        0x13 => "Gas Converter",
        0x14 => "Calorific value",
        0x15 => "Hot water (>90°C)",
        0x16 => "Cold water",
        0x17 => "Dual water",
        0x18 => "Pressure",
        0x19 => "A/D Converter",
        0x1A => "Smoke Detector",
        0x1B => "Ambient Sensor",
        0x1C => "Gas Detector",
        0x20 => "Breaker: Electricity",
        0x21 => "Valve: Gas or Water",
        0x25 => "Customer Unit: Display Device",
        0x28 => "Waste Water",
        0x29 => "Garbage",
        0x30 => "Service Unit",
        0x36 => "Radio Converter: System",
        0x37 => "Radio Converter: Meter",
        0x22..=0x24 | 0x26 | 0x27 | 0x2A..=0x2F | 0x31..=0x34 | 0x38..=0x3F => "Reserved",
        other => return Cow::Owned(format!("Unknown medium (0x{other:02x})")),
    };
    Cow::Borrowed(s)
}

/// Medium of the fixed data structure (two bits of each counter's type byte).
pub fn fixed_medium_text(code: u8) -> &'static str {
    const NAMES: [&str; 16] = [
        "Other",
        "Oil",
        "Electricity",
        "Gas",
        "Heat",
        "Steam",
        "Hot Water",
        "Water",
        "H.C.A.",
        "Reserved",
        "Gas Mode 2",
        "Heat Mode 2",
        "Hot Water Mode 2",
        "Water Mode 2",
        "H.C.A. Mode 2",
        "Reserved",
    ];
    NAMES
        .get(usize::from(code & 0x0F))
        .copied()
        .unwrap_or("Reserved")
}

/// Unit of a fixed data structure counter (EN 13757-3 Annex, fixed structure units).
pub fn fixed_unit_text(code: u8) -> &'static str {
    const UNITS: [&str; 64] = [
        "h,m,s",
        "D,M,Y",
        "Wh",
        "10 Wh",
        "100 Wh",
        "kWh",
        "10 kWh",
        "100 kWh",
        "MWh",
        "10 MWh",
        "100 MWh",
        "kJ",
        "10 kJ",
        "MJ",
        "100 kJ",
        "10 MJ",
        "100 MJ",
        "GJ",
        "10 GJ",
        "100 GJ",
        "W",
        "10 W",
        "100 W",
        "kW",
        "10 kW",
        "100 kW",
        "MW",
        "10 MW",
        "100 MW",
        "kJ/h",
        "10 kJ/h",
        "100 kJ/h",
        "MJ/h",
        "10 MJ/h",
        "100 MJ/h",
        "GJ/h",
        "10 GJ/h",
        "100 GJ/h",
        "ml",
        "10 ml",
        "100 ml",
        "l",
        "10 l",
        "100 l",
        "m^3",
        "10 m^3",
        "100 m^3",
        "ml/h",
        "10 ml/h",
        "100 ml/h",
        "l/h",
        "10 l/h",
        "100 l/h",
        "m^3/h",
        "10 m^3/h",
        "100 m^3/h",
        "1e-3 °C",
        "units for HCA",
        "reserved",
        "reserved",
        "reserved",
        "reserved",
        "reserved but historic",
        "without units",
    ];
    UNITS
        .get(usize::from(code & 0x3F))
        .copied()
        .unwrap_or("reserved")
}

/// Application error of CI 0x70 (EN 13757-3 §6.3, Table 5).
pub fn error_text(code: u8) -> Cow<'static, str> {
    let s = match code {
        0 => "Unspecified error",
        1 => "Unimplemented CI-Field",
        2 => "Buffer too long, truncated",
        3 => "Too many records",
        4 => "Premature end of record",
        5 => "More than 10 DIFE´s",
        6 => "More than 10 VIFE´s",
        7 => "Reserved",
        8 => "Application busy",
        9 => "Too many readouts",
        other => return Cow::Owned(format!("Unknown error (0x{other:02X})")),
    };
    Cow::Borrowed(s)
}

/// Product name by manufacturer and version (libmbus's table); empty if unknown.
pub fn product_name(manufacturer: &str, version: u8, medium: u8, id_top: u8) -> &'static str {
    match (manufacturer, version) {
        ("ABB", 0x02) => "ABB Delta-Meter",
        ("ABB", 0x20) => "ABB B21 113-100",
        ("ACW", 0x09) => "Itron CF Echo 2",
        ("ACW", 0x0A) => "Itron CF 51",
        ("ACW", 0x0B) => "Itron CF 55",
        ("ACW", 0x0E) => "Itron BM +m",
        ("ACW", 0x0F) => "Itron CF 800",
        ("ACW", 0x14) => "Itron CYBLE M-Bus 1.4",
        ("AMT", v) if v >= 0xC0 => "Aquametro CALEC ST",
        ("AMT", v) if v >= 0x80 => "Aquametro CALEC MB",
        ("AMT", v) if v >= 0x40 => "Aquametro SAPHIR",
        ("AMT", _) => "Aquametro AMTRON",
        ("BEC", 0x00) if medium == 0x02 => "Berg DCMi",
        ("BEC", 0x07) if medium == 0x02 => "Berg BLMi",
        ("BEC", 0x71) if medium == 0x0F => "Berg BMB-10S0",
        ("EFE", 0x00) if medium == 0x06 => "Engelmann WaterStar",
        ("EFE", 0x00) => "Engelmann / Elster SensoStar 2",
        ("EFE", 0x01) => "Engelmann SensoStar 2C",
        ("ELS", 0x02) => "Elster TMP-A",
        ("ELS", 0x0A) => "Elster Falcon",
        ("ELS", 0x2F) => "Elster F96 Plus",
        ("ELV", 0x14..=0x1D) => "Elvaco CMa10",
        ("ELV", 0x32..=0x3B) => "Elvaco CMa11",
        ("EMH", 0x00) => "EMH DIZ",
        ("EMU", 0x10) if medium == 0x02 => "EMU Professional 3/75 M-Bus",
        ("GAV", 0x2D..=0x30) if medium == 0x02 => "Carlo Gavazzi EM24",
        ("GAV", 0x39 | 0x3A) if medium == 0x02 => "Carlo Gavazzi EM21",
        ("GAV", 0x40) if medium == 0x02 => "Carlo Gavazzi EM33",
        ("GMC", 0xE6) => "GMC-I A230 EMMOD 206",
        ("KAM", 0x01) => "Kamstrup 382 (6850-005)",
        ("KAM", 0x08) => "Kamstrup Multical 601",
        ("SLB", 0x02) => "Allmess Megacontrol CF-50",
        ("SLB", 0x06) => "CF Compact / Integral MK MaXX",
        ("HYD", 0x28) => "ABB F95 Typ US770",
        ("HYD", 0x2F) => "Hydrometer Sharky 775",
        ("JAN", 0x09) if medium == 0x02 => "Janitza UMG 96S",
        ("LUG", 0x02) => "Landis & Gyr Ultraheat 2WR5",
        ("LUG", 0x03) => "Landis & Gyr Ultraheat 2WR6",
        ("LUG", 0x04) => "Landis & Gyr Ultraheat UH50",
        ("LUG", 0x07) => "Landis & Gyr Ultraheat T230",
        ("LSE", 0x99) => "Siemens WFH21",
        ("NZR", 0x01) => "NZR DHZ 5/63",
        ("NZR", 0x50) => "NZR IC-M2",
        ("RAM", 0x03) => "Rossweiner ETK/ETW Modularis",
        ("REL", 0x08) => "Relay PadPuls M1",
        ("REL", 0x12) => "Relay PadPuls M4",
        ("REL", 0x20) => "Relay Padin 4",
        ("REL", 0x30) => "Relay AnDi 4",
        ("REL", 0x40) => "Relay PadPuls M2",
        ("RKE", 0x69) => "Ista sensonic II mbus",
        ("SBC", _) => match id_top {
            0x10 | 0x19 => "Saia-Burgess ALE3",
            0x11 => "Saia-Burgess AWD3",
            _ => "",
        },
        ("SEO" | "GTE", _) => match id_top {
            0x30 => "Sensoco PT100",
            0x41 => "Sensoco 2-NTC",
            0x45 => "Sensoco Laser Light",
            0x48 => "Sensoco ADIO",
            0x51 | 0x61 => "Sensoco THU",
            0x80 => "Sensoco PulseCounter for E-Meter",
            _ => "",
        },
        ("SEN", 0x08 | 0x19) => "Sensus PolluCom E",
        ("SEN", 0x0B) => "Sensus PolluTherm",
        ("SEN", 0x0E) => "Sensus PolluStat E",
        ("SON", 0x0D) => "Sontex Supercal 531",
        ("SPX", 0x31 | 0x34) => "Sensus PolluTherm",
        ("SVM", 0x08) => "Elster F2 / Deltamess F2",
        ("SVM", 0x09) => "Elster F4 / Kamstrup SVM F22",
        ("TCH", 0x26) => "Techem m-bus S",
        ("TCH", 0x40) => "Techem ultra S3",
        ("WZG", 0x03) => "Modularis ETW-EAX",
        ("ZRM", 0x81) => "Minol Minocal C2",
        ("ZRM", 0x82) => "Minol Minocal WR3",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vib(vif: u8, vife: &[u8]) -> Vib<'_> {
        Vib {
            vif,
            vife,
            text: None,
        }
    }

    #[test]
    fn texts_as_libmbus_prints_them() {
        assert_eq!(unit_text(&vib(0x13, &[])), "Volume (m m^3)");
        assert_eq!(unit_text(&vib(0x12, &[])), "Volume (1e-4  m^3)");
        assert_eq!(unit_text(&vib(0x16, &[])), "Volume ( m^3)");
        assert_eq!(unit_text(&vib(0x2A, &[])), "Power (1e-1 W)");
        assert_eq!(unit_text(&vib(0x06, &[])), "Energy (kWh)");
        assert_eq!(unit_text(&vib(0xFD, &[0x47])), "1e-2  V");
        assert_eq!(unit_text(&vib(0xFD, &[0xC9, 0x00])), " V");
        assert_eq!(unit_text(&vib(0xFD, &[0x59])), "m A");
        assert_eq!(unit_text(&vib(0xFD, &[])), "Missing VIF extension");
        assert_eq!(unit_text(&vib(0x79, &[])), "Unknown (VIF=0x79)");
        let rh = Vib {
            vif: 0xFC,
            vife: &[0x74],
            text: Some("%RH".into()),
        };
        assert_eq!(unit_text(&rh), "1e-2  %RH");
    }

    #[test]
    fn normalization() {
        let v = normalized(&vib(0x13, &[])).unwrap();
        assert_eq!((v.factor, v.unit, v.quantity), (1.0e-3, "m^3", "Volume"));
        let t = normalized(&vib(0x22, &[])).unwrap();
        assert_eq!((t.factor, t.unit), (3600.0, "s"));
        assert!(normalized(&vib(0x7B, &[])).is_none());
        assert!(normalized(&vib(0xFD, &[])).is_none());
        // VIFE 0x73 after a primary VIF multiplies by 10^(3-6).
        let scaled = normalized(&vib(0x83, &[0x73])).unwrap();
        assert!((scaled.factor - 1.0e-3).abs() < 1e-15);
        assert_eq!(medium_text(0x07), "Water");
        assert_eq!(medium_text(0x40), "Unknown medium (0x40)");
        assert_eq!(fixed_unit_text(0x29), "l");
        assert_eq!(fixed_unit_text(0x3E), "reserved but historic");
        assert_eq!(
            product_name("LUG", 0x07, 0x04, 0),
            "Landis & Gyr Ultraheat T230"
        );
    }
}

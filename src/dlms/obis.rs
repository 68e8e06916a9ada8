//! OBIS codes (IEC 62056-6-1 §4): six value groups A-B:C.D.E*F.

use core::fmt;

/// An OBIS code, value groups A to F.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Obis(pub [u8; 6]);

impl Obis {
    /// Clock, 0-0:1.0.0.255.
    pub const CLOCK: Obis = Obis([0, 0, 1, 0, 0, 255]);
    /// Meter serial number (device ID 1), 0-0:96.1.0.255.
    pub const METER_SERIAL: Obis = Obis([0, 0, 96, 1, 0, 255]);
    /// COSEM logical device name, 0-0:42.0.0.255.
    pub const LOGICAL_DEVICE_NAME: Obis = Obis([0, 0, 42, 0, 0, 255]);

    /// The code from six bytes; `None` for any other length.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 6]>::try_from(bytes).ok().map(Obis)
    }

    /// Value groups C, D, E of an electricity code (A = 1) regardless of the channel B.
    pub fn electricity_cde(&self) -> Option<(u8, u8, u8)> {
        let [a, _, c, d, e, _] = self.0;
        (a == 1).then_some((c, d, e))
    }
}

impl fmt::Display for Obis {
    /// `A-B:C.D.E`, with `*F` only when F is not 255.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, ff] = self.0;
        write!(f, "{a}-{b}:{c}.{d}.{e}")?;
        if ff != 255 {
            write!(f, "*{ff}")?;
        }
        Ok(())
    }
}

/// The symbol of a COSEM physical unit enumeration value (IEC 62056-6-2 §4.3.2,
/// Blue Book "Table 4 – Enumerated values for physical units"); `None` for
/// 255 (count, no unit) and 0 / unknown values.
pub fn unit_symbol(unit: u8) -> Option<&'static str> {
    Some(match unit {
        1 => "a",
        2 => "mo",
        3 => "wk",
        4 => "d",
        5 => "h",
        6 => "min",
        7 => "s",
        8 => "°",
        9 => "°C",
        10 => "currency",
        11 => "m",
        12 => "m/s",
        13 => "m³",
        14 => "m³",
        15 => "m³/h",
        16 => "m³/h",
        17 => "m³/d",
        18 => "m³/d",
        19 => "l",
        20 => "kg",
        21 => "N",
        22 => "Nm",
        23 => "Pa",
        24 => "bar",
        25 => "J",
        26 => "J/h",
        27 => "W",
        28 => "VA",
        29 => "var",
        30 => "Wh",
        31 => "VAh",
        32 => "varh",
        33 => "A",
        34 => "C",
        35 => "V",
        36 => "V/m",
        37 => "F",
        38 => "Ω",
        39 => "Ωm²/m",
        40 => "Wb",
        41 => "T",
        42 => "A/m",
        43 => "H",
        44 => "Hz",
        45 => "1/(Wh)",
        46 => "1/(varh)",
        47 => "1/(VAh)",
        48 => "V²h",
        49 => "A²h",
        50 => "kg/s",
        51 => "S",
        52 => "K",
        53 => "1/(V²h)",
        54 => "1/(A²h)",
        55 => "1/m³",
        56 => "%",
        57 => "Ah",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display() {
        assert_eq!(Obis([1, 0, 1, 8, 0, 255]).to_string(), "1-0:1.8.0");
        assert_eq!(Obis([1, 0, 1, 8, 0, 101]).to_string(), "1-0:1.8.0*101");
        assert_eq!(Obis::CLOCK.to_string(), "0-0:1.0.0");
        assert_eq!(unit_symbol(30), Some("Wh"));
        assert_eq!(unit_symbol(255), None);
    }
}

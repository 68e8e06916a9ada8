//! DSMR P1 telegrams (Dutch Smart Meter Requirements 2.2 to 5.0.2, Belgian
//! e-MUCS, Luxembourg Smarty and the other P1 variants in use).
//!
//! * [`crc`] computes CRC-16/ARC;
//! * [`telegram`] parses the telegram grammar;
//! * [`reading`] types values, names codes, applies time zones, groups M-Bus channels.

pub mod crc;
pub mod names;
pub mod reading;
pub mod stream;
pub mod telegram;

use jiff::tz::TimeZone;

use crate::error::{DecodeError, ErrorKind, Result};

pub use reading::DsmrReading;

/// How telegrams are read.
#[derive(Debug, Clone)]
pub struct Options {
    /// The meter's time zone (Europe/Amsterdam by default).
    pub tz: TimeZone,
    /// The code table: names by OBIS code or pattern, overriding or
    /// extending the default names ([`names::Names`]).
    pub names: names::Names,
    /// Raise on a CRC mismatch (the default); otherwise report it in the reading.
    pub verify_crc: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tz: TimeZone::get("Europe/Amsterdam").unwrap_or(TimeZone::UTC),
            names: names::Names::default(),
            verify_crc: true,
        }
    }
}

/// Decodes one plaintext P1 telegram (starting with `/`). The telegram ends
/// with its CRC line; bytes after it (a gateway's padding) are not read.
///
/// # Errors
/// [`ErrorKind::UnknownFraming`], [`ErrorKind::Truncated`] (no `!` line), and
/// [`ErrorKind::Crc16`] on a CRC mismatch when `options.verify_crc` is set, at
/// the offset of the CRC digits.
pub fn decode(input: &[u8], options: &Options) -> Result<DsmrReading> {
    let t = telegram::parse(input)?;
    if let (telegram::Crc::Mismatch { given, computed }, true) = (t.crc, options.verify_crc) {
        let at = telegram::find_end(input).map_or(0, |(bang, _)| bang + 1);
        return Err(DecodeError::new(ErrorKind::Crc16 { given, computed }, at));
    }
    Ok(reading::build(&t, &options.tz, &options.names))
}

//! Wired M-Bus (EN 13757-2 link layer, EN 13757-3 application layer).
//!
//! * [`frame`]: the long frame `68 L L 68 C A CI … CS 16`, which also carries the
//!   DLMS push of the Austrian customer interfaces (see [`crate::dlms::transport`]);
//! * [`link`]: every link-layer frame (E5, short, control, long), C- and A-fields;
//! * [`data`]: data headers and records (EN 13757-3), [`record_value`] their
//!   values, [`vif`] what VIF/VIFE mean, [`xml`] libmbus-compatible XML.

pub mod data;
pub mod frame;
pub mod link;
pub mod master;
pub mod reading;
pub mod record_value;
pub mod value;
pub mod vif;
pub mod xml;

pub use data::Application;
pub use frame::LongFrame;
pub use link::Frame;

use crate::error::{DecodeError, ErrorKind, Result};

/// Parses one M-Bus long frame and its application data.
///
/// # Errors
/// Link-layer errors of [`link::parse`]; [`ErrorKind::UnknownFraming`] for a
/// single character or short frame (they carry no data);
/// [`ErrorKind::TrailingBytes`]; the record errors of [`data::parse`].
pub fn parse_telegram(input: &[u8]) -> Result<(LongFrame<'_>, Application<'_>)> {
    parse_telegram_with(input, true)
}

/// [`parse_telegram`], the frame checksum (EN 13757-2 §5.4) checked only when
/// `verify_checksum`.
///
/// # Errors
/// As [`parse_telegram`], without [`ErrorKind::Checksum`] when
/// `verify_checksum` is false.
pub fn parse_telegram_with(
    input: &[u8],
    verify_checksum: bool,
) -> Result<(LongFrame<'_>, Application<'_>)> {
    let (frame, len) = link::parse_with(input, 0, verify_checksum)?;
    let Frame::Long(f) = frame else {
        return Err(DecodeError::new(
            ErrorKind::UnknownFraming {
                found: input.first().copied().unwrap_or(0),
            },
            0,
        ));
    };
    if len < input.len() {
        return Err(DecodeError::new(
            ErrorKind::TrailingBytes {
                count: input.len() - len,
            },
            len,
        ));
    }
    let app = data::parse(f.ci, f.data, f.data_offset)?;
    Ok((f, app))
}

/// Decodes one M-Bus long frame into a [`reading::MbusReading`].
///
/// # Errors
/// As [`parse_telegram`].
pub fn decode(input: &[u8]) -> Result<reading::MbusReading<'_>> {
    decode_with(input, true)
}

/// [`decode`], the frame checksum checked only when `verify_checksum` (for a
/// dump whose checksum is known to be stale).
///
/// # Errors
/// As [`parse_telegram_with`].
pub fn decode_with(input: &[u8], verify_checksum: bool) -> Result<reading::MbusReading<'_>> {
    let (frame, app) = parse_telegram_with(input, verify_checksum)?;
    Ok(reading::build(&frame, &app))
}

/// libmbus-compatible XML of the telegrams of one slave (see [`xml::to_xml`]).
///
/// # Errors
/// The first telegram that does not parse, with offsets into that telegram.
pub fn to_xml(telegrams: &[&[u8]], normalized: bool) -> Result<String> {
    to_xml_with(telegrams, normalized, true)
}

/// [`to_xml`], the frame checksums checked only when `verify_checksum` (a
/// published dump whose checksum byte was not redacted with the data, as
/// otb-iot's documentation shows its CF Echo II frame).
///
/// # Errors
/// As [`to_xml`], without [`ErrorKind::Checksum`] when `verify_checksum` is false.
pub fn to_xml_with(telegrams: &[&[u8]], normalized: bool, verify_checksum: bool) -> Result<String> {
    let apps = telegrams
        .iter()
        .map(|t| parse_telegram_with(t, verify_checksum).map(|(_, app)| app))
        .collect::<Result<Vec<_>>>()?;
    Ok(xml::to_xml(&apps, normalized))
}

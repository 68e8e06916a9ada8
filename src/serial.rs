//! Opening a serial port the way the meter interfaces need it (feature `serial`).
//!
//! The Austrian M-Bus customer interfaces run 2400 Bd 8E1 (Netz NÖ documentation;
//! TINETZ interface description); many users' adapters also work at 8N1, so parity
//! is a setting. DSMR 2.2/3.0 P1 ports send 9600 Bd 7E1 (DSMR P1 Companion
//! Standard 3.0 §4.2), so the number of data bits is a setting too. The port is
//! opened through the `serialport` crate, raw, 1 stop bit, no flow control, with
//! stale input discarded.

use std::io;
use std::time::Duration;

use serialport::{ClearBuffer, FlowControl, SerialPort, StopBits};

pub use serialport::{DataBits, Parity};

/// How to open the port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Device path, e.g. `/dev/ttyUSB0`, `/dev/ttyAMA0`, or a pseudo-terminal.
    pub port: String,
    /// Baud rate (2400 for the M-Bus push interfaces, 115200 for P1).
    pub baudrate: u32,
    /// Parity (even on the Netz NÖ interface).
    pub parity: Parity,
    /// Data bits per character: 8, or 7 for DSMR 2.2/3.0 P1 ports.
    pub data_bits: DataBits,
}

/// Parses a character size of 7 or 8 data bits (the only ones meters use).
pub fn parse_data_bits(bits: u8) -> Option<DataBits> {
    match bits {
        7 => Some(DataBits::Seven),
        8 => Some(DataBits::Eight),
        _ => None,
    }
}

/// Parses `"even"`, `"odd"` or `"none"` (also `E`, `O`, `N`), any case.
pub fn parse_parity(text: &str) -> Option<Parity> {
    match text.to_ascii_lowercase().as_str() {
        "even" | "e" => Some(Parity::Even),
        "odd" | "o" => Some(Parity::Odd),
        "none" | "n" => Some(Parity::None),
        _ => None,
    }
}

/// Opens and configures the port; reads time out after `timeout`.
///
/// # Errors
/// The operating system's error (no such device, permission denied, busy, …).
pub fn open(settings: &Settings, timeout: Duration) -> io::Result<Box<dyn SerialPort>> {
    let port = serialport::new(&settings.port, settings.baudrate)
        .data_bits(settings.data_bits)
        .stop_bits(StopBits::One)
        .parity(settings.parity)
        .flow_control(FlowControl::None)
        .timeout(timeout)
        .open()
        .map_err(io::Error::from)?;
    // A reading must come from bytes sent after we started listening.
    port.clear(ClearBuffer::Input).map_err(io::Error::from)?;
    Ok(port)
}

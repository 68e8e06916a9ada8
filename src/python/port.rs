//! Validating the serial-port arguments `SerialReader` and `MBusLink` share.

use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::serial::{self, Settings};

/// Seconds from Python as a `Duration` (`None` stays `None`).
///
/// # Errors
/// `ValueError` naming `name` for a negative, infinite or NaN value.
pub fn seconds(value: Option<f64>, name: &str) -> PyResult<Option<Duration>> {
    value
        .map(|s| {
            Duration::try_from_secs_f64(s).map_err(|_| {
                PyValueError::new_err(format!("{name} must be a number of seconds >= 0"))
            })
        })
        .transpose()
}

/// The settings to open `port` with.
///
/// # Errors
/// `ValueError` for a parity other than even/odd/none, a baud rate of 0, or a
/// byte size other than 7 or 8.
pub fn settings(port: String, baudrate: u32, parity: &str, bytesize: u8) -> PyResult<Settings> {
    let parity_value = serial::parse_parity(parity).ok_or_else(|| {
        PyValueError::new_err(format!(
            "parity must be \"even\", \"odd\" or \"none\", not {parity:?}"
        ))
    })?;
    if baudrate == 0 {
        return Err(PyValueError::new_err("baudrate must be positive"));
    }
    let data_bits = serial::parse_data_bits(bytesize)
        .ok_or_else(|| PyValueError::new_err(format!("bytesize must be 7 or 8, not {bytesize}")))?;
    Ok(Settings {
        port,
        baudrate,
        parity: parity_value,
        data_bits,
    })
}

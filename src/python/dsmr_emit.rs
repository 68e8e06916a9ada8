//! Helpers for the P1 simulator: the telegram CRC and Smarty-style encryption.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::convert;

/// CRC-16/ARC over `data` (for a telegram: from `/` through `!`).
#[pyfunction]
#[pyo3(signature = (data, /))]
pub fn dsmr_crc16(data: &[u8]) -> u16 {
    crate::dsmr::crc::crc16(data)
}

/// A general-glo-ciphering frame around `plaintext` as the Luxembourg Smarty
/// sends it: security control 0x30, AES-128-GCM, 12-byte tag over
/// AAD = 0x30 ‖ auth_key.
#[pyfunction]
#[pyo3(signature = (plaintext, /, *, key, auth_key, system_title, frame_counter))]
pub fn dsmr_encrypt<'py>(
    py: Python<'py>,
    plaintext: &[u8],
    key: &Bound<'py, PyAny>,
    auth_key: &Bound<'py, PyAny>,
    system_title: &[u8],
    frame_counter: u32,
) -> PyResult<Bound<'py, PyBytes>> {
    let key = convert::key(key, "key")?;
    let auth_key = convert::key(auth_key, "auth_key")?;
    let title: [u8; 8] = system_title
        .try_into()
        .map_err(|_| PyValueError::new_err("system_title must be 8 bytes"))?;
    let frame = crate::dlms::security::emit(
        &title,
        0x30,
        frame_counter,
        &key,
        Some(&auth_key),
        plaintext,
    );
    Ok(PyBytes::new(py, &frame))
}

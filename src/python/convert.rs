//! Python inputs to bytes: telegrams and keys.

use std::borrow::Cow;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyMemoryView, PyString};

use crate::dlms::Key;

/// Telegram bytes from `bytes` (borrowed), `str` (a hex dump, see
/// [`crate::hexdump`]; or a P1 telegram's text when it starts with `/`),
/// or any object with the buffer protocol (`bytearray`, `memoryview`, …; copied).
pub fn input<'a>(obj: &'a Bound<'_, PyAny>) -> PyResult<Cow<'a, [u8]>> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Cow::Borrowed(b.as_bytes()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        let text = s.to_cow()?;
        // A P1 telegram given as text is its own bytes (UTF-8).
        if text.starts_with('/') {
            return Ok(Cow::Owned(text.into_owned().into_bytes()));
        }
        return crate::hexdump::parse(&text)
            .map(Cow::Owned)
            .map_err(super::errors::to_py);
    }
    owned(obj)
        .ok_or_else(|| {
            PyTypeError::new_err(format!(
                "expected bytes, bytearray, memoryview or a hex string, not {}",
                type_name(obj)
            ))
        })?
        .map(Cow::Owned)
}

/// The bytes of each item (see [`input`]), and in a second vector, in step,
/// the error of each item that is no telegram (its bytes then empty).
pub fn inputs<'a>(items: &'a [Bound<'_, PyAny>]) -> (Vec<Cow<'a, [u8]>>, Vec<Option<PyErr>>) {
    let mut bad: Vec<Option<PyErr>> = Vec::with_capacity(items.len());
    let bytes = items
        .iter()
        .map(|i| match input(i) {
            Ok(bytes) => {
                bad.push(None);
                bytes
            }
            Err(e) => {
                bad.push(Some(e));
                Cow::Borrowed(&[][..])
            }
        })
        .collect();
    (bytes, bad)
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_owned())
}

/// A copy of a `bytearray` or `memoryview` (the limited API of Python 3.9 has no
/// buffer protocol, so `memoryview` goes through `bytes(obj)`); `None` for other types.
fn owned(obj: &Bound<'_, PyAny>) -> Option<PyResult<Vec<u8>>> {
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Some(Ok(b.to_vec()));
    }
    if obj.cast::<PyMemoryView>().is_ok() {
        let copy = obj
            .py()
            .get_type::<PyBytes>()
            .call1((obj,))
            .and_then(|b| Ok(b.cast::<PyBytes>()?.as_bytes().to_vec()));
        return Some(copy);
    }
    None
}

/// A 16-byte key from 32 hex digits or 16 bytes. The error never echoes the key.
pub fn key(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Key> {
    let parsed = if let Ok(s) = obj.cast::<PyString>() {
        Key::from_hex(&s.to_cow()?)
    } else if let Ok(b) = obj.cast::<PyBytes>() {
        Key::from_slice(b.as_bytes())
    } else if let Some(bytes) = owned(obj) {
        Key::from_slice(&bytes?)
    } else {
        return Err(PyTypeError::new_err(format!(
            "{name} must be a str of 32 hexadecimal digits or 16 bytes, not {}",
            type_name(obj)
        )));
    };
    parsed.ok_or_else(|| {
        PyValueError::new_err(format!(
            "{name} must be 32 hexadecimal digits or 16 bytes (AES-128); the value given is not (not shown)"
        ))
    })
}

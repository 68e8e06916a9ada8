//! The one conversion of core errors into Python exceptions.

use pyo3::prelude::*;

use crate::error::{Category, DecodeError};

/// The exception classes of `mbuspico/errors.py`.
mod exc {
    pyo3::import_exception!(mbuspico.errors, FrameError);
    pyo3::import_exception!(mbuspico.errors, ChecksumError);
    pyo3::import_exception!(mbuspico.errors, ApduError);
    pyo3::import_exception!(mbuspico.errors, RecordError);
    pyo3::import_exception!(mbuspico.errors, DecryptionError);
    pyo3::import_exception!(mbuspico.errors, HexError);
}

/// `DecodeError` → the `mbuspico.errors` class of its category, with `(message, offset, kind)`.
pub fn to_py(e: DecodeError) -> PyErr {
    let args = (e.to_string(), e.offset, e.kind.name());
    match e.kind.category() {
        Category::Frame => exc::FrameError::new_err(args),
        Category::Checksum => exc::ChecksumError::new_err(args),
        Category::Apdu => exc::ApduError::new_err(args),
        Category::Record => exc::RecordError::new_err(args),
        Category::Decryption => exc::DecryptionError::new_err(args),
        Category::Hex => exc::HexError::new_err(args),
    }
}

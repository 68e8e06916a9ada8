//! The one conversion of core errors into Python exceptions.

use pyo3::prelude::*;

use crate::error::{Category, DecodeError};

pyo3::import_exception!(mbuspico.errors, DecodeError as PyDecodeError);
pyo3::import_exception!(mbuspico.errors, FrameError);
pyo3::import_exception!(mbuspico.errors, ChecksumError);
pyo3::import_exception!(mbuspico.errors, ApduError);
pyo3::import_exception!(mbuspico.errors, DecryptionError);

/// `DecodeError` → the `mbuspico.errors` class of its category, with `(message, offset, kind)`.
pub fn to_py(e: DecodeError) -> PyErr {
    let args = (e.to_string(), e.offset, e.kind.name());
    match e.kind.category() {
        Category::Frame => FrameError::new_err(args),
        Category::Checksum => ChecksumError::new_err(args),
        Category::Apdu => ApduError::new_err(args),
        Category::Decryption => DecryptionError::new_err(args),
    }
}

/// A `mbuspico.DecodeError` for input that is not even bytes (e.g. bad hex text).
pub fn input_error(message: String, offset: usize, kind: &'static str) -> PyErr {
    PyDecodeError::new_err((message, offset, kind))
}

//! The `mbuspico._core` extension module: thin bindings over the Rust core.
//!
//! Exceptions are defined in Python (`mbuspico.errors`) and raised from here;
//! results become plain dicts through `pythonize`.

use pyo3::prelude::*;

mod convert;
mod decoder;
mod errors;
mod reading;
mod stream;

/// The native core of mbuspico. Use the public package `mbuspico` instead.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<decoder::Decoder>()?;
    m.add_class::<stream::Deframer>()?;
    Ok(())
}

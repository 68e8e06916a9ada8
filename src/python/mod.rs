//! The `mbuspico._core` extension module: thin bindings over the Rust core.
//!
//! Exceptions are defined in Python (`mbuspico.errors`) and raised from here;
//! results become plain dicts through `pythonize`.

use pyo3::prelude::*;

mod columns;
mod convert;
mod decoder;
mod dsmr_emit;
mod errors;
#[cfg(feature = "serial")]
mod log;
#[cfg(feature = "serial")]
mod mbus_master;
mod mbus_reading;
mod mbus_xml;
#[cfg(feature = "serial")]
mod port;
mod profiles;
#[cfg(feature = "serial")]
mod reader;
mod reading;
mod simulate;
mod stream;

/// The native core of mbuspico. Use the public package `mbuspico` instead.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<decoder::Decoder>()?;
    m.add_class::<decoder::DecodeIter>()?;
    m.add_class::<decoder::Secret>()?;
    m.add_class::<stream::Deframer>()?;
    #[cfg(feature = "serial")]
    m.add_class::<reader::SerialReader>()?;
    #[cfg(feature = "serial")]
    mbus_master::register(m)?;
    m.add_function(wrap_pyfunction!(simulate::encode_push, m)?)?;
    m.add_function(wrap_pyfunction!(profiles::profiles, m)?)?;
    m.add_function(wrap_pyfunction!(decoder::parse_hex, m)?)?;
    m.add_function(wrap_pyfunction!(columns::decode_columns, m)?)?;
    m.add_function(wrap_pyfunction!(mbus_xml::mbus_to_xml, m)?)?;
    m.add_function(wrap_pyfunction!(dsmr_emit::dsmr_crc16, m)?)?;
    m.add_function(wrap_pyfunction!(dsmr_emit::dsmr_encrypt, m)?)?;
    m.add_function(wrap_pyfunction!(simulate::system_title, m)?)?;
    m.add("METERS", simulate::meter_names())?;
    Ok(())
}

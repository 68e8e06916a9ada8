//! `_core.mbus_to_xml`: libmbus-compatible XML.

use pyo3::prelude::*;

use super::{convert, errors};

/// XML of one slave's telegrams (a list of frames, bytes-like or hex text);
/// frame checksums are checked unless `verify_checksum` is false.
#[pyfunction]
#[pyo3(signature = (frames, /, normalized = false, verify_checksum = true))]
pub fn mbus_to_xml(
    frames: Vec<Bound<'_, PyAny>>,
    normalized: bool,
    verify_checksum: bool,
) -> PyResult<String> {
    let owned = frames
        .iter()
        .map(|f| convert::input(f).map(|c| c.into_owned()))
        .collect::<PyResult<Vec<Vec<u8>>>>()?;
    let refs: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
    crate::mbus::to_xml_with(&refs, normalized, verify_checksum).map_err(errors::to_py)
}

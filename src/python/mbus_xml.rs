//! `_core.mbus_to_xml`: libmbus-compatible XML.

use pyo3::prelude::*;

use super::{convert, errors};

/// XML of one slave's telegrams (a list of frames, bytes-like or hex text).
#[pyfunction]
#[pyo3(signature = (frames, /, normalized = false))]
pub fn mbus_to_xml(frames: Vec<Bound<'_, PyAny>>, normalized: bool) -> PyResult<String> {
    let owned = frames
        .iter()
        .map(|f| convert::input(f).map(|c| c.into_owned()))
        .collect::<PyResult<Vec<Vec<u8>>>>()?;
    let refs: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
    crate::mbus::to_xml(&refs, normalized).map_err(errors::to_py)
}

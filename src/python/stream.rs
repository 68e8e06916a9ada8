//! `mbuspico.Deframer`.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::convert;
use crate::stream;

/// Finds verified telegrams in a byte stream. See `mbuspico/_core.pyi`.
#[pyclass(module = "mbuspico", name = "Deframer")]
#[derive(Default)]
pub struct Deframer {
    inner: stream::Deframer,
}

#[pymethods]
impl Deframer {
    #[new]
    fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; returns the telegrams completed by them.
    #[pyo3(signature = (data, /))]
    fn feed<'py>(
        &mut self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let bytes = convert::input(data)?;
        self.inner.push(&bytes);
        let mut out = Vec::new();
        while let Some(t) = self.inner.next_telegram() {
            out.push(PyBytes::new(py, &t));
        }
        Ok(out)
    }

    /// Ends the stream: bytes still buffered are counted as skipped.
    fn finish(&mut self) {
        self.inner.finish();
    }

    /// Bytes held back waiting for the rest of a telegram.
    #[getter]
    fn buffered(&self) -> usize {
        self.inner.buffered()
    }

    /// Counters: telegrams, bytes_skipped, bad_checksums, frames_dropped.
    #[getter]
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        pythonize::pythonize(py, &self.inner.stats()).map_err(PyErr::from)
    }

    fn __repr__(&self) -> String {
        let s = self.inner.stats();
        format!(
            "Deframer(telegrams={}, bytes_skipped={}, buffered={})",
            s.telegrams,
            s.bytes_skipped,
            self.inner.buffered()
        )
    }
}

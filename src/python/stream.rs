//! `mbuspico.Deframer`.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::convert;
use crate::stream;

/// Finds verified telegrams in a byte stream, whatever its chunking.
///
/// feed(data) returns the telegrams completed by data, each once its last byte
/// has arrived and every frame passed its length, stop-byte and checksum checks.
/// Garbage, broken frames and incomplete telegrams are skipped and counted in
/// .stats; bad data never raises.
#[pyclass(module = "mbuspico", name = "Deframer")]
pub struct Deframer {
    inner: stream::Framer,
}

impl Default for Deframer {
    fn default() -> Self {
        Deframer {
            inner: stream::Framer::Mbus(stream::Deframer::new()),
        }
    }
}

#[pymethods]
impl Deframer {
    #[new]
    #[pyo3(signature = (*, protocol = "auto"))]
    fn new(protocol: &str) -> PyResult<Self> {
        let inner = match protocol {
            "auto" | "dlms" | "mbus" => stream::Framer::Mbus(stream::Deframer::new()),
            "dsmr" => stream::Framer::Dsmr(crate::dsmr::stream::Framer::new()),
            other => {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "protocol must be \"auto\", \"dlms\", \"mbus\" or \"dsmr\", not {other:?}"
                )))
            }
        };
        Ok(Deframer { inner })
    }

    /// Add received bytes; returns the telegrams they completed (raw frames, oldest first).
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

    /// Give back an encrypted P1 frame that did not decrypt, to scan its bytes
    /// again; returns the telegrams that completes.
    #[pyo3(signature = (telegram, /))]
    fn reject<'py>(&mut self, py: Python<'py>, telegram: &[u8]) -> Vec<Bound<'py, PyBytes>> {
        self.inner.reject(telegram);
        let mut out = Vec::new();
        while let Some(t) = self.inner.next_telegram() {
            out.push(PyBytes::new(py, &t));
        }
        out
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

    /// Counters: telegrams, bytes_skipped, bad_checksums, incomplete_telegrams,
    /// shared_flags.
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

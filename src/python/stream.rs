//! `mbuspico.Deframer`.

use std::sync::{Mutex, MutexGuard, PoisonError};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::MutexExt;
use pyo3::types::{PyBytes, PyDict, PyTuple};

use super::convert;
use crate::framer::Framer;
use crate::stream::{self, Stats};

/// Finds verified telegrams in a byte stream, whatever its chunking.
///
/// feed(data) returns the telegrams completed by data, each once its last byte
/// has arrived and every frame passed its length, stop-byte and checksum checks.
/// Garbage, broken frames and incomplete telegrams are skipped and counted in
/// .stats; bad data never raises.
///
/// Safe to share between threads: each call works on the deframer alone, so
/// bytes fed from several threads are taken whole, one call after the other in
/// the order the calls get the deframer (interleaved by call, never within
/// one). Picklable (and copy/deepcopy): the copy keeps the bytes buffered for
/// a partial telegram and the counters, and goes on where this one stands.
#[pyclass(module = "mbuspico", name = "Deframer", frozen)]
pub struct Deframer {
    /// The protocol name given (`"auto"`, `"dlms"`, `"mbus"` or `"dsmr"`).
    protocol: &'static str,
    state: Mutex<State>,
}

/// Everything a deframer changes.
struct State {
    framer: Framer,
    /// P1 only: a copy of the framer's buffer (the P1 framer keeps its own
    /// private; pickling needs it). The framer only ever takes bytes from the
    /// front of its buffer, appends what is fed and puts a rejected frame's
    /// tail back in front, so the copy follows it by length.
    p1_buffer: Vec<u8>,
    /// P1 only: the counters of the deframer this one was unpickled from.
    carried: Stats,
}

impl State {
    fn new(framer: Framer) -> Self {
        State {
            framer,
            p1_buffer: Vec::new(),
            carried: Stats::default(),
        }
    }

    fn is_p1(&self) -> bool {
        matches!(self.framer, Framer::Dsmr(_))
    }

    /// The telegrams completed so far, the P1 buffer copy kept in step.
    fn telegrams(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(t) = self.framer.next_telegram() {
            out.push(t);
        }
        if self.is_p1() {
            let gone = self.p1_buffer.len().saturating_sub(self.framer.buffered());
            self.p1_buffer.drain(..gone);
        }
        out
    }

    fn push(&mut self, bytes: &[u8]) {
        self.framer.push(bytes);
        if self.is_p1() {
            self.p1_buffer.extend_from_slice(bytes);
        }
    }

    fn reject(&mut self, telegram: &[u8]) {
        let (before, telegrams) = (self.framer.buffered(), self.framer.stats().telegrams);
        self.framer.reject(telegram);
        if !self.is_p1() {
            return;
        }
        let back = self.framer.buffered().saturating_sub(before);
        if let Some(tail) = telegram.get(telegram.len().saturating_sub(back)..) {
            self.p1_buffer.splice(..0, tail.iter().copied());
        }
        // The rejected telegram may have been counted before pickling.
        if back > 0 && self.framer.stats().telegrams == telegrams {
            self.carried.telegrams = self.carried.telegrams.saturating_sub(1);
        }
    }

    fn stats(&self) -> Stats {
        let (s, c) = (self.framer.stats(), self.carried);
        Stats {
            telegrams: s.telegrams + c.telegrams,
            bytes_skipped: s.bytes_skipped + c.bytes_skipped,
            bad_checksums: s.bad_checksums + c.bad_checksums,
            incomplete_telegrams: s.incomplete_telegrams + c.incomplete_telegrams,
            shared_flags: s.shared_flags + c.shared_flags,
        }
    }
}

impl Default for Deframer {
    fn default() -> Self {
        Deframer {
            protocol: "auto",
            state: Mutex::new(State::new(Framer::Mbus(stream::Deframer::new()))),
        }
    }
}

impl Deframer {
    /// The state, waiting for another thread's call with the GIL released.
    fn lock(&self, py: Python<'_>) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; a poisoned one is still consistent.
        self.state
            .lock_py_attached(py)
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn framer(protocol: &str) -> PyResult<(&'static str, Framer)> {
        Ok(match protocol {
            "auto" => ("auto", Framer::Mbus(stream::Deframer::new())),
            "dlms" => ("dlms", Framer::Mbus(stream::Deframer::new())),
            "mbus" => ("mbus", Framer::Mbus(stream::Deframer::new())),
            "dsmr" => ("dsmr", Framer::Dsmr(crate::dsmr::stream::Framer::new())),
            other => {
                return Err(PyValueError::new_err(format!(
                    "protocol must be \"auto\", \"dlms\", \"mbus\" or \"dsmr\", not {other:?}"
                )))
            }
        })
    }
}

fn to_bytes<'py>(py: Python<'py>, telegrams: Vec<Vec<u8>>) -> Vec<Bound<'py, PyBytes>> {
    telegrams.iter().map(|t| PyBytes::new(py, t)).collect()
}

fn state_error(what: &str) -> PyErr {
    PyValueError::new_err(format!("not a pickled Deframer state: {what}"))
}

#[pymethods]
impl Deframer {
    #[new]
    #[pyo3(signature = (*, protocol = "auto"))]
    fn new(protocol: &str) -> PyResult<Self> {
        let (protocol, framer) = Self::framer(protocol)?;
        Ok(Deframer {
            protocol,
            state: Mutex::new(State::new(framer)),
        })
    }

    /// Add received bytes; returns the telegrams they completed (raw frames, oldest first).
    #[pyo3(signature = (data, /))]
    fn feed<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let bytes = convert::input(data)?;
        // Only Rust work under the lock: no Python code can run and wait for it.
        let telegrams = {
            let mut state = self.lock(py);
            state.push(&bytes);
            state.telegrams()
        };
        Ok(to_bytes(py, telegrams))
    }

    /// Give back an encrypted P1 frame that did not decrypt, to scan its bytes
    /// again; returns the telegrams that completes.
    #[pyo3(signature = (telegram, /))]
    fn reject<'py>(&self, py: Python<'py>, telegram: &[u8]) -> Vec<Bound<'py, PyBytes>> {
        let telegrams = {
            let mut state = self.lock(py);
            state.reject(telegram);
            state.telegrams()
        };
        to_bytes(py, telegrams)
    }

    /// Ends the stream: bytes still buffered are counted as skipped.
    fn finish(&self, py: Python<'_>) {
        let mut state = self.lock(py);
        state.framer.finish();
        state.p1_buffer.clear();
    }

    /// Bytes held back waiting for the rest of a telegram.
    #[getter]
    fn buffered(&self, py: Python<'_>) -> usize {
        self.lock(py).framer.buffered()
    }

    /// Counters: telegrams, bytes_skipped, bad_checksums, incomplete_telegrams,
    /// shared_flags.
    #[getter]
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let stats = self.lock(py).stats();
        pythonize::pythonize(py, &stats).map_err(PyErr::from)
    }

    /// Pickle support: `(Deframer._restore, (state,))`. The state holds the
    /// buffered bytes and the counters (no key material).
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let this = slf.get();
        // A snapshot taken under the lock; the Python objects are made after.
        let (framer, p1_buffer, stats) = {
            let s = this.lock(py);
            let framer = match &s.framer {
                Framer::Mbus(d) => Some(d.clone()),
                // A Python deframer is never an auto one (see `framer`).
                Framer::Dsmr(_) | Framer::Auto(_) => None,
            };
            (framer, s.p1_buffer.clone(), s.stats())
        };
        let state = PyDict::new(py);
        state.set_item("protocol", this.protocol)?;
        match framer {
            Some(d) => {
                let framer = pythonize::pythonize(py, &d)?.cast_into::<PyDict>()?;
                // The buffer as bytes, not a list of ints.
                if let Some(buf) = framer.get_item("buf")? {
                    let buf: Vec<u8> = buf.extract()?;
                    framer.set_item("buf", PyBytes::new(py, &buf))?;
                }
                state.set_item("mbus", framer)?;
            }
            None => {
                state.set_item("buffer", PyBytes::new(py, &p1_buffer))?;
                state.set_item("stats", pythonize::pythonize(py, &stats)?)?;
            }
        }
        let restore = slf.get_type().getattr("_restore")?;
        PyTuple::new(
            py,
            [restore.into_any(), PyTuple::new(py, [state])?.into_any()],
        )
    }

    /// A deframer from the state `__reduce__` gave (unpickling).
    #[classmethod]
    #[pyo3(signature = (state, /))]
    fn _restore(
        _cls: &Bound<'_, pyo3::types::PyType>,
        state: &Bound<'_, PyDict>,
    ) -> PyResult<Self> {
        let protocol: String = state
            .get_item("protocol")?
            .ok_or_else(|| state_error("no protocol"))?
            .extract()?;
        let (protocol, framer) = Self::framer(&protocol)?;
        let mut s = State::new(framer);
        if let Some(mbus) = state.get_item("mbus")? {
            if s.is_p1() {
                return Err(state_error("an M-Bus state for protocol \"dsmr\""));
            }
            let mbus = mbus.cast::<PyDict>()?.copy()?;
            if let Some(buf) = mbus.get_item("buf")? {
                let buf: Vec<u8> = buf.extract::<Vec<u8>>().or_else(|_| {
                    buf.cast::<PyBytes>()
                        .map(|b| b.as_bytes().to_vec())
                        .map_err(PyErr::from)
                })?;
                mbus.set_item("buf", buf)?;
            }
            let deframer: stream::Deframer = pythonize::depythonize(&mbus)
                .map_err(|e| state_error(&format!("M-Bus deframer: {e}")))?;
            s.framer = Framer::Mbus(deframer);
        } else {
            if !s.is_p1() {
                return Err(state_error("no M-Bus state"));
            }
            let buffer = state
                .get_item("buffer")?
                .ok_or_else(|| state_error("no buffer"))?;
            let buffer = buffer.cast::<PyBytes>()?.as_bytes();
            let stats = state
                .get_item("stats")?
                .ok_or_else(|| state_error("no stats"))?;
            s.carried =
                pythonize::depythonize(&stats).map_err(|e| state_error(&format!("stats: {e}")))?;
            s.push(buffer);
        }
        Ok(Deframer {
            protocol,
            state: Mutex::new(s),
        })
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let s = self.lock(py);
        let stats = s.stats();
        format!(
            "Deframer(telegrams={}, bytes_skipped={}, buffered={})",
            stats.telegrams,
            stats.bytes_skipped,
            s.framer.buffered()
        )
    }
}

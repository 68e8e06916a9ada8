//! `mbuspico.SerialReader`: blocking reads with the GIL released.
//!
//! Each wait on the port lasts at most [`POLL`]; between waits the GIL is taken
//! back to check for signals (Ctrl-C raises `KeyboardInterrupt` within that time)
//! and the deadline. A telegram is decoded the moment its last byte arrives: the
//! deframer knows from the L-fields when a telegram is complete.

use std::io;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use pyo3::exceptions::{PyStopIteration, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use serialport::SerialPort;

use super::decoder::Decoder;
use super::log::log;
use crate::framer::{Auto, Family, Framer};
use crate::serial::{self, Settings};
use crate::stream::Deframer;

/// Longest single wait on the port with the GIL released.
const POLL: Duration = Duration::from_millis(50);
/// First and longest wait between reconnection attempts.
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

mod exc {
    pyo3::import_exception!(mbuspico.errors, SerialPortError);
    pyo3::import_exception!(mbuspico.errors, DecryptionError);
}

#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    readings: u64,
    decode_errors: u64,
    decryption_errors: u64,
    reconnects: u64,
}

/// What the port delivered, for telling what is on the line when no telegram
/// is found (a P1 port read as M-Bus, a wrong baud rate).
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    /// Bytes received.
    bytes: u64,
    /// Of them printable ASCII, tab or a line end.
    text: u64,
    /// Of them the same with bit 7 set: 7-bit text with a parity bit read
    /// as 8 data bits (DSMR 2.2/3.0 ports send 7E1).
    text7: u64,
}

impl Seen {
    fn add(&mut self, chunk: &[u8]) {
        let text = |b: u8| matches!(b, b'\t' | b'\n' | b'\r' | 0x20..=0x7E);
        self.bytes += chunk.len() as u64;
        for &b in chunk {
            if text(b) {
                self.text += 1;
            } else if b & 0x80 != 0 && text(b & 0x7F) {
                self.text7 += 1;
            }
        }
    }
}

/// Reads and decodes telegrams from a serial port. See `mbuspico/_core.pyi`.
///
/// With `reconnect = false` a lost port is final: the read that finds it gone
/// raises `SerialPortError`, and so does every later read (naming the port
/// and that it was lost) until the reader is closed; nothing reopens it.
/// With `reconnect = true` the port is reopened with backoff.
#[pyclass(module = "mbuspico", name = "SerialReader")]
pub struct SerialReader {
    settings: Settings,
    decoder: Decoder,
    /// Whether the key is set (for the repr; the decoder holds the key).
    has_key: bool,
    /// Whether DLMS readings get their decrypted APDU under "apdu".
    with_apdu: bool,
    timeout: Option<Duration>,
    reconnect: bool,
    /// In a mutex only to make the class `Sync`; reached through `get_mut`.
    port: Mutex<Option<Box<dyn SerialPort>>>,
    deframer: Framer,
    counters: Counters,
    seen: Seen,
    /// The last telegram's decoding error.
    last_error: Option<PyErr>,
    closed: bool,
    /// Why the port was lost, once it was with `reconnect = false`: every
    /// later read raises.
    lost_reason: Option<String>,
    next_attempt: Instant,
    backoff: Duration,
}

use super::port::seconds;

impl SerialReader {
    fn port_mut(&mut self) -> &mut Option<Box<dyn SerialPort>> {
        self.port.get_mut().unwrap_or_else(PoisonError::into_inner)
    }

    fn port_error(&self, e: &io::Error) -> PyErr {
        exc::SerialPortError::new_err(format!("serial port {}: {e}", self.settings.port))
    }

    /// The error every read raises once the port was lost without `reconnect`.
    fn lost_error(&self, reason: &str) -> PyErr {
        exc::SerialPortError::new_err(format!(
            "serial port {} was lost ({reason}) and reconnect=False: \
             close the reader and open a new one",
            self.settings.port
        ))
    }

    /// The port failed: raise (for good, without `reconnect`), or forget it
    /// and reconnect later.
    fn lost(&mut self, py: Python<'_>, e: io::Error) -> PyResult<()> {
        *self.port_mut() = None;
        if !self.reconnect {
            self.lost_reason = Some(e.to_string());
            return Err(exc::SerialPortError::new_err(format!(
                "serial port {} lost: {e}",
                self.settings.port
            )));
        }
        log(
            py,
            "warning",
            format!(
                "serial port {} lost ({e}); reconnecting",
                self.settings.port
            ),
        );
        self.backoff = BACKOFF_MIN;
        self.next_attempt = Instant::now() + BACKOFF_MIN;
        Ok(())
    }

    /// One reconnection attempt if it is due, else a nap of at most `slice`.
    fn reopen(&mut self, py: Python<'_>, slice: Duration) {
        let now = Instant::now();
        if now < self.next_attempt {
            let nap = slice.min(self.next_attempt - now);
            py.detach(|| std::thread::sleep(nap));
            return;
        }
        match serial::open(&self.settings, POLL) {
            Ok(port) => {
                *self.port_mut() = Some(port);
                self.counters.reconnects += 1;
                // Bytes from before the loss cannot complete a telegram.
                self.deframer.finish();
                log(
                    py,
                    "info",
                    format!("serial port {} reopened", self.settings.port),
                );
            }
            Err(e) => {
                log(
                    py,
                    "debug",
                    format!(
                        "serial port {}: {e}; next try in {:?}",
                        self.settings.port, self.backoff
                    ),
                );
                self.next_attempt = now + self.backoff;
                self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
            }
        }
    }

    fn next_reading<'py>(
        &mut self,
        py: Python<'py>,
        timeout: Option<Duration>,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut buf = [0u8; 512];
        loop {
            // One telegram at a time, decoded before the framer looks further:
            // a rejected frame is handed back with the bytes after it unread.
            while let Some(telegram) = self.deframer.next_telegram() {
                match self.decoder.decode_bytes(py, &telegram) {
                    Ok(r) => {
                        self.counters.readings += 1;
                        let r = r.cast_into::<PyDict>()?;
                        if self.with_apdu
                            && r.get_item("protocol")?
                                .is_some_and(|p| p.eq("dlms").unwrap_or(false))
                        {
                            // Decoded, so the telegram decrypts: this cannot fail.
                            if let Ok(apdu) = self.decoder.apdu_bytes(&telegram) {
                                r.set_item("apdu", pyo3::types::PyBytes::new(py, &apdu))?;
                            }
                        }
                        return Ok(Some(r));
                    }
                    Err(e) => {
                        if e.is_instance_of::<exc::DecryptionError>(py) {
                            self.counters.decryption_errors += 1;
                        } else {
                            self.counters.decode_errors += 1;
                        }
                        self.last_error = Some(e.clone_ref(py));
                        // An encrypted P1 frame that failed may hold the next
                        // frame's start: scan its bytes again.
                        self.deframer.reject(&telegram);
                        log(
                            py,
                            "warning",
                            format!("dropped a telegram: {}", e.value(py)),
                        );
                    }
                }
            }
            if self.closed {
                return Err(PyValueError::new_err("read from a closed SerialReader"));
            }
            if let Some(reason) = &self.lost_reason {
                return Err(self.lost_error(reason));
            }
            let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if remaining == Some(Duration::ZERO) {
                return Ok(None);
            }
            let slice = remaining.map_or(POLL, |r| r.min(POLL));
            match self.port_mut().as_mut() {
                None => self.reopen(py, slice),
                Some(port) => {
                    let _ = port.set_timeout(slice);
                    let result = py.detach(|| port.read(&mut buf));
                    match result {
                        Ok(0) => self.lost(
                            py,
                            io::Error::new(io::ErrorKind::UnexpectedEof, "the device closed"),
                        )?,
                        Ok(n) => {
                            let chunk = buf.get_mut(..n).unwrap_or_default();
                            if self.settings.data_bits == serial::DataBits::Seven {
                                // 7-bit characters: drop a parity bit the adapter
                                // may have left in bit 7.
                                chunk.iter_mut().for_each(|b| *b &= 0x7F);
                            }
                            self.seen.add(chunk);
                            self.deframer.push(chunk)
                        }
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::TimedOut
                                    | io::ErrorKind::Interrupted
                                    | io::ErrorKind::WouldBlock
                            ) => {}
                        Err(e) => self.lost(py, e)?,
                    }
                }
            }
            py.check_signals()?;
        }
    }
}

#[pymethods]
impl SerialReader {
    #[new]
    #[pyo3(signature = (port, *, key, auth_key = None, protocol = "auto", profile = "auto", baudrate = None, parity = None, bytesize = None, timeout = None, reconnect = false, tz = None, names = None, apdu = false, verify_tag = true))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        port: String,
        key: Option<&Bound<'_, PyAny>>,
        auth_key: Option<&Bound<'_, PyAny>>,
        protocol: &str,
        profile: &str,
        baudrate: Option<u32>,
        parity: Option<&str>,
        bytesize: Option<u8>,
        timeout: Option<f64>,
        reconnect: bool,
        tz: Option<&str>,
        names: Option<&Bound<'_, PyAny>>,
        apdu: bool,
        verify_tag: bool,
    ) -> PyResult<Self> {
        let meter = super::decoder::profile(profile)?;
        let family = super::decoder::protocol(protocol, meter)?;
        let p1 = family == Some(crate::Protocol::Dsmr);
        // The profile's interface; else the M-Bus push interfaces' 2400 8E1, P1 ports' 115200 8N1.
        let serial = meter.map(|m| m.serial);
        let baudrate =
            baudrate
                .or(serial.map(|s| s.baudrate))
                .unwrap_or(if p1 { 115_200 } else { 2400 });
        let parity =
            parity
                .or(serial.map(|s| s.parity))
                .unwrap_or(if p1 { "none" } else { "even" });
        let bytesize = bytesize.or(serial.map(|s| s.data_bits)).unwrap_or(8);
        let decoder = Decoder::new(
            key, auth_key, protocol, profile, tz, names, true, verify_tag,
        )?;
        let settings = super::port::settings(port, baudrate, parity, bytesize)?;
        let mut reader = SerialReader {
            settings,
            has_key: key.is_some(),
            with_apdu: apdu,
            decoder,
            timeout: seconds(timeout, "timeout")?,
            reconnect,
            port: Mutex::new(None),
            deframer: match family {
                // "auto": both framers until one finds a verified telegram.
                None => Framer::Auto(Box::new(Auto::new())),
                Some(crate::Protocol::Dsmr) => Framer::Dsmr(crate::dsmr::stream::Framer::new()),
                Some(_) => Framer::Mbus(Deframer::new()),
            },
            counters: Counters::default(),
            seen: Seen::default(),
            last_error: None,
            closed: false,
            lost_reason: None,
            next_attempt: Instant::now(),
            backoff: BACKOFF_MIN,
        };
        match serial::open(&reader.settings, POLL) {
            Ok(p) => *reader.port_mut() = Some(p),
            Err(e) if reconnect => {
                log(
                    py,
                    "warning",
                    format!("serial port {}: {e}; will retry", reader.settings.port),
                );
            }
            Err(e) => return Err(reader.port_error(&e)),
        }
        Ok(reader)
    }

    /// Wait for the next reading; None when `timeout` seconds pass first.
    #[pyo3(signature = (timeout = None))]
    fn read<'py>(
        &mut self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let timeout = match seconds(timeout, "timeout")? {
            Some(t) => Some(t),
            None => self.timeout,
        };
        self.next_reading(py, timeout)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let timeout = self.timeout;
        match self.next_reading(py, timeout)? {
            Some(r) => Ok(r),
            None => Err(PyStopIteration::new_err(())),
        }
    }

    /// Close the port. Reading afterwards raises ValueError.
    fn close(&mut self) {
        *self.port_mut() = None;
        self.closed = true;
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&mut self, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.close();
        false
    }

    /// The device path.
    #[getter]
    fn port(&self) -> &str {
        &self.settings.port
    }

    /// The line speed the port was opened with, baud.
    #[getter]
    fn baudrate(&self) -> u32 {
        self.settings.baudrate
    }

    /// The parity the port was opened with: "even", "odd" or "none".
    #[getter]
    fn parity(&self) -> &'static str {
        match self.settings.parity {
            serialport::Parity::Even => "even",
            serialport::Parity::Odd => "odd",
            serialport::Parity::None => "none",
        }
    }

    /// Data bits per character the port was opened with (7 or 8).
    #[getter]
    fn bytesize(&self) -> u8 {
        match self.settings.data_bits {
            serial::DataBits::Seven => 7,
            _ => 8,
        }
    }

    /// The meter profile's name; None without one ("auto").
    #[getter]
    fn profile(&self) -> Option<&'static str> {
        self.decoder.profile_name()
    }

    /// Whether the port is open right now.
    #[getter]
    fn connected(&mut self) -> bool {
        self.port_mut().is_some()
    }

    /// Counters of the deframer and the decoder (see the stub).
    #[getter]
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        let s = self.deframer.stats();
        d.set_item("telegrams", s.telegrams)?;
        d.set_item("bytes_skipped", s.bytes_skipped)?;
        d.set_item("bad_checksums", s.bad_checksums)?;
        d.set_item("incomplete_telegrams", s.incomplete_telegrams)?;
        d.set_item("shared_flags", s.shared_flags)?;
        d.set_item("readings", self.counters.readings)?;
        d.set_item("decode_errors", self.counters.decode_errors)?;
        d.set_item("decryption_errors", self.counters.decryption_errors)?;
        d.set_item("reconnects", self.counters.reconnects)?;
        Ok(d)
    }

    /// What the port delivered (see the stub).
    #[getter]
    fn seen<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("bytes", self.seen.bytes)?;
        d.set_item("text", self.seen.text)?;
        d.set_item("text7", self.seen.text7)?;
        Ok(d)
    }

    /// The framing found: "mbus" (M-Bus or HDLC frames) or "dsmr" (P1); None
    /// while protocol "auto" has recognised neither.
    #[getter]
    fn framing(&self) -> Option<&'static str> {
        self.deframer.family().map(|f| match f {
            Family::Mbus => "mbus",
            Family::P1 => "dsmr",
        })
    }

    /// The error of the last telegram that did not decode, if any.
    #[getter]
    fn last_error<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyAny>> {
        self.last_error
            .as_ref()
            .map(|e| e.value(py).clone().into_any())
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let port = pyo3::types::PyString::new(py, &self.settings.port).repr()?;
        let parity = match self.settings.parity {
            serial::Parity::Even => "even",
            serial::Parity::Odd => "odd",
            serial::Parity::None => "none",
        };
        let key = if self.has_key { "<redacted>" } else { "None" };
        Ok(format!(
            "SerialReader({port}, baudrate={}, parity='{parity}', key={key})",
            self.settings.baudrate
        ))
    }
}

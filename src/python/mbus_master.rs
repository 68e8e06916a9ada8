//! `mbuspico._core.MBusLink` and the M-Bus request builders: the master's side
//! of the EN 13757-2 link layer on a serial port.
//!
//! A link sends request bytes and receives one frame: `E5`, a short or a long
//! frame. Each wait on the port lasts at most [`POLL`] with the GIL released;
//! between waits signals are checked (Ctrl-C raises `KeyboardInterrupt`). Frames
//! going from master to slave (our own request echoed by a level converter) are
//! discarded, as libmbus does. Bytes that are not one valid frame, or more bytes
//! after one, are a collision: `mbuspico.errors.CollisionError`.

use std::io::{self, Read, Write};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyModule, PyTuple};
use serialport::{ClearBuffer, SerialPort};

use super::convert;
use super::errors::to_py;
use crate::mbus::link::{self, Frame};
use crate::mbus::master::{self, Received, SecondaryAddress};
use crate::serial::{self, Settings};

/// Longest single wait on the port with the GIL released.
const POLL: Duration = Duration::from_millis(50);
/// Longest time spent draining a garbled answer before reporting it.
const DRAIN_MAX: Duration = Duration::from_secs(2);
/// Shortest quiet time after a frame before it counts as complete.
const QUIET_MIN: Duration = Duration::from_millis(10);

mod exc {
    pyo3::import_exception!(mbuspico.errors, SerialPortError);
    pyo3::import_exception!(mbuspico.errors, CollisionError);
}

/// Logs `message` at debug level on the `mbuspico` logger.
fn debug(py: Python<'_>, message: String) {
    super::log::log(py, "debug", message);
}

fn hex(bytes: &[u8]) -> String {
    let shown: Vec<String> = bytes.iter().take(32).map(|b| format!("{b:02X}")).collect();
    let more = if bytes.len() > 32 { " …" } else { "" };
    format!("{}{more}", shown.join(" "))
}

use super::port::seconds;

fn is_wait(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
    )
}

/// One M-Bus master link on a serial port. See `mbuspico/_core.pyi`.
#[pyclass(module = "mbuspico", name = "MBusLink")]
pub struct MBusLink {
    settings: Settings,
    timeout: Option<Duration>,
    /// In a mutex only to make the class `Sync`; reached through `get_mut`.
    port: Mutex<Option<Box<dyn SerialPort>>>,
    /// Bytes of the last request, whose sending time the next wait adds.
    sent: usize,
    closed: bool,
}

enum Step {
    /// Bytes arrived.
    Data,
    /// The slice passed without a byte.
    Quiet,
}

impl MBusLink {
    fn port_mut(&mut self) -> PyResult<&mut Box<dyn SerialPort>> {
        if self.closed {
            return Err(PyValueError::new_err("use of a closed MBusLink"));
        }
        let name = self.settings.port.clone();
        self.port
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
            .ok_or_else(|| exc::SerialPortError::new_err(format!("serial port {name}: not open")))
    }

    fn port_error(&self, e: &io::Error) -> PyErr {
        exc::SerialPortError::new_err(format!("serial port {}: {e}", self.settings.port))
    }

    /// The silence allowed before the first byte and between bytes.
    fn gap(&self, timeout: Option<Duration>) -> Duration {
        timeout
            .or(self.timeout)
            .unwrap_or_else(|| master::response_timeout(self.settings.baudrate))
    }

    /// Waits at most `slice` (≤ [`POLL`]) for bytes, appending them to `buf`.
    fn read_slice(&mut self, py: Python<'_>, slice: Duration, buf: &mut Vec<u8>) -> PyResult<Step> {
        let mut chunk = [0u8; 256];
        let port = self.port_mut()?;
        let _ = port.set_timeout(slice.clamp(Duration::from_millis(1), POLL));
        let result = py.detach(|| port.read(&mut chunk));
        let step = match result {
            Ok(0) => {
                let e = io::Error::new(io::ErrorKind::UnexpectedEof, "the device closed");
                return Err(self.port_error(&e));
            }
            Ok(n) => {
                buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
                Step::Data
            }
            Err(e) if is_wait(&e) => Step::Quiet,
            Err(e) => return Err(self.port_error(&e)),
        };
        py.check_signals()?;
        Ok(step)
    }

    /// Reads until the line has been quiet for `quiet` (at most [`DRAIN_MAX`]).
    fn drain(&mut self, py: Python<'_>, quiet: Duration, buf: &mut Vec<u8>) -> PyResult<()> {
        let stop = Instant::now() + DRAIN_MAX;
        let mut until = Instant::now() + quiet;
        loop {
            let now = Instant::now();
            if now >= until || now >= stop {
                return Ok(());
            }
            if let Step::Data = self.read_slice(py, (until - now).min(POLL), buf)? {
                until = Instant::now() + quiet;
            }
        }
    }

    fn collision(&self, py: Python<'_>, what: String, data: &[u8]) -> PyErr {
        let message = format!(
            "collision on {}: {what} ({} byte(s): {})",
            self.settings.port,
            data.len(),
            hex(data)
        );
        debug(py, message.clone());
        exc::CollisionError::new_err((message, PyBytes::new(py, data).unbind()))
    }

    fn receive_frame(
        &mut self,
        py: Python<'_>,
        timeout: Option<Duration>,
    ) -> PyResult<Option<Vec<u8>>> {
        let baud = self.settings.baudrate;
        let gap = self.gap(timeout);
        let quiet = master::transmission_time(3, baud).max(QUIET_MIN);
        let mut deadline = Instant::now() + gap + master::transmission_time(self.sent, baud);
        self.sent = 0;
        let mut buf: Vec<u8> = Vec::new();
        loop {
            while !buf.is_empty() {
                match master::classify(&buf) {
                    Ok((Received::Echo, n)) => {
                        let echo: Vec<u8> = buf.drain(..n.min(buf.len())).collect();
                        debug(py, format!("M-Bus: discarded echo {}", hex(&echo)));
                    }
                    Ok((_, n)) => {
                        let mut rest = buf.split_off(n.min(buf.len()));
                        self.drain(py, quiet, &mut rest)?;
                        if rest.is_empty() {
                            return Ok(Some(buf));
                        }
                        let what = format!("{} byte(s) after a valid frame", rest.len());
                        buf.extend_from_slice(&rest);
                        return Err(self.collision(py, what, &buf));
                    }
                    Err(e) if master::is_incomplete(&e.kind) => break,
                    Err(e) => {
                        self.drain(py, gap.min(Duration::from_millis(500)), &mut buf)?;
                        return Err(self.collision(py, format!("not a valid frame: {e}"), &buf));
                    }
                }
            }
            let now = Instant::now();
            if now >= deadline {
                if buf.is_empty() {
                    return Ok(None);
                }
                return Err(self.collision(py, "incomplete frame".to_owned(), &buf));
            }
            if let Step::Data = self.read_slice(py, (deadline - now).min(POLL), &mut buf)? {
                deadline = Instant::now() + gap;
            }
        }
    }

    fn send_bytes(&mut self, py: Python<'_>, data: &[u8]) -> PyResult<()> {
        let port = self.port_mut()?;
        // An answer must come after the request: drop whatever is still buffered.
        let cleared = port.clear(ClearBuffer::Input).map_err(io::Error::from);
        let result = cleared.and_then(|()| py.detach(|| port.write_all(data)));
        if let Err(e) = result {
            return Err(self.port_error(&e));
        }
        self.sent = data.len();
        Ok(())
    }
}

#[pymethods]
impl MBusLink {
    #[new]
    #[pyo3(signature = (port, *, baudrate = 2400, parity = "even", timeout = None))]
    fn new(port: String, baudrate: u32, parity: &str, timeout: Option<f64>) -> PyResult<Self> {
        let settings = super::port::settings(port, baudrate, parity, 8)?;
        let timeout = seconds(timeout, "timeout")?;
        let link = MBusLink {
            settings,
            timeout,
            port: Mutex::new(None),
            sent: 0,
            closed: false,
        };
        match serial::open(&link.settings, POLL) {
            Ok(p) => {
                *link.port.lock().unwrap_or_else(PoisonError::into_inner) = Some(p);
                Ok(link)
            }
            Err(e) => Err(link.port_error(&e)),
        }
    }

    /// Send request bytes (input still buffered is discarded first).
    #[pyo3(signature = (data, /))]
    fn send(&mut self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let bytes = convert::input(data)?;
        self.send_bytes(py, &bytes)
    }

    /// Receive one frame; None when the slave stays silent.
    #[pyo3(signature = (timeout = None))]
    fn receive<'py>(
        &mut self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let timeout = seconds(timeout, "timeout")?;
        Ok(self
            .receive_frame(py, timeout)?
            .map(|f| PyBytes::new(py, &f)))
    }

    /// Send a request and receive the answer (see `send` and `receive`).
    #[pyo3(signature = (data, /, timeout = None))]
    fn transact<'py>(
        &mut self,
        py: Python<'py>,
        data: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let timeout = seconds(timeout, "timeout")?;
        let bytes = convert::input(data)?;
        self.send_bytes(py, &bytes)?;
        Ok(self
            .receive_frame(py, timeout)?
            .map(|f| PyBytes::new(py, &f)))
    }

    /// The line speed in baud; setting it reconfigures the open port.
    #[getter]
    fn baudrate(&self) -> u32 {
        self.settings.baudrate
    }

    #[setter]
    fn set_baudrate(&mut self, baudrate: u32) -> PyResult<()> {
        if baudrate == 0 {
            return Err(PyValueError::new_err("baudrate must be positive"));
        }
        let port = self.port_mut()?;
        if let Err(e) = port.set_baud_rate(baudrate).map_err(io::Error::from) {
            return Err(self.port_error(&e));
        }
        self.settings.baudrate = baudrate;
        Ok(())
    }

    /// The silence (seconds) allowed before and between the bytes of an answer.
    #[getter]
    fn timeout(&self) -> f64 {
        self.gap(None).as_secs_f64()
    }

    /// The device path.
    #[getter]
    fn port(&self) -> &str {
        &self.settings.port
    }

    /// Close the port; later use raises ValueError.
    fn close(&mut self) {
        *self.port.get_mut().unwrap_or_else(PoisonError::into_inner) = None;
        self.closed = true;
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&mut self, _args: &Bound<'_, PyTuple>) -> bool {
        self.close();
        false
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let port = pyo3::types::PyString::new(py, &self.settings.port).repr()?;
        let parity = match self.settings.parity {
            serial::Parity::Even => "even",
            serial::Parity::Odd => "odd",
            serial::Parity::None => "none",
        };
        Ok(format!(
            "MBusLink({port}, baudrate={}, parity='{parity}')",
            self.settings.baudrate
        ))
    }
}

fn secondary(text: &str) -> PyResult<SecondaryAddress> {
    SecondaryAddress::parse(text).map_err(|e| PyValueError::new_err(e.0))
}

fn bytes<'py>(py: Python<'py>, data: &[u8]) -> Bound<'py, PyBytes> {
    PyBytes::new(py, data)
}

/// SND_NKE `10 40 A CS 16`.
#[pyfunction]
fn mbus_snd_nke(py: Python<'_>, address: u8) -> Bound<'_, PyBytes> {
    bytes(py, &master::snd_nke(address))
}

/// REQ_UD2 `10 5B|7B A CS 16`.
#[pyfunction]
#[pyo3(signature = (address, *, fcb = false))]
fn mbus_req_ud2(py: Python<'_>, address: u8, fcb: bool) -> Bound<'_, PyBytes> {
    bytes(py, &master::req_ud2(address, fcb))
}

/// Application reset, SND_UD CI 0x50.
#[pyfunction]
fn mbus_application_reset(py: Python<'_>, address: u8) -> Bound<'_, PyBytes> {
    bytes(py, &master::application_reset(address))
}

/// Selection by secondary address, SND_UD to 0xFD with CI 0x52.
#[pyfunction]
fn mbus_select<'py>(py: Python<'py>, secondary_address: &str) -> PyResult<Bound<'py, PyBytes>> {
    Ok(bytes(py, &master::select(&secondary(secondary_address)?)))
}

/// Set primary address, SND_UD CI 0x51 with `01 7A new`.
#[pyfunction]
fn mbus_set_primary_address(
    py: Python<'_>,
    address: u8,
    new_address: u8,
) -> PyResult<Bound<'_, PyBytes>> {
    master::set_primary_address(address, new_address)
        .map(|f| bytes(py, &f))
        .map_err(|e| PyValueError::new_err(e.0))
}

/// A secondary address in its canonical 16-hex-digit form.
#[pyfunction]
fn mbus_parse_secondary(secondary_address: &str) -> PyResult<String> {
    Ok(secondary(secondary_address)?.to_string())
}

/// Whether `pattern` selects the slave with address `secondary_address`.
#[pyfunction]
fn mbus_secondary_matches(pattern: &str, secondary_address: &str) -> PyResult<bool> {
    Ok(secondary(pattern)?.matches(&secondary(secondary_address)?))
}

/// Kind and length of the frame at the start of `data`.
#[pyfunction]
#[pyo3(signature = (data, /))]
fn mbus_classify(data: &Bound<'_, PyAny>) -> PyResult<(&'static str, usize)> {
    let data = convert::input(data)?;
    Ok(match master::classify(&data) {
        Ok((Received::Ack, n)) => ("ack", n),
        Ok((Received::Response, n)) => ("response", n),
        Ok((Received::Echo, n)) => ("echo", n),
        Ok((Received::Other, n)) => ("other", n),
        Err(e) if master::is_incomplete(&e.kind) => ("incomplete", 0),
        Err(_) => ("invalid", 0),
    })
}

fn long_frame(data: &[u8]) -> PyResult<Option<crate::mbus::LongFrame<'_>>> {
    match link::parse(data, 0).map_err(to_py)? {
        (Frame::Long(l), _) => Ok(Some(l)),
        _ => Ok(None),
    }
}

/// The secondary address in the header of a variable-data RSP_UD (CI 0x72).
#[pyfunction]
#[pyo3(signature = (frame, /))]
fn mbus_secondary_address(frame: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
    let data = convert::input(frame)?;
    Ok(long_frame(&data)?
        .and_then(|l| SecondaryAddress::of_response(&l))
        .map(|a| a.to_string()))
}

/// Whether a RSP_UD announces a further telegram (DIF 0x1F).
#[pyfunction]
#[pyo3(signature = (frame, /))]
fn mbus_more_records_follow(frame: &Bound<'_, PyAny>) -> PyResult<bool> {
    let data = convert::input(frame)?;
    Ok(long_frame(&data)?.is_some_and(|l| master::more_records_follow(&l)))
}

/// The libmbus response timeout at `baudrate`, in seconds.
#[pyfunction]
fn mbus_response_timeout(baudrate: u32) -> f64 {
    master::response_timeout(baudrate).as_secs_f64()
}

/// Adds the link class and the builders to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<MBusLink>()?;
    m.add_function(wrap_pyfunction!(mbus_snd_nke, m)?)?;
    m.add_function(wrap_pyfunction!(mbus_req_ud2, m)?)?;
    m.add_function(wrap_pyfunction!(mbus_application_reset, m)?)?;
    m.add_function(wrap_pyfunction!(mbus_select, m)?)?;
    m.add_function(wrap_pyfunction!(mbus_set_primary_address, m)?)?;
    m.add_function(wrap_pyfunction!(mbus_parse_secondary, m)?)?;
    m.add_function(wrap_pyfunction!(mbus_secondary_matches, m)?)?;
    m.add_function(wrap_pyfunction!(mbus_classify, m)?)?;
    m.add_function(wrap_pyfunction!(mbus_secondary_address, m)?)?;
    m.add_function(wrap_pyfunction!(mbus_more_records_follow, m)?)?;
    m.add_function(wrap_pyfunction!(mbus_response_timeout, m)?)?;
    Ok(())
}

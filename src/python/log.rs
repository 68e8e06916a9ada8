//! Logging from Rust on the `mbuspico` logger of Python's `logging` module.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

static LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Logs `message` on the `mbuspico` logger at `level` (`"debug"`, `"info"`,
/// `"warning"`, …). Logging never fails the caller: errors are ignored.
pub fn log(py: Python<'_>, level: &str, message: String) {
    let logger = LOGGER.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        Ok(py
            .import("logging")?
            .call_method1("getLogger", ("mbuspico",))?
            .unbind())
    });
    if let Ok(logger) = logger {
        let _ = logger.bind(py).call_method1(level, (message,));
    }
}

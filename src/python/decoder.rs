//! `mbuspico.Decoder`.

use pyo3::prelude::*;

use super::{convert, errors, reading};
use crate::dlms::{self, Keys};

/// Decodes telegrams with the keys of one meter. See `mbuspico/_core.pyi`.
#[pyclass(module = "mbuspico", name = "Decoder", frozen)]
pub struct Decoder {
    keys: Keys,
}

#[pymethods]
impl Decoder {
    #[new]
    #[pyo3(signature = (key = None, *, auth_key = None))]
    fn new(key: Option<&Bound<'_, PyAny>>, auth_key: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        Ok(Decoder {
            keys: Keys {
                key: key.map(|k| convert::key(k, "key")).transpose()?,
                auth_key: auth_key.map(|k| convert::key(k, "auth_key")).transpose()?,
            },
        })
    }

    /// Decodes one telegram into a dict (see the stub for its shape).
    #[pyo3(signature = (data, /))]
    fn decode<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let bytes = convert::input(data)?;
        let reading = dlms::decode(&bytes, &self.keys).map_err(errors::to_py)?;
        Ok(reading::to_dict(py, &reading)?.into_any())
    }

    /// Whether an encryption key is set.
    #[getter]
    fn has_key(&self) -> bool {
        self.keys.key.is_some()
    }

    /// Whether an authentication key is set.
    #[getter]
    fn has_auth_key(&self) -> bool {
        self.keys.auth_key.is_some()
    }

    fn __repr__(&self) -> String {
        let shown = |k: &Option<dlms::Key>| if k.is_some() { "<redacted>" } else { "None" };
        format!(
            "Decoder(key={}, auth_key={})",
            shown(&self.keys.key),
            shown(&self.keys.auth_key)
        )
    }
}

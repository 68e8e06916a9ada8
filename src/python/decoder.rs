//! `mbuspico.Decoder`.

use pyo3::prelude::*;

use super::{convert, errors, reading};
use crate::dlms::{self, Keys};

/// Decodes DLMS push telegrams with the keys of one meter.
///
/// Decoder(key=None, *, auth_key=None)
///
/// key: the meter's encryption key (GUEK) from the grid operator, 32 hex digits
/// or 16 bytes; auth_key: the authentication key (GAK), only for telegrams with a
/// GCM tag (security control 0x30). A malformed key raises ValueError without
/// repeating it; repr() shows keys as <redacted>.
///
/// Accepts the Austrian M-Bus push (Kaifa MA309M and Sagemcom T210-D of Netz NÖ,
/// the KSM-West operators), a bare general-glo-ciphering APDU (0xDB) or a plain
/// data-notification (0x0F). Sources: EN 13757-2, IEC 62056-7-6, IEC 62056-5-3,
/// DLMS UA Blue Book.
#[pyclass(module = "mbuspico", name = "Decoder", frozen)]
pub struct Decoder {
    keys: Keys,
    protocol: Option<crate::Protocol>,
}

#[pymethods]
impl Decoder {
    #[new]
    #[pyo3(signature = (key = None, *, auth_key = None, protocol = "auto"))]
    fn new(
        key: Option<&Bound<'_, PyAny>>,
        auth_key: Option<&Bound<'_, PyAny>>,
        protocol: &str,
    ) -> PyResult<Self> {
        let protocol = match protocol {
            "auto" => None,
            "dlms" => Some(crate::Protocol::Dlms),
            "mbus" => Some(crate::Protocol::Mbus),
            other => {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "protocol must be \"auto\", \"dlms\" or \"mbus\", not {other:?}"
                )))
            }
        };
        Ok(Decoder {
            keys: Keys {
                key: key.map(|k| convert::key(k, "key")).transpose()?,
                auth_key: auth_key.map(|k| convert::key(k, "auth_key")).transpose()?,
            },
            protocol,
        })
    }

    /// Decode one telegram (bytes, bytearray, memoryview or hex text) into a dict.
    ///
    /// Keys: protocol, timestamp (ISO 8601 with the meter's UTC offset),
    /// lxTimestamp, meterNumber, activePowerPlus/Minus (W),
    /// activeEnergyPlus/Minus (Wh), reactiveEnergyPlus/Minus (varh),
    /// voltageL1..3 (V), currentL1..3 (A), powerFactor (cos φ), systemTitle,
    /// frameCounter, and obis: {"A-B:C.D.E": {"value": ..., "unit": ...}}.
    /// Fields the meter does not send are None.
    ///
    /// Raises FrameError, ChecksumError, ApduError or DecryptionError (all
    /// mbuspico.DecodeError, a ValueError) with .offset, the byte of data where
    /// the problem was found, and .kind.
    #[pyo3(signature = (data, /))]
    fn decode<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let bytes = convert::input(data)?;
        match self.protocol.unwrap_or_else(|| crate::detect(&bytes)) {
            crate::Protocol::Dlms => {
                let r = dlms::decode(&bytes, &self.keys).map_err(errors::to_py)?;
                Ok(reading::to_dict(py, &r)?.into_any())
            }
            crate::Protocol::Mbus => {
                let r = crate::mbus::decode(&bytes).map_err(errors::to_py)?;
                Ok(reading::mbus_to_dict(py, &r)?.into_any())
            }
        }
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

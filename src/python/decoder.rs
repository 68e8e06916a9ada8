//! `mbuspico.Decoder`.

use pyo3::prelude::*;

use std::borrow::Cow;
use std::collections::HashMap;

use pyo3::exceptions::PyValueError;

use super::{convert, errors, reading};
use crate::dlms::offsets::OffsetMap;
use crate::dlms::{self, Key, Keys};
use crate::dsmr;
use crate::error::DecodeError;

/// The authentication key every Luxembourg Smarty meter uses (Smarty P1
/// specification v1.1.3 §3.4.1), tried for P1 frames when none is given.
const SMARTY_AUTH_KEY: [u8; 16] = [
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF,
];

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
    dsmr: dsmr::Options,
}

impl Decoder {
    /// The decrypted data-notification APDU of a DLMS telegram's bytes.
    pub(crate) fn apdu_bytes(&self, bytes: &[u8]) -> PyResult<Vec<u8>> {
        dlms::decrypt_apdu(bytes, &self.keys).map_err(errors::to_py)
    }

    /// Decodes one telegram's bytes into its dict (the body of `decode`).
    pub(crate) fn decode_bytes<'py>(
        &self,
        py: Python<'py>,
        bytes: &[u8],
    ) -> PyResult<Bound<'py, PyAny>> {
        let protocol = self.protocol.unwrap_or_else(|| crate::detect(bytes));
        if bytes.first() == Some(&dlms::security::TAG) && protocol != crate::Protocol::Mbus {
            if let Some(d) = self.encrypted_dsmr(py, bytes)? {
                return Ok(d);
            }
            if protocol == crate::Protocol::Dsmr {
                return Err(PyValueError::new_err(
                    "the decrypted frame holds no P1 telegram (it does not start with \"/\")",
                ));
            }
        }
        match protocol {
            crate::Protocol::Dsmr => {
                let r = dsmr::decode(bytes, &self.dsmr).map_err(errors::to_py)?;
                let d = reading::dsmr_to_dict(py, &r)?;
                d.set_item("systemTitle", py.None())?;
                d.set_item("frameCounter", py.None())?;
                Ok(d.into_any())
            }
            crate::Protocol::Dlms => {
                let r = dlms::decode(bytes, &self.keys).map_err(errors::to_py)?;
                Ok(reading::to_dict(py, &r)?.into_any())
            }
            crate::Protocol::Mbus => {
                let r = crate::mbus::decode(bytes).map_err(errors::to_py)?;
                Ok(reading::mbus_to_dict(py, &r)?.into_any())
            }
        }
    }

    /// A DSMR telegram inside a general-glo-ciphering frame (Luxembourg Smarty,
    /// Energienetze Steiermark): `Ok(Some(..))` when the plaintext is a P1
    /// telegram, `Ok(None)` when it is something else (a DLMS APDU).
    fn encrypted_dsmr<'py>(
        &self,
        py: Python<'py>,
        bytes: &[u8],
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let smarty;
        let keys = if self.keys.auth_key.is_none() {
            smarty = Keys {
                key: self.keys.key.clone(),
                auth_key: Some(Key::new(SMARTY_AUTH_KEY)),
            };
            &smarty
        } else {
            &self.keys
        };
        let map = OffsetMap::identity(0, bytes.len());
        let decrypted = match dlms::decrypt(Cow::Borrowed(bytes), &map, keys) {
            Ok(d) => d,
            // Without an authentication key, a tag that fails with the public
            // Smarty key may be a DLMS push: let the DLMS decoder report.
            Err(_)
                if self.keys.auth_key.is_none() && self.protocol != Some(crate::Protocol::Dsmr) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(errors::to_py(e)),
        };
        let plaintext = decrypted.plaintext();
        if plaintext.first() != Some(&b'/') {
            return Ok(None);
        }
        let base = decrypted.header.ciphertext_start;
        let r = dsmr::decode(plaintext, &self.dsmr)
            .map_err(|e| errors::to_py(DecodeError::new(e.kind, base + e.offset)))?;
        let d = reading::dsmr_to_dict(py, &r)?;
        d.set_item(
            "systemTitle",
            crate::hex::encode(&decrypted.header.system_title),
        )?;
        d.set_item("frameCounter", decrypted.header.frame_counter)?;
        Ok(Some(d.into_any()))
    }
}

#[pymethods]
impl Decoder {
    #[new]
    #[pyo3(signature = (key = None, *, auth_key = None, protocol = "auto", tz = "Europe/Amsterdam", names = None, verify_crc = true))]
    pub(crate) fn new(
        key: Option<&Bound<'_, PyAny>>,
        auth_key: Option<&Bound<'_, PyAny>>,
        protocol: &str,
        tz: &str,
        names: Option<HashMap<String, String>>,
        verify_crc: bool,
    ) -> PyResult<Self> {
        let protocol = match protocol {
            "auto" => None,
            "dlms" => Some(crate::Protocol::Dlms),
            "mbus" => Some(crate::Protocol::Mbus),
            "dsmr" => Some(crate::Protocol::Dsmr),
            other => {
                return Err(PyValueError::new_err(format!(
                    "protocol must be \"auto\", \"dlms\", \"mbus\" or \"dsmr\", not {other:?}"
                )))
            }
        };
        let tz = jiff::tz::TimeZone::get(tz).map_err(|_| {
            PyValueError::new_err(format!(
                "unknown time zone {tz:?}; give an IANA name such as \"Europe/Amsterdam\""
            ))
        })?;
        let dsmr = dsmr::Options {
            tz,
            names: names.unwrap_or_default(),
            verify_crc,
        };
        Ok(Decoder {
            keys: Keys {
                key: key.map(|k| convert::key(k, "key")).transpose()?,
                auth_key: auth_key.map(|k| convert::key(k, "auth_key")).transpose()?,
            },
            protocol,
            dsmr,
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
        self.decode_bytes(py, &bytes)
    }

    /// The decrypted APDU of a DLMS push telegram, as bytes.
    ///
    /// The data-notification (tag 0x0F) the general-glo-ciphering APDU (0xDB)
    /// carries, after the tag is verified (DLMS Green Book §9.3.5), or the
    /// APDU itself when the meter sends it in the clear: what "EVN raw" MQTT
    /// publishers send. Accepts what `decode` accepts.
    ///
    /// Raises the same errors as `decode` (FrameError, ChecksumError,
    /// ApduError, DecryptionError), with the byte offset.
    #[pyo3(signature = (data, /))]
    fn apdu<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
        let bytes = convert::input(data)?;
        Ok(pyo3::types::PyBytes::new(py, &self.apdu_bytes(&bytes)?))
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

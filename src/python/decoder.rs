//! `mbuspico.Decoder`.

use pyo3::prelude::*;
use pyo3::types::{PyIterator, PyList};

use std::borrow::Cow;

use pyo3::exceptions::PyValueError;

use super::{convert, errors, reading};
use crate::dlms::offsets::OffsetMap;
use crate::dlms::{self, Key, Keys};
use crate::dsmr;
use crate::error::DecodeError;
use crate::profile::{Profile, Security};

/// The authentication key every Luxembourg Smarty meter uses (Smarty P1
/// specification v1.1.3 §3.4.1), tried for P1 frames when none is given.
const SMARTY_AUTH_KEY: [u8; 16] = [
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF,
];

/// Decodes the telegrams of one meter: DLMS push, DSMR P1 or wired M-Bus.
///
/// Decoder(key=None, *, auth_key=None, protocol="auto", profile="auto",
///         tz=None, names=None, verify_crc=True, verify_tag=True,
///         verify_checksum=True)
///
/// key: the meter's encryption key (GUEK) from the grid operator, 32 hex digits
/// or 16 bytes; auth_key: the authentication key (GAK), for telegrams with a
/// GCM tag (security control 0x30); given one (or a profile whose meter tags
/// its telegrams), untagged telegrams are refused as possibly stripped
/// (DecryptionError, kind "missing_tag"). A malformed key raises ValueError
/// without repeating it; repr() shows keys as <redacted>.
///
/// profile: a meter profile name from mbuspico.profiles.PROFILES
/// ("kaifa-ma309m-netznoe", "wienernetze-im350", "burgenland-e450", …, or an
/// MBUSPICO_DEVICE value such as "KAIFA_MA309M_NETZNOE"): telegrams must then be
/// framed and laid out as that meter sends them (ProfileFraming/ProfileLayout
/// errors otherwise), its protocol and time zone are the defaults, and a
/// profile with tags needs auth_key. "auto" (the default) detects framing and
/// layout from the bytes; Decoder.identify() tells which profiles fit.
///
/// verify_tag=False decrypts tagged telegrams without checking the tag (and
/// without auth_key), for meters whose operator does not hand out the
/// authentication key; such readings are not authenticated.
/// tz: IANA zone of DSMR timestamps (default the profile's, else
/// Europe/Amsterdam); names: OBIS code to name overrides for DSMR;
/// verify_crc=False accepts DSMR telegrams with a wrong CRC.
/// verify_checksum=False accepts wired M-Bus frames (protocol "mbus") whose
/// 8-bit checksum (EN 13757-2 §5.4) does not match, e.g. a published dump
/// edited by hand; start bytes, L-fields and stop byte are still checked, and
/// DLMS pushes in M-Bus frames are always checked.
///
/// Decode text as well as bytes: a str is a hex dump (see decode) or, when it
/// starts with "/", a DSMR P1 telegram.
///
/// A Decoder is immutable: one may be used from many threads at once
/// (decode_many and decode_iter release the GIL while decoding). It pickles
/// (and copies) with its options and keys; the keys are held in an object
/// whose repr is masked, but the pickle's bytes contain them: treat a
/// pickled Decoder like the key itself.
///
/// Accepts M-Bus push frames (Netz NÖ, KSM-West), HDLC frames (Wiener Netze,
/// Kärnten, Burgenland, Landis+Gyr general block transfer), a bare
/// general-glo-ciphering APDU (0xDB, also with a DSMR telegram inside), a
/// plain data-notification (0x0F), DSMR P1 telegrams and wired M-Bus frames.
/// Sources: EN 13757-2/-3, IEC 62056-46, IEC 62056-7-6, IEC 62056-5-3, DLMS UA
/// Blue Book, DSMR P1 5.0.2.
#[pyclass(module = "mbuspico", name = "Decoder", frozen)]
pub struct Decoder {
    keys: Keys,
    protocol: Option<crate::Protocol>,
    profile: Option<&'static Profile>,
    dsmr: dsmr::Options,
    /// The IANA name of `dsmr.tz`, as given (for pickling).
    tz_name: String,
    /// Check the checksum of wired M-Bus frames.
    verify_checksum: bool,
}

/// Key bytes whose repr is masked: how a pickled Decoder carries its keys.
///
/// _Secret(key: bytes) takes the 16 key bytes; repr() shows `_Secret(<redacted>)`.
/// It pickles as its bytes: a pickle holding one must be kept like the key.
#[pyclass(module = "mbuspico._core", name = "_Secret", frozen)]
pub struct Secret(Key);

#[pymethods]
impl Secret {
    #[new]
    #[pyo3(signature = (key, /))]
    fn new(key: &Bound<'_, PyAny>) -> PyResult<Self> {
        convert::key(key, "key").map(Secret)
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, pyo3::types::PyTuple>> {
        let py = slf.py();
        let bytes = pyo3::types::PyBytes::new(py, slf.get().0.as_bytes());
        pyo3::types::PyTuple::new(
            py,
            [
                slf.get_type().into_any(),
                pyo3::types::PyTuple::new(py, [bytes])?.into_any(),
            ],
        )
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        // Every byte compared, whatever differs first (no timing hint).
        other.cast::<Secret>().is_ok_and(|o| {
            let (a, b) = (self.0.as_bytes(), o.get().0.as_bytes());
            a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
        })
    }

    fn __hash__(&self) -> u64 {
        // Equal secrets hash equal; the hash says nothing about the key.
        0
    }

    fn __repr__(&self) -> &'static str {
        "_Secret(<redacted>)"
    }
}

/// A key argument: a `_Secret` (unpickling), 32 hex digits or 16 bytes.
fn key_of(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Key> {
    match obj.cast::<Secret>() {
        Ok(s) => Ok(s.get().0.clone()),
        Err(_) => convert::key(obj, name),
    }
}

/// The meter profile called `name` (`"auto"`: none).
pub(crate) fn profile(name: &str) -> PyResult<Option<&'static Profile>> {
    if name == "auto" {
        return Ok(None);
    }
    crate::profile::find(name).map(Some).ok_or_else(|| {
        let names: Vec<&str> = crate::profile::PROFILES.iter().map(|p| p.name).collect();
        PyValueError::new_err(format!(
            "unknown meter profile {name:?}; one of \"auto\", {}",
            names.join(", ")
        ))
    })
}

/// The protocol of a `protocol=` argument, checked against the profile's.
pub(crate) fn protocol(name: &str, profile: Option<&Profile>) -> PyResult<Option<crate::Protocol>> {
    let protocol = match name {
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
    match (protocol, profile) {
        (Some(p), Some(prof)) if p != prof.protocol => Err(PyValueError::new_err(format!(
            "protocol {name:?} contradicts meter profile {:?}",
            prof.name
        ))),
        (None, Some(prof)) => Ok(Some(prof.protocol)),
        (p, _) => Ok(p),
    }
}

impl Decoder {
    /// The meter profile's name, if one is selected.
    #[cfg_attr(not(feature = "serial"), allow(dead_code))]
    pub(crate) fn profile_name(&self) -> Option<&'static str> {
        self.profile.map(|p| p.name)
    }

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
        match self.decode_core(bytes) {
            Ok(d) => to_py(py, &d),
            Err(f) => Err(f.into_py()),
        }
    }

    /// Decodes one telegram's bytes in Rust alone (no Python object is touched,
    /// so this runs with the GIL released).
    pub(crate) fn decode_core<'a>(&self, bytes: &'a [u8]) -> Result<Decoded<'a>, Failure> {
        if let Some(p) = self.profile {
            p.check_framing(bytes)?;
        }
        let protocol = self.protocol.unwrap_or_else(|| crate::detect(bytes));
        if bytes.first() == Some(&dlms::security::TAG) && protocol != crate::Protocol::Mbus {
            if let Some(d) = self.encrypted_dsmr(bytes)? {
                return Ok(d);
            }
            if protocol == crate::Protocol::Dsmr {
                return Err(Failure::NoP1Telegram);
            }
        }
        Ok(match protocol {
            crate::Protocol::Dsmr => Decoded::Dsmr {
                reading: dsmr::decode(bytes, &self.dsmr)?,
                system_title: None,
                frame_counter: None,
            },
            crate::Protocol::Dlms => {
                Decoded::Dlms(dlms::decode_as(bytes, &self.keys, self.profile)?)
            }
            crate::Protocol::Mbus => {
                Decoded::Mbus(crate::mbus::decode_with(bytes, self.verify_checksum)?)
            }
        })
    }

    /// A DSMR telegram inside a general-glo-ciphering frame (Luxembourg Smarty,
    /// Energienetze Steiermark): `Ok(Some(..))` when the plaintext is a P1
    /// telegram, `Ok(None)` when it is something else (a DLMS APDU).
    fn encrypted_dsmr(&self, bytes: &[u8]) -> Result<Option<Decoded<'static>>, Failure> {
        let smarty;
        let keys = if self.keys.auth_key.is_none() {
            smarty = Keys {
                key: self.keys.key.clone(),
                auth_key: Some(Key::new(SMARTY_AUTH_KEY)),
                skip_tag_check: self.keys.skip_tag_check,
                // Encrypted P1 frames are always tagged (Smarty P1 v1.1.3 §3.4).
                require_tag: true,
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
            Err(e) => return Err(e.into()),
        };
        let plaintext = decrypted.plaintext();
        if plaintext.first() != Some(&b'/') {
            return Ok(None);
        }
        let base = decrypted.header.ciphertext_start;
        let reading = dsmr::decode(plaintext, &self.dsmr)
            .map_err(|e| DecodeError::new(e.kind, base + e.offset))?;
        Ok(Some(Decoded::Dsmr {
            reading,
            system_title: Some(decrypted.header.system_title),
            frame_counter: Some(decrypted.header.frame_counter),
        }))
    }
}

/// A decoded telegram before it becomes a Python dict.
// Short-lived and moved once or twice; boxing the DLMS reading would add an
// allocation per telegram.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Decoded<'a> {
    /// A DLMS push.
    Dlms(dlms::Reading),
    /// A DSMR telegram, with the general-glo-ciphering header of an encrypted one.
    Dsmr {
        reading: dsmr::DsmrReading,
        system_title: Option<[u8; 8]>,
        frame_counter: Option<u32>,
    },
    /// A wired M-Bus telegram.
    Mbus(crate::mbus::reading::MbusReading<'a>),
}

/// Why a telegram did not decode.
pub(crate) enum Failure {
    /// A decoding error (a `mbuspico.DecodeError` subclass in Python).
    Decode(DecodeError),
    /// `protocol="dsmr"` and the decrypted frame is no P1 telegram (a ValueError).
    NoP1Telegram,
    /// The item was no telegram (not bytes-like, or a str that is not hex).
    Input(PyErr),
}

impl From<DecodeError> for Failure {
    fn from(e: DecodeError) -> Self {
        Failure::Decode(e)
    }
}

impl Failure {
    /// The Python exception.
    pub(crate) fn into_py(self) -> PyErr {
        match self {
            Failure::Decode(e) => errors::to_py(e),
            Failure::NoP1Telegram => PyValueError::new_err(
                "the decrypted frame holds no P1 telegram (it does not start with \"/\")",
            ),
            Failure::Input(e) => e,
        }
    }
}

/// What a batch does with a telegram that fails to decode.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnError {
    /// Put the exception in the result, in the telegram's place.
    Return,
    /// Leave the telegram out.
    Skip,
    /// Raise it (after the readings before it, in the iterator form).
    Raise,
}

impl OnError {
    fn parse(name: &str) -> PyResult<Self> {
        match name {
            "return" => Ok(OnError::Return),
            "skip" => Ok(OnError::Skip),
            "raise" => Ok(OnError::Raise),
            other => Err(PyValueError::new_err(format!(
                "errors must be \"return\", \"skip\" or \"raise\", not {other:?}"
            ))),
        }
    }
}

/// Decodes `items` (Python telegrams) with the GIL released for the decoding,
/// then converts the results, in order: readings, and failures as `on_error` says.
fn decode_batch<'py>(
    decoder: &Decoder,
    py: Python<'py>,
    items: &[Bound<'py, PyAny>],
    on_error: OnError,
) -> Vec<PyResult<Bound<'py, PyAny>>> {
    let (inputs, bad) = convert::inputs(items);
    // Items that were no telegram are not decoded (None here, their error below).
    let decoded: Vec<Option<Result<Decoded<'_>, Failure>>> = py.detach(|| {
        inputs
            .iter()
            .zip(&bad)
            .map(|(bytes, e)| e.is_none().then(|| decoder.decode_core(bytes)))
            .collect()
    });
    let mut out = Vec::with_capacity(decoded.len());
    for (result, input_error) in decoded.into_iter().zip(bad) {
        let result = match (result, input_error) {
            (Some(r), _) => r,
            (None, Some(e)) => Err(Failure::Input(e)),
            (None, None) => continue,
        };
        match result {
            Ok(d) => out.push(to_py(py, &d)),
            Err(f) => match on_error {
                OnError::Skip => {}
                OnError::Return => {
                    out.push(Ok(f.into_py().into_value(py).into_bound(py).into_any()))
                }
                OnError::Raise => {
                    out.push(Err(f.into_py()));
                    break;
                }
            },
        }
    }
    out
}

/// Readings of telegrams taken from an iterable in batches; see `Decoder.decode_iter`.
#[pyclass(module = "mbuspico", name = "DecodeIter")]
pub struct DecodeIter {
    decoder: Py<Decoder>,
    source: Py<PyIterator>,
    batch: usize,
    on_error: OnError,
    ready: std::collections::VecDeque<PyResult<Py<PyAny>>>,
    done: bool,
}

#[pymethods]
impl DecodeIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        while self.ready.is_empty() && !self.done {
            let source = self.source.bind(py);
            let mut items = Vec::with_capacity(self.batch);
            while items.len() < self.batch {
                match source.clone().next() {
                    Some(item) => items.push(item?),
                    None => {
                        self.done = true;
                        break;
                    }
                }
            }
            let decoder = self.decoder.bind(py).get();
            for r in decode_batch(decoder, py, &items, self.on_error) {
                let stop = r.is_err();
                self.ready.push_back(r.map(Bound::unbind));
                if stop {
                    self.done = true;
                }
            }
        }
        match self.ready.pop_front() {
            Some(r) => r.map(Some),
            None => Ok(None),
        }
    }
}

/// The dict of a decoded telegram.
pub(crate) fn to_py<'py>(py: Python<'py>, d: &Decoded<'_>) -> PyResult<Bound<'py, PyAny>> {
    match d {
        Decoded::Dlms(r) => Ok(reading::to_dict(py, r)?.into_any()),
        Decoded::Mbus(r) => Ok(reading::mbus_to_dict(py, r)?.into_any()),
        Decoded::Dsmr {
            reading: r,
            system_title,
            frame_counter,
        } => {
            let d = reading::dsmr_to_dict(py, r)?;
            d.set_item(
                pyo3::intern!(py, "systemTitle"),
                system_title.map(|t| crate::hex::encode(&t)),
            )?;
            d.set_item(pyo3::intern!(py, "frameCounter"), *frame_counter)?;
            Ok(d.into_any())
        }
    }
}

/// A profile whose telegrams carry a GCM tag needs the authentication key,
/// unless tag checking is off.
pub(crate) fn check_keys(profile: &Profile, keys: &Keys) -> PyResult<()> {
    if profile.security == Security::Authenticated
        && keys.auth_key.is_none()
        && !keys.skip_tag_check
    {
        return Err(PyValueError::new_err(format!(
            "meter profile {:?} sends authenticated telegrams (security control 0x30): \
             give auth_key, or verify_tag=False to decrypt without checking the tag",
            profile.name
        )));
    }
    Ok(())
}

impl Decoder {
    /// A decoder that checks M-Bus checksums (what `SerialReader` uses).
    #[allow(clippy::too_many_arguments)]
    #[cfg_attr(not(feature = "serial"), allow(dead_code))]
    pub(crate) fn new(
        key: Option<&Bound<'_, PyAny>>,
        auth_key: Option<&Bound<'_, PyAny>>,
        protocol: &str,
        profile: &str,
        tz: Option<&str>,
        names: Option<&Bound<'_, PyAny>>,
        verify_crc: bool,
        verify_tag: bool,
    ) -> PyResult<Self> {
        Self::py_new(
            key, auth_key, protocol, profile, tz, names, verify_crc, verify_tag, true,
        )
    }

    /// The name of the protocol setting (`"auto"` when detected per telegram).
    fn protocol_name(&self) -> &'static str {
        match self.protocol {
            None => "auto",
            Some(crate::Protocol::Dlms) => "dlms",
            Some(crate::Protocol::Mbus) => "mbus",
            Some(crate::Protocol::Dsmr) => "dsmr",
        }
    }
}

#[pymethods]
impl Decoder {
    #[new]
    #[pyo3(signature = (key = None, *, auth_key = None, protocol = "auto", profile = "auto", tz = None, names = None, verify_crc = true, verify_tag = true, verify_checksum = true))]
    #[allow(clippy::too_many_arguments)]
    fn py_new(
        key: Option<&Bound<'_, PyAny>>,
        auth_key: Option<&Bound<'_, PyAny>>,
        protocol: &str,
        profile: &str,
        tz: Option<&str>,
        names: Option<&Bound<'_, PyAny>>,
        verify_crc: bool,
        verify_tag: bool,
        verify_checksum: bool,
    ) -> PyResult<Self> {
        let profile = self::profile(profile)?;
        let protocol = self::protocol(protocol, profile)?;
        let tz = tz.unwrap_or(profile.map_or("Europe/Amsterdam", |p| p.tz));
        let tz_name = tz.to_owned();
        let tz = jiff::tz::TimeZone::get(tz).map_err(|_| {
            PyValueError::new_err(format!(
                "unknown time zone {tz:?}; give an IANA name such as \"Europe/Amsterdam\""
            ))
        })?;
        let names = names.map(name_table).transpose()?.unwrap_or_default();
        let dsmr = dsmr::Options {
            tz,
            names,
            verify_crc,
        };
        let auth_key = auth_key.map(|k| key_of(k, "auth_key")).transpose()?;
        // A meter given an authentication key, or one whose profile tags every
        // telegram, must not be accepted without a tag (a stripped tag).
        let tagged = profile
            .is_some_and(|p| matches!(p.security, Security::Authenticated | Security::PublicTag));
        let keys = Keys {
            key: key.map(|k| key_of(k, "key")).transpose()?,
            require_tag: verify_tag && (auth_key.is_some() || tagged),
            auth_key,
            skip_tag_check: !verify_tag,
        };
        if let Some(p) = profile {
            check_keys(p, &keys)?;
        }
        Ok(Decoder {
            keys,
            protocol,
            profile,
            dsmr,
            tz_name,
            verify_checksum,
        })
    }

    /// Pickle support: `(Decoder._restore, (options,))`, the keys as `_Secret`
    /// objects (masked repr; the pickle's bytes hold the keys).
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, pyo3::types::PyTuple>> {
        let py = slf.py();
        let this = slf.get();
        let state = pyo3::types::PyDict::new(py);
        let secret = |k: &Option<Key>| -> PyResult<Option<Bound<'py, Secret>>> {
            k.as_ref()
                .map(|k| Bound::new(py, Secret(k.clone())))
                .transpose()
        };
        state.set_item("key", secret(&this.keys.key)?)?;
        state.set_item("auth_key", secret(&this.keys.auth_key)?)?;
        state.set_item("protocol", this.protocol_name())?;
        state.set_item("profile", this.profile.map_or("auto", |p| p.name))?;
        state.set_item("tz", &this.tz_name)?;
        let names = pyo3::types::PyDict::new(py);
        for (code, name) in this.dsmr.names.entries() {
            names.set_item(code, name)?;
        }
        state.set_item("names", names)?;
        state.set_item("verify_crc", this.dsmr.verify_crc)?;
        state.set_item("verify_tag", !this.keys.skip_tag_check)?;
        state.set_item("verify_checksum", this.verify_checksum)?;
        let restore = slf.get_type().getattr("_restore")?;
        pyo3::types::PyTuple::new(
            py,
            [
                restore.into_any(),
                pyo3::types::PyTuple::new(py, [state])?.into_any(),
            ],
        )
    }

    /// A decoder from the options `__reduce__` gave (unpickling).
    #[classmethod]
    #[pyo3(signature = (state, /))]
    fn _restore<'py>(
        cls: &Bound<'py, pyo3::types::PyType>,
        state: &Bound<'py, pyo3::types::PyDict>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let kwargs = state.copy()?;
        let key = kwargs.get_item("key")?;
        if key.is_some() {
            kwargs.del_item("key")?;
        }
        cls.call((key,), Some(&kwargs))
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

    /// Decode many telegrams in one call, the GIL released while decoding.
    ///
    /// items: an iterable of telegrams (what decode accepts). Returns a list
    /// in the same order: the reading of each telegram; for one that does not
    /// decode, with errors="return" (default) the exception instance
    /// (DecodeError or TypeError) in its place, with errors="skip" nothing,
    /// with errors="raise" the exception is raised. For captures of millions
    /// of telegrams use decode_iter, which holds only one batch at a time.
    #[pyo3(signature = (items, /, *, errors = "return"))]
    fn decode_many<'py>(
        &self,
        py: Python<'py>,
        items: &Bound<'py, PyAny>,
        errors: &str,
    ) -> PyResult<Bound<'py, PyList>> {
        let on_error = OnError::parse(errors)?;
        let items: Vec<Bound<'py, PyAny>> = items.try_iter()?.collect::<PyResult<_>>()?;
        let list = PyList::empty(py);
        for r in decode_batch(self, py, &items, on_error) {
            list.append(r?)?;
        }
        Ok(list)
    }

    /// An iterator of readings over an iterable of telegrams (lazy: it takes
    /// `batch` telegrams at a time, decodes them with the GIL released, and
    /// yields their readings). errors as for decode_many; with errors="raise"
    /// the readings before the failing telegram are yielded first.
    #[pyo3(signature = (items, /, *, errors = "return", batch = 1024))]
    fn decode_iter(
        slf: &Bound<'_, Self>,
        items: &Bound<'_, PyAny>,
        errors: &str,
        batch: usize,
    ) -> PyResult<DecodeIter> {
        if batch == 0 {
            return Err(PyValueError::new_err("batch must be at least 1"));
        }
        Ok(DecodeIter {
            decoder: slf.clone().unbind(),
            source: items.try_iter()?.unbind(),
            batch,
            on_error: OnError::parse(errors)?,
            ready: std::collections::VecDeque::new(),
            done: false,
        })
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

    /// The meter profile's name, or None when decoding whatever comes ("auto").
    #[getter]
    fn profile(&self) -> Option<&'static str> {
        self.profile.map(|p| p.name)
    }

    /// Whether GCM tags are verified (False only with verify_tag=False).
    #[getter]
    fn verify_tag(&self) -> bool {
        !self.keys.skip_tag_check
    }

    /// Whether wired M-Bus frame checksums are verified (False only with
    /// verify_checksum=False).
    #[getter]
    fn verify_checksum(&self) -> bool {
        self.verify_checksum
    }

    /// What a telegram is: {"protocol", "framing", "layout", "profiles"}.
    ///
    /// protocol: "dlms", "dsmr" or "mbus"; framing: "mbus", "hdlc",
    /// "hdlc+gbt", "p1", "p1-encrypted" or "apdu"; layout (DLMS only, else
    /// None): "obis-flat", "obis-nested", "wienernetze", "burgenland",
    /// "object-list"; profiles: the names of the meter profiles that send
    /// telegrams like it (what profile="auto" found). Decodes the telegram to
    /// learn its layout, so it needs the keys and raises what decode raises.
    #[pyo3(signature = (data, /))]
    fn identify<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        let bytes = convert::input(data)?;
        let first = bytes.first().copied();
        let framing = match first {
            Some(crate::mbus::frame::START) => "mbus",
            Some(dlms::hdlc::FLAG) => {
                let gbt = dlms::hdlc::reassemble(&bytes)
                    .ok()
                    .is_some_and(|r| r.apdu.first() == Some(&dlms::hdlc::GENERAL_BLOCK_TRANSFER));
                if gbt {
                    "hdlc+gbt"
                } else {
                    "hdlc"
                }
            }
            Some(b'/') => "p1",
            _ => "apdu",
        };
        let mut framing = framing;
        let mut layout = None;
        let protocol = match self.decode_core(&bytes).map_err(Failure::into_py)? {
            Decoded::Dlms(r) => {
                layout = Some(r.layout);
                "dlms"
            }
            Decoded::Dsmr { system_title, .. } => {
                if system_title.is_some() {
                    framing = "p1-encrypted";
                }
                "dsmr"
            }
            Decoded::Mbus(_) => "mbus",
        };
        let profiles: Vec<&str> = crate::profile::PROFILES
            .iter()
            .filter(|p| {
                let same_framing = p.framing.name() == framing
                    || (framing == "apdu" && p.framing.accepts(first.unwrap_or(0)));
                let same_protocol = match p.protocol {
                    crate::Protocol::Dlms => protocol == "dlms",
                    crate::Protocol::Dsmr => protocol == "dsmr",
                    crate::Protocol::Mbus => protocol == "mbus",
                };
                same_protocol && same_framing && (layout.is_none() || p.layout == layout)
            })
            .map(|p| p.name)
            .collect();
        let d = pyo3::types::PyDict::new(py);
        d.set_item("protocol", protocol)?;
        d.set_item("framing", framing)?;
        d.set_item("layout", layout.map(|l| l.name()))?;
        d.set_item("profiles", profiles)?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        let shown = |k: &Option<dlms::Key>| if k.is_some() { "<redacted>" } else { "None" };
        let profile = self
            .profile
            .map(|p| format!(", profile={:?}", p.name))
            .unwrap_or_default();
        let tag = if self.keys.skip_tag_check {
            ", verify_tag=False"
        } else {
            ""
        };
        let checksum = if self.verify_checksum {
            ""
        } else {
            ", verify_checksum=False"
        };
        format!(
            "Decoder(key={}, auth_key={}{profile}{tag}{checksum})",
            shown(&self.keys.key),
            shown(&self.keys.auth_key)
        )
    }
}

/// The bytes of a hex dump, as `Decoder.decode` reads a str that does not
/// start with "/".
///
/// Accepts contiguous digits or pairs separated by whitespace, ":", "/", "-"
/// or ",", with or without "0x" prefixes, and otb-iot's serial-over-MQTT status
/// messages ("ok:68/4d/.../xx", several in order). Raises HexError (kind
/// "invalid_hex" or "odd_hex_digits") whose offset is the character position.
#[pyfunction]
#[pyo3(signature = (text, /))]
pub(crate) fn parse_hex<'py>(
    py: Python<'py>,
    text: &str,
) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
    crate::hexdump::parse(text)
        .map(|b| pyo3::types::PyBytes::new(py, &b))
        .map_err(errors::to_py)
}

/// The code table of `Decoder(names=...)`: a mapping (in its order) or a
/// sequence of (code or pattern, name) pairs.
fn name_table(obj: &Bound<'_, PyAny>) -> PyResult<dsmr::names::Names> {
    let pairs: Vec<(String, String)> = if let Ok(map) = obj.cast::<pyo3::types::PyDict>() {
        map.iter()
            .map(|(k, v)| Ok((k.extract()?, v.extract()?)))
            .collect::<PyResult<_>>()?
    } else {
        obj.try_iter()?
            .map(|item| item?.extract::<(String, String)>())
            .collect::<PyResult<_>>()?
    };
    dsmr::names::Names::new(pairs).map_err(|e| PyValueError::new_err(e.to_string()))
}

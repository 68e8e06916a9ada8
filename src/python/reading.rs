//! `Reading` → `dict`, written by hand for speed.
//!
//! pythonize would create every key string anew on each decode; here the field
//! names are interned once, and OBIS-code keys and unit symbols are cached, so a
//! decode builds only the values. The shape is the serde one (`Reading`'s
//! `Serialize`), which `tests/test_dlms.py` checks through the public API.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyString};
use pyo3::{intern, IntoPyObjectExt};

use crate::dlms::obis::{unit_symbol, Obis};
use crate::dlms::reading::{Reading, Value};
use crate::hex;

pub use super::mbus_reading::mbus_to_dict;

/// Most OBIS codes kept as ready-made key strings; beyond that keys are made per call.
const OBIS_CACHE_LIMIT: usize = 4096;

/// OBIS codes are six bytes: hash them as one integer (SipHash showed in profiles).
#[derive(Default)]
struct ObisHasher(u64);

impl Hasher for ObisHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type KeyCache = HashMap<Obis, Py<PyString>, BuildHasherDefault<ObisHasher>>;

static UNITS: PyOnceLock<Vec<Option<Py<PyString>>>> = PyOnceLock::new();
static OBIS_KEYS: PyOnceLock<Mutex<KeyCache>> = PyOnceLock::new();

fn unit<'py>(py: Python<'py>, code: u8) -> Bound<'py, PyAny> {
    let units = UNITS.get_or_init(py, || {
        (0..=255u8)
            .map(|c| unit_symbol(c).map(|s| PyString::intern(py, s).unbind()))
            .collect()
    });
    match units.get(usize::from(code)) {
        Some(Some(s)) => s.bind(py).clone().into_any(),
        _ => py.None().into_bound(py),
    }
}

/// The key string of `code`, from (and into) the cache when it is at hand.
fn obis_key<'py>(
    py: Python<'py>,
    cache: Option<&mut KeyCache>,
    code: &Obis,
) -> Bound<'py, PyString> {
    let Some(map) = cache else {
        return PyString::new(py, &code.to_string());
    };
    if let Some(s) = map.get(code) {
        return s.bind(py).clone();
    }
    let s = PyString::new(py, &code.to_string());
    if map.len() < OBIS_CACHE_LIMIT {
        map.insert(*code, s.clone().unbind());
    }
    s
}

fn value<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    match v {
        Value::Int(i) => i.into_bound_py_any(py),
        Value::UInt(u) => u.into_bound_py_any(py),
        Value::Float(f) => f.into_bound_py_any(py),
        Value::Bool(b) => b.into_bound_py_any(py),
        Value::Text(s) => s.into_bound_py_any(py),
        Value::List(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(value(py, item)?)?;
            }
            Ok(list.into_any())
        }
        Value::Null => Ok(py.None().into_bound(py)),
    }
}

fn optional<'py>(py: Python<'py>, v: &Option<Value>) -> PyResult<Bound<'py, PyAny>> {
    match v {
        Some(v) => value(py, v),
        None => Ok(py.None().into_bound(py)),
    }
}

type StrCache = HashMap<(usize, usize), Py<PyString>, BuildHasherDefault<ObisHasher>>;

static STATIC_STRS: PyOnceLock<Mutex<StrCache>> = PyOnceLock::new();

/// A name or unit as a Python string: the table's `&'static str`s are made
/// once and reused from `cache` (their address is their identity), others
/// each time.
fn table_str<'py>(
    py: Python<'py>,
    cache: Option<&mut StrCache>,
    s: Option<&std::borrow::Cow<'static, str>>,
) -> Bound<'py, PyAny> {
    match (s, cache) {
        (None, _) => py.None().into_bound(py),
        (Some(std::borrow::Cow::Borrowed(s)), Some(map)) => map
            .entry((s.as_ptr() as usize, s.len()))
            .or_insert_with(|| PyString::intern(py, s).unbind())
            .bind(py)
            .clone()
            .into_any(),
        (Some(s), _) => PyString::new(py, s).into_any(),
    }
}

/// MBusPico's value field names, interned, in the order of `Reading`'s fields
/// and of `MbusPicoFields::values`.
fn field_keys(py: Python<'_>) -> [&Bound<'_, PyString>; 13] {
    [
        intern!(py, "activePowerPlus"),
        intern!(py, "activePowerMinus"),
        intern!(py, "activeEnergyPlus"),
        intern!(py, "activeEnergyMinus"),
        intern!(py, "reactiveEnergyPlus"),
        intern!(py, "reactiveEnergyMinus"),
        intern!(py, "voltageL1"),
        intern!(py, "voltageL2"),
        intern!(py, "voltageL3"),
        intern!(py, "currentL1"),
        intern!(py, "currentL2"),
        intern!(py, "currentL3"),
        intern!(py, "powerFactor"),
    ]
}

/// The dict of a reading; keys as in `mbuspico.types.Reading`.
pub fn to_dict<'py>(py: Python<'py>, r: &Reading) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item(intern!(py, "protocol"), intern!(py, "dlms"))?;
    d.set_item(intern!(py, "timestamp"), r.timestamp.as_deref())?;
    d.set_item(intern!(py, "lxTimestamp"), r.lx_timestamp)?;
    d.set_item(intern!(py, "meterNumber"), r.meter_number.as_deref())?;
    let values = [
        &r.active_power_plus,
        &r.active_power_minus,
        &r.active_energy_plus,
        &r.active_energy_minus,
        &r.reactive_energy_plus,
        &r.reactive_energy_minus,
        &r.voltage_l1,
        &r.voltage_l2,
        &r.voltage_l3,
        &r.current_l1,
        &r.current_l2,
        &r.current_l3,
        &r.power_factor,
    ];
    for (key, v) in field_keys(py).into_iter().zip(values) {
        d.set_item(key, optional(py, v)?)?;
    }
    d.set_item(
        intern!(py, "systemTitle"),
        r.system_title.as_ref().map(|t| hex::encode(t)),
    )?;
    d.set_item(intern!(py, "frameCounter"), r.frame_counter)?;
    let obis = PyDict::new(py);
    let (k_value, k_unit) = (intern!(py, "value"), intern!(py, "unit"));
    // One lock per reading; the GIL is held throughout, so it is never contended.
    let cache = OBIS_KEYS.get_or_init(py, || Mutex::new(KeyCache::default()));
    let mut guard = cache.lock().ok();
    for (code, v) in &r.obis.0 {
        let entry = PyDict::new(py);
        entry.set_item(k_value, value(py, &v.value)?)?;
        entry.set_item(k_unit, unit(py, v.unit_code))?;
        obis.set_item(obis_key(py, guard.as_deref_mut(), code), entry)?;
    }
    drop(guard);
    d.set_item(intern!(py, "obis"), obis)?;
    Ok(d)
}

/// The dict of a DSMR reading; keys as in `mbuspico.types.DsmrReading`
/// (`systemTitle` and `frameCounter` are added by the caller).
pub fn dsmr_to_dict<'py>(
    py: Python<'py>,
    r: &crate::dsmr::DsmrReading,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item(intern!(py, "protocol"), intern!(py, "dsmr"))?;
    d.set_item(intern!(py, "header"), &r.header)?;
    d.set_item(intern!(py, "crc"), r.crc)?;
    d.set_item(
        intern!(py, "lineEndings"),
        if r.lf_only {
            intern!(py, "lf")
        } else {
            intern!(py, "crlf")
        },
    )?;
    d.set_item(intern!(py, "timestamp"), r.timestamp.as_deref())?;
    let fields = r.mbuspico_fields();
    d.set_item(intern!(py, "lxTimestamp"), fields.lx_timestamp)?;
    d.set_item(intern!(py, "meterNumber"), fields.meter_number.as_deref())?;
    for (key, (_, v)) in field_keys(py).into_iter().zip(&fields.values) {
        d.set_item(key, optional(py, v)?)?;
    }
    let obis = PyDict::new(py);
    let keys = (
        intern!(py, "value"),
        intern!(py, "unit"),
        intern!(py, "name"),
        intern!(py, "timestamp"),
    );
    // One lock per cache and reading; the GIL is held, so they are never contended.
    let cache = OBIS_KEYS.get_or_init(py, || Mutex::new(KeyCache::default()));
    let mut guard = cache.lock().ok();
    let strs = STATIC_STRS.get_or_init(py, || Mutex::new(StrCache::default()));
    let mut strs = strs.lock().ok();
    for (code, v) in &r.obis {
        let e = PyDict::new(py);
        e.set_item(keys.0, value(py, &v.value)?)?;
        e.set_item(keys.1, table_str(py, strs.as_deref_mut(), v.unit.as_ref()))?;
        e.set_item(keys.2, table_str(py, strs.as_deref_mut(), v.name.as_ref()))?;
        e.set_item(keys.3, v.timestamp.as_deref())?;
        obis.set_item(obis_key(py, guard.as_deref_mut(), &code.obis()), e)?;
    }
    drop((guard, strs));
    d.set_item(intern!(py, "obis"), obis)?;
    let mbus = PyDict::new(py);
    for (channel, dev) in &r.mbus {
        let e = PyDict::new(py);
        e.set_item(intern!(py, "deviceType"), dev.device_type)?;
        e.set_item(intern!(py, "equipmentId"), dev.equipment_id.as_deref())?;
        e.set_item(keys.0, optional(py, &dev.value)?)?;
        e.set_item(keys.1, dev.unit.as_deref())?;
        e.set_item(keys.3, dev.timestamp.as_deref())?;
        e.set_item(intern!(py, "valvePosition"), dev.valve_position)?;
        mbus.set_item(channel.to_string(), e)?;
    }
    d.set_item(intern!(py, "mbus"), mbus)?;
    d.set_item(intern!(py, "unknownLines"), &r.unknown_lines)?;
    Ok(d)
}

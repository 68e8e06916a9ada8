//! `Reading` → `dict`, written by hand for speed.
//!
//! pythonize would create every key string anew on each decode; here every
//! dict is a copy of a template that already holds its keys (interned, in
//! order) and its constant fields: CPython copies a small dict by cloning its
//! key table, so a dict costs one allocation and a `SetItem` on an existing key
//! per value it carries, never a resize. A meter sends the same layout telegram
//! after telegram (the same codes, units and names in the same order), so the
//! `obis` dict is a copy of its layout's template (every key, values None) and
//! each entry a copy of its template (unit and name set) with the values set;
//! the first telegram of a layout makes the templates. The templates are taken
//! with `try_lock`: a decode that finds them in use (a finalizer decoding
//! again on this thread) builds its dicts key by key. The shapes are the serde
//! ones (`Reading`'s `Serialize`), which `tests/test_dlms.py` and
//! `tests/test_dsmr.py` check through the public API.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyString};
use pyo3::{intern, IntoPyObjectExt};

use crate::dlms::obis::{unit_symbol, Obis};
use crate::dlms::reading::Reading;
use crate::hex;
use crate::value::Value;

pub use super::mbus_reading::mbus_to_dict;

/// Most telegram layouts kept (each with a dict per entry); when full they
/// are all dropped.
const LAYOUT_LIMIT: usize = 64;

/// Keys are a few machine words (packed OBIS codes, addresses): one multiply
/// per word (SipHash showed in profiles).
#[derive(Default)]
struct WordHasher(u64);

impl WordHasher {
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(29) ^ w).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

impl Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.add(u64::from(*b));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type WordMap<K, V> = HashMap<K, V, BuildHasherDefault<WordHasher>>;

/// An OBIS code as one word (A in the lowest byte).
fn pack(code: &Obis) -> u64 {
    let [a, b, c, d, e, f] = code.0;
    u64::from_le_bytes([a, b, c, d, e, f, 0, 0])
}

/// The address and length of a table text (the core's `&'static str`s are
/// found again by address); `(0, 0)` for none.
fn text_key(t: Option<&'static str>) -> (usize, usize) {
    t.map_or((0, 0), |t| (t.as_ptr() as usize, t.len()))
}

/// The Python objects that never change: dict templates of fixed shape and
/// the DLMS unit symbols.
struct Fixed {
    /// A DLMS reading: every key in order, `protocol` `"dlms"`, the rest None.
    dlms_reading: Py<PyDict>,
    /// A DLMS `obis` entry: `value`, `unit`, both None.
    dlms_entry: Py<PyDict>,
    /// A P1 reading: every key in order (without `systemTitle` and
    /// `frameCounter`, which the caller adds), `protocol` `"dsmr"`, `crc`
    /// `"ok"`, `lineEndings` `"crlf"`, the rest None.
    dsmr_reading: Py<PyDict>,
    /// A P1 `obis` entry: `value`, `unit`, `name`, `timestamp`, all None.
    dsmr_entry: Py<PyDict>,
    /// A P1 M-Bus device: `deviceType`, `equipmentId`, `value`, `unit`,
    /// `timestamp`, `valvePosition`, all None.
    mbus_device: Py<PyDict>,
    /// The COSEM unit symbols by unit code, interned.
    units: Vec<Option<Py<PyString>>>,
}

/// MBusPico's value field names, in the order of `Reading`'s fields and of
/// `MbusPicoFields::values`.
const FIELDS: [&str; 13] = [
    "activePowerPlus",
    "activePowerMinus",
    "activeEnergyPlus",
    "activeEnergyMinus",
    "reactiveEnergyPlus",
    "reactiveEnergyMinus",
    "voltageL1",
    "voltageL2",
    "voltageL3",
    "currentL1",
    "currentL2",
    "currentL3",
    "powerFactor",
];

/// A dict with `keys` in order, each None.
fn template<'py>(py: Python<'py>, keys: &[&str]) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for key in keys {
        d.set_item(PyString::intern(py, key), py.None())?;
    }
    Ok(d)
}

static FIXED: PyOnceLock<Fixed> = PyOnceLock::new();

fn fixed(py: Python<'_>) -> PyResult<&Fixed> {
    FIXED.get_or_try_init(py, || {
        let mut dlms = vec!["protocol", "timestamp", "lxTimestamp", "meterNumber"];
        dlms.extend(FIELDS);
        dlms.extend(["systemTitle", "frameCounter", "obis"]);
        let dlms_reading = template(py, &dlms)?;
        dlms_reading.set_item(intern!(py, "protocol"), intern!(py, "dlms"))?;
        let mut dsmr = vec![
            "protocol",
            "header",
            "crc",
            "lineEndings",
            "timestamp",
            "lxTimestamp",
            "meterNumber",
        ];
        dsmr.extend(FIELDS);
        dsmr.extend(["obis", "mbus", "unknownLines"]);
        let dsmr_reading = template(py, &dsmr)?;
        dsmr_reading.set_item(intern!(py, "protocol"), intern!(py, "dsmr"))?;
        dsmr_reading.set_item(intern!(py, "crc"), intern!(py, "ok"))?;
        dsmr_reading.set_item(intern!(py, "lineEndings"), intern!(py, "crlf"))?;
        let mbus_device = template(
            py,
            &[
                "deviceType",
                "equipmentId",
                "value",
                "unit",
                "timestamp",
                "valvePosition",
            ],
        )?;
        Ok::<_, PyErr>(Fixed {
            dlms_reading: dlms_reading.unbind(),
            dlms_entry: template(py, &["value", "unit"])?.unbind(),
            dsmr_reading: dsmr_reading.unbind(),
            dsmr_entry: template(py, &["value", "unit", "name", "timestamp"])?.unbind(),
            mbus_device: mbus_device.unbind(),
            units: (0..=255u8)
                .map(|c| unit_symbol(c).map(|s| PyString::intern(py, s).unbind()))
                .collect(),
        })
    })
}

impl Fixed {
    /// The interned symbol of a COSEM unit code (None for none).
    fn unit<'py>(&self, py: Python<'py>, code: u8) -> Bound<'py, PyAny> {
        match self.units.get(usize::from(code)) {
            Some(Some(s)) => s.bind(py).clone().into_any(),
            _ => py.None().into_bound(py),
        }
    }
}

/// An `obis` entry's key string and its template.
struct Entry {
    key: Py<PyString>,
    template: Py<PyDict>,
}

/// A unit or name text as a layout remembers it: a static text (one of the
/// core's tables) by address, any other by content.
#[derive(PartialEq, Eq)]
enum Text {
    None,
    Static(usize, usize),
    Owned(Box<str>),
}

impl Text {
    fn of(t: Option<&Cow<'static, str>>) -> Text {
        match t {
            None => Text::None,
            Some(Cow::Borrowed(s)) => Text::Static(s.as_ptr() as usize, s.len()),
            Some(Cow::Owned(s)) => Text::Owned(s.as_str().into()),
        }
    }

    /// Whether `t` is this text.
    fn is(&self, t: Option<&Cow<'static, str>>) -> bool {
        match (self, t) {
            (Text::None, None) => true,
            (Text::Static(p, l), Some(Cow::Borrowed(s))) => {
                (s.as_ptr() as usize, s.len()) == (*p, *l)
            }
            (Text::Owned(a), Some(Cow::Owned(b))) => **a == **b,
            _ => false,
        }
    }
}

/// What an `obis` entry's template depends on: its code (packed; for DLMS
/// with the unit code in the top byte), its unit and its name.
#[derive(Clone, Copy)]
struct View<'a> {
    code: u64,
    unit: Option<&'a Cow<'static, str>>,
    name: Option<&'a Cow<'static, str>>,
}

impl View<'_> {
    /// The view's words for the layout hash.
    fn hash_into(&self, h: &mut WordHasher) {
        h.add(self.code);
        for t in [self.unit, self.name] {
            match t {
                None => h.add(0),
                Some(Cow::Borrowed(s)) => h.add(s.as_ptr() as u64 ^ (s.len() as u64) << 48),
                Some(Cow::Owned(s)) => h.write(s.as_bytes()),
            }
        }
    }
}

/// One entry of a layout, as [`View`] saw it.
struct Item {
    code: u64,
    unit: Text,
    name: Text,
}

impl Item {
    fn is(&self, v: &View<'_>) -> bool {
        self.code == v.code && self.unit.is(v.unit) && self.name.is(v.name)
    }
}

/// The templates of one telegram layout: its entries in order, the template
/// of each, and the `obis` dict of their keys (values None).
struct Layout {
    items: Vec<Item>,
    entries: Vec<Entry>,
    template: Py<PyDict>,
}

/// The templates made as telegrams arrive (behind one lock).
#[derive(Default)]
struct Tables {
    /// Layouts by the hash of their views; all dropped when full (a meter
    /// sends one or a few layouts, so they are soon made again).
    layouts: WordMap<u64, Layout>,
    /// P1 static texts (names, units), interned, by address and length.
    texts: WordMap<(usize, usize), Py<PyString>>,
    /// P1 M-Bus channel keys `"1"` … by channel.
    channels: WordMap<u8, Py<PyString>>,
}

static TABLES: PyOnceLock<Mutex<Tables>> = PyOnceLock::new();

/// The tables, unless they are in use: a finalizer run by an allocation while
/// a dict is built could decode again on this thread; it (or any other
/// contention) takes the path without templates.
fn tables(py: Python<'_>) -> Option<std::sync::MutexGuard<'_, Tables>> {
    TABLES
        .get_or_init(py, || Mutex::new(Tables::default()))
        .try_lock()
        .ok()
}

impl Tables {
    /// The interned string of a static text.
    fn text<'py>(&mut self, py: Python<'py>, s: &'static str) -> Bound<'py, PyString> {
        self.texts
            .entry(text_key(Some(s)))
            .or_insert_with(|| PyString::intern(py, s).unbind())
            .bind(py)
            .clone()
    }
}

/// A new entry dict and its key string (made from scratch).
type Made<'py> = (Bound<'py, PyString>, Bound<'py, PyDict>);

/// The `obis` dict of `n` entries: entry `i` is seen as `view(i)`, made (key
/// and dict with its constant fields) by `make(tables, i)`, and its values are
/// set by `fill(dict, i)`. From the layout's templates when the same entries
/// came before: then an entry dict is one copy and `fill`'s `SetItem`s.
fn obis_dict<'py, 'a>(
    py: Python<'py>,
    tables: Option<&mut Tables>,
    n: usize,
    view: impl Fn(usize) -> View<'a>,
    make: impl Fn(Option<&mut Tables>, usize) -> PyResult<Made<'py>>,
    fill: impl Fn(&Bound<'py, PyDict>, usize) -> PyResult<()>,
) -> PyResult<Bound<'py, PyDict>> {
    let Some(t) = tables else {
        let obis = PyDict::new(py);
        for i in 0..n {
            let (key, e) = make(None, i)?;
            fill(&e, i)?;
            obis.set_item(key, e)?;
        }
        return Ok(obis);
    };
    let mut h = WordHasher(n as u64);
    (0..n).for_each(|i| view(i).hash_into(&mut h));
    let hash = h.finish();
    if let Some(l) = t.layouts.get(&hash) {
        if l.items.len() == n && l.items.iter().enumerate().all(|(i, it)| it.is(&view(i))) {
            let obis = l.template.bind(py).copy()?;
            for (i, e) in l.entries.iter().enumerate() {
                let d = e.template.bind(py).copy()?;
                fill(&d, i)?;
                obis.set_item(e.key.bind(py), d)?;
            }
            return Ok(obis);
        }
    }
    let obis = PyDict::new(py);
    let mut items = Vec::with_capacity(n);
    let mut entries = Vec::with_capacity(n);
    for i in 0..n {
        let (key, e) = make(Some(&mut *t), i)?;
        let v = view(i);
        items.push(Item {
            code: v.code,
            unit: Text::of(v.unit),
            name: Text::of(v.name),
        });
        entries.push(Entry {
            key: key.clone().unbind(),
            template: e.copy()?.unbind(),
        });
        fill(&e, i)?;
        obis.set_item(key, e)?;
    }
    let template = PyDict::new(py);
    for key in obis.keys() {
        template.set_item(key, py.None())?;
    }
    if t.layouts.len() >= LAYOUT_LIMIT {
        t.layouts.clear();
    }
    let layout = Layout {
        items,
        entries,
        template: template.unbind(),
    };
    t.layouts.insert(hash, layout);
    Ok(obis)
}

/// A decoded value as a Python object (int, float, bool, str, list or None).
pub(crate) fn value<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
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

/// Sets `d[key]` to the values that are not None (the templates hold None).
fn set_some(d: &Bound<'_, PyDict>, key: &Bound<'_, PyString>, v: Option<&Value>) -> PyResult<()> {
    match v {
        None | Some(Value::Null) => Ok(()),
        Some(v) => d.set_item(key, value(d.py(), v)?),
    }
}

/// The dict of a reading; keys as in `mbuspico.types.Reading`.
pub fn to_dict<'py>(py: Python<'py>, r: &Reading) -> PyResult<Bound<'py, PyDict>> {
    let f = fixed(py)?;
    let d = f.dlms_reading.bind(py).copy()?;
    if let Some(t) = &r.timestamp {
        d.set_item(intern!(py, "timestamp"), t)?;
    }
    if let Some(t) = r.lx_timestamp {
        d.set_item(intern!(py, "lxTimestamp"), t)?;
    }
    if let Some(m) = &r.meter_number {
        d.set_item(intern!(py, "meterNumber"), m)?;
    }
    let values = r.mbuspico_values();
    for (key, v) in field_keys(py).into_iter().zip(values) {
        set_some(&d, key, v.as_ref())?;
    }
    if let Some(t) = &r.system_title {
        d.set_item(intern!(py, "systemTitle"), hex::encode(t))?;
    }
    if let Some(c) = r.frame_counter {
        d.set_item(intern!(py, "frameCounter"), c)?;
    }
    let items = &r.obis.0;
    let view = |i: usize| View {
        code: items
            .get(i)
            .map_or(0, |(c, v)| pack(c) | u64::from(v.unit_code) << 56),
        unit: None,
        name: None,
    };
    let make = |_: Option<&mut Tables>, i: usize| -> PyResult<Made<'py>> {
        let e = f.dlms_entry.bind(py).copy()?;
        let Some((code, v)) = items.get(i) else {
            return Ok((PyString::new(py, ""), e));
        };
        e.set_item(intern!(py, "unit"), f.unit(py, v.unit_code))?;
        Ok((PyString::new(py, &code.to_string()), e))
    };
    let k_value = intern!(py, "value");
    let fill = |e: &Bound<'py, PyDict>, i: usize| {
        set_some(e, k_value, items.get(i).map(|(_, v)| &v.value))
    };
    let obis = obis_dict(py, tables(py).as_deref_mut(), items.len(), view, make, fill)?;
    d.set_item(intern!(py, "obis"), obis)?;
    Ok(d)
}

/// MBusPico's value field names, interned, in the order of [`FIELDS`].
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

/// A name or unit as a Python string: the table's static texts interned once
/// (when `tables` is at hand), others each time.
// A `Cow`, not a `&str`: whether it borrows a static text is the point.
#[allow(clippy::ptr_arg)]
fn table_str<'py>(
    py: Python<'py>,
    tables: Option<&mut Tables>,
    s: &Cow<'static, str>,
) -> Bound<'py, PyString> {
    match (s, tables) {
        (Cow::Borrowed(s), Some(t)) => t.text(py, s),
        (s, _) => PyString::new(py, s),
    }
}

/// The dict of a DSMR reading; keys as in `mbuspico.types.DsmrReading`
/// (`systemTitle` and `frameCounter` are added by the caller).
pub fn dsmr_to_dict<'py>(
    py: Python<'py>,
    r: &crate::dsmr::DsmrReading,
) -> PyResult<Bound<'py, PyDict>> {
    let f = fixed(py)?;
    let d = f.dsmr_reading.bind(py).copy()?;
    d.set_item(intern!(py, "header"), &r.header)?;
    // The template holds "ok" and "crlf".
    match r.crc {
        "ok" => {}
        "missing" => d.set_item(intern!(py, "crc"), intern!(py, "missing"))?,
        "mismatch" => d.set_item(intern!(py, "crc"), intern!(py, "mismatch"))?,
        other => d.set_item(intern!(py, "crc"), other)?,
    }
    if r.lf_only {
        d.set_item(intern!(py, "lineEndings"), intern!(py, "lf"))?;
    }
    if let Some(t) = &r.timestamp {
        d.set_item(intern!(py, "timestamp"), t)?;
    }
    let fields = r.mbuspico_fields();
    if let Some(t) = fields.lx_timestamp {
        d.set_item(intern!(py, "lxTimestamp"), t)?;
    }
    if let Some(m) = &fields.meter_number {
        d.set_item(intern!(py, "meterNumber"), m)?;
    }
    for (key, (_, v)) in field_keys(py).into_iter().zip(&fields.values) {
        set_some(&d, key, v.as_ref())?;
    }
    let mut tables = tables(py);
    let items = &r.obis;
    let view = |i: usize| match items.get(i) {
        Some((code, v)) => View {
            code: pack(&code.obis()),
            unit: v.unit.as_ref(),
            name: v.name.as_ref(),
        },
        None => View {
            code: 0,
            unit: None,
            name: None,
        },
    };
    let make = |mut tables: Option<&mut Tables>, i: usize| -> PyResult<Made<'py>> {
        let e = f.dsmr_entry.bind(py).copy()?;
        let Some((code, v)) = items.get(i) else {
            return Ok((PyString::new(py, ""), e));
        };
        if let Some(u) = &v.unit {
            e.set_item(intern!(py, "unit"), table_str(py, tables.as_deref_mut(), u))?;
        }
        if let Some(n) = &v.name {
            e.set_item(intern!(py, "name"), table_str(py, tables, n))?;
        }
        Ok((PyString::new(py, &code.obis().to_string()), e))
    };
    let (k_value, k_timestamp) = (intern!(py, "value"), intern!(py, "timestamp"));
    let fill = |e: &Bound<'py, PyDict>, i: usize| {
        let Some((_, v)) = items.get(i) else {
            return Ok(());
        };
        set_some(e, k_value, Some(&v.value))?;
        match &v.timestamp {
            Some(t) => e.set_item(k_timestamp, t),
            None => Ok(()),
        }
    };
    let obis = obis_dict(py, tables.as_deref_mut(), items.len(), view, make, fill)?;
    d.set_item(intern!(py, "obis"), obis)?;
    let mbus = PyDict::new(py);
    for (channel, dev) in &r.mbus {
        let e = f.mbus_device.bind(py).copy()?;
        if let Some(t) = dev.device_type {
            e.set_item(intern!(py, "deviceType"), t)?;
        }
        if let Some(id) = &dev.equipment_id {
            e.set_item(intern!(py, "equipmentId"), id)?;
        }
        set_some(&e, k_value, dev.value.as_ref())?;
        if let Some(u) = &dev.unit {
            e.set_item(intern!(py, "unit"), table_str(py, tables.as_deref_mut(), u))?;
        }
        if let Some(t) = &dev.timestamp {
            e.set_item(k_timestamp, t)?;
        }
        if let Some(v) = dev.valve_position {
            e.set_item(intern!(py, "valvePosition"), v)?;
        }
        let key = match tables.as_deref_mut() {
            Some(t) => t
                .channels
                .entry(*channel)
                .or_insert_with(|| PyString::new(py, &channel.to_string()).unbind())
                .bind(py)
                .clone(),
            None => PyString::new(py, &channel.to_string()),
        };
        mbus.set_item(key, e)?;
    }
    drop(tables);
    d.set_item(intern!(py, "mbus"), mbus)?;
    d.set_item(intern!(py, "unknownLines"), &r.unknown_lines)?;
    Ok(d)
}

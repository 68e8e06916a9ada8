//! `MbusReading` → `dict`, written by hand for speed.
//!
//! The shape is that of `mbuspico.types.MbusReading` (keys in that order).
//! Each dict is a copy of a template that holds every key (interned) with its
//! most common value: CPython copies a small dict by cloning its key table, so
//! a record dict costs one allocation and a few `SetItem` on existing keys,
//! never a resize. The texts a record can name (function, quantity, unit,
//! medium) are `&'static str` in the core; each is made a Python string once
//! and found again by address. Hex, ids and dates are written to the stack and
//! become a Python string directly.

use std::borrow::Cow;
use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyString};
use pyo3::{intern, IntoPyObjectExt};

use crate::mbus::reading::{self, MbusReading, MbusRecord, MbusValue};
use crate::mbus::value::DateTime;

/// Slots of the address-keyed string table (a power of two, well above the
/// number of distinct static texts, so probes stay short).
const TEXT_SLOTS: usize = 2048;

/// The Python strings of the core's static texts, keyed by address and length.
struct Texts {
    slots: Vec<Option<(usize, usize, Py<PyString>)>>,
}

fn slot_of(ptr: usize) -> usize {
    ((ptr as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 53) as usize & (TEXT_SLOTS - 1)
}

impl Texts {
    fn new(py: Python<'_>) -> Self {
        let mut slots: Vec<Option<(usize, usize, Py<PyString>)>> =
            (0..TEXT_SLOTS).map(|_| None).collect();
        for text in reading::static_texts() {
            let key = (text.as_ptr() as usize, text.len());
            let mut i = slot_of(key.0);
            // Linear probing; the table is never more than a quarter full.
            for _ in 0..TEXT_SLOTS {
                match slots.get_mut(i) {
                    Some(Some((p, l, _))) if (*p, *l) == key => break,
                    Some(slot @ None) => {
                        *slot = Some((key.0, key.1, PyString::intern(py, text).unbind()));
                        break;
                    }
                    _ => i = (i + 1) & (TEXT_SLOTS - 1),
                }
            }
        }
        Texts { slots }
    }

    /// The cached Python string of `text` if it is one of the core's static texts.
    fn find(&self, text: &str) -> Option<&Py<PyString>> {
        let key = (text.as_ptr() as usize, text.len());
        let mut i = slot_of(key.0);
        loop {
            match self.slots.get(i) {
                Some(Some((p, l, s))) if (*p, *l) == key => return Some(s),
                Some(Some(_)) => i = (i + 1) & (TEXT_SLOTS - 1),
                _ => return None,
            }
        }
    }

    /// `d[key] = text`, with the cached string when there is one.
    fn set(&self, d: &Bound<'_, PyDict>, key: &Bound<'_, PyString>, text: &str) -> PyResult<()> {
        match self.find(text) {
            Some(s) => d.set_item(key, s.bind(d.py())),
            None => d.set_item(key, text),
        }
    }
}

/// The cached strings and the two dict templates.
struct Cache {
    texts: Texts,
    /// Every key of a reading dict, in order, with `None` (`protocol`: `mbus`).
    reading: Py<PyDict>,
    /// Every key of a record dict, in order: counters 0, the rest `None`.
    record: Py<PyDict>,
}

static CACHE: PyOnceLock<Cache> = PyOnceLock::new();

fn cache(py: Python<'_>) -> PyResult<&Cache> {
    CACHE.get_or_try_init(py, || {
        let none = py.None();
        let reading = PyDict::new(py);
        for key in [
            "protocol",
            "control",
            "address",
            "ci",
            "id",
            "manufacturer",
            "version",
            "productName",
            "medium",
            "accessNumber",
            "status",
            "signature",
            "records",
            "moreRecordsFollow",
            "error",
        ] {
            reading.set_item(PyString::intern(py, key), &none)?;
        }
        reading.set_item(intern!(py, "protocol"), intern!(py, "mbus"))?;
        reading.set_item(intern!(py, "moreRecordsFollow"), false)?;
        let record = PyDict::new(py);
        for (key, zero) in [
            ("function", false),
            ("storageNumber", true),
            ("tariff", true),
            ("subunit", true),
            ("quantity", false),
            ("unit", false),
            ("value", false),
            ("raw", false),
        ] {
            let key = PyString::intern(py, key);
            if zero {
                record.set_item(key, 0)?;
            } else {
                record.set_item(key, &none)?;
            }
        }
        Ok::<_, PyErr>(Cache {
            texts: Texts::new(py),
            reading: reading.unbind(),
            record: record.unbind(),
        })
    })
}

const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";
const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Longest byte run written as hex on the stack (most records are far shorter;
/// longer ones go through a heap string).
const STACK_HEX: usize = 32;

/// Lower-case hex of `bytes` (in the order given, or last byte first) as a
/// Python string, written on the stack.
fn hex_str<'py>(py: Python<'py>, bytes: &[u8], reversed: bool) -> Bound<'py, PyString> {
    if bytes.len() > STACK_HEX {
        let mut v: Vec<u8> = bytes.to_vec();
        if reversed {
            v.reverse();
        }
        return PyString::new(py, &crate::hex::encode(&v));
    }
    let mut buf = [0u8; 2 * STACK_HEX];
    let mut put = |i: usize, b: u8| {
        for (j, n) in [(2 * i, b >> 4), (2 * i + 1, b & 0x0F)] {
            if let (Some(out), Some(&d)) = (buf.get_mut(j), HEX_LOWER.get(usize::from(n))) {
                *out = d;
            }
        }
    };
    if reversed {
        bytes.iter().rev().enumerate().for_each(|(i, &b)| put(i, b));
    } else {
        bytes.iter().enumerate().for_each(|(i, &b)| put(i, b));
    }
    ascii_str(py, buf.get(..2 * bytes.len()).unwrap_or_default())
}

/// A Python string of ASCII bytes written by this module.
fn ascii_str<'py>(py: Python<'py>, ascii: &[u8]) -> Bound<'py, PyString> {
    PyString::new(py, std::str::from_utf8(ascii).unwrap_or_default())
}

/// `{:X}` of the identification number, without a heap string.
fn id_str<'py>(py: Python<'py>, id: u32) -> Bound<'py, PyString> {
    let mut buf = [0u8; 8];
    let digits = (32 - id.leading_zeros()).div_ceil(4).max(1) as usize;
    for (k, out) in buf.iter_mut().take(digits).enumerate() {
        let n = (id >> (4 * (digits - 1 - k))) & 0x0F;
        *out = HEX_UPPER.get(n as usize).copied().unwrap_or(b'0');
    }
    ascii_str(py, buf.get(..digits).unwrap_or_default())
}

/// [`DateTime::iso`], without a heap string (years above 9999 take that path).
fn date_str<'py>(py: Python<'py>, d: &DateTime) -> Bound<'py, PyString> {
    if d.year > 9999 {
        return PyString::new(py, &d.iso());
    }
    let mut buf = *b"0000-00-00T00:00:00";
    let mut put2 = |at: usize, v: u8| {
        if let Some([hi, lo]) = buf.get_mut(at..at + 2) {
            *hi = b'0' + (v / 10) % 10;
            *lo = b'0' + v % 10;
        }
    };
    put2(0, (d.year / 100) as u8);
    put2(2, (d.year % 100) as u8);
    put2(5, d.month);
    put2(8, d.day);
    if !d.has_time {
        return ascii_str(py, buf.get(..10).unwrap_or_default());
    }
    put2(11, d.hour);
    put2(14, d.minute);
    put2(17, d.second);
    ascii_str(py, &buf)
}

fn value<'py>(py: Python<'py>, v: &MbusValue<'_>) -> PyResult<Bound<'py, PyAny>> {
    match v {
        MbusValue::Null => Ok(py.None().into_bound(py)),
        MbusValue::Int(i) => i.into_bound_py_any(py),
        MbusValue::Float(f) => f.into_bound_py_any(py),
        MbusValue::Date(d) => Ok(date_str(py, d).into_any()),
        MbusValue::Hex(b) => Ok(hex_str(py, b, false).into_any()),
        MbusValue::HexReversed(b) => Ok(hex_str(py, b, true).into_any()),
        MbusValue::Text(_) => v.text().into_bound_py_any(py),
    }
}

/// Dict templates by key, so a dict is one copy of a template with some
/// fields already set: open addressing over a fixed table, never evicting
/// (once three quarters full, new keys take the uncached path), so memory
/// stays bounded and keys that collide do not evict each other.
struct DictTable<K> {
    slots: Vec<Option<(K, Py<PyDict>)>>,
    len: usize,
}

impl<K: PartialEq> DictTable<K> {
    /// A table of `slots` slots (a power of two).
    fn new(slots: usize) -> Self {
        DictTable {
            slots: (0..slots).map(|_| None).collect(),
            len: 0,
        }
    }

    /// The template of `key`, or the free slot to keep it in (`None` when full).
    fn find(&self, hash: u64, key: &K) -> Result<&Py<PyDict>, Option<usize>> {
        let mask = self.slots.len().saturating_sub(1);
        let mut i = (hash >> 32) as usize & mask;
        for _ in 0..self.slots.len() {
            match self.slots.get(i) {
                Some(Some((k, t))) if k == key => return Ok(t),
                Some(Some(_)) => i = (i + 1) & mask,
                _ => return Err((self.len * 4 < self.slots.len() * 3).then_some(i)),
            }
        }
        Err(None)
    }

    /// A new dict from the template of `key`, made by `make` (and kept) if
    /// there is none; straight from `make` without a table.
    fn copy_or_make<'py>(
        py: Python<'py>,
        table: Option<&mut Self>,
        hash: u64,
        key: K,
        make: impl FnOnce() -> PyResult<Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let Some(table) = table else {
            return make();
        };
        match table.find(hash, &key) {
            Ok(t) => t.bind(py).copy(),
            Err(free) => {
                let d = make()?;
                if let Some(Some(slot @ None)) = free.map(|i| table.slots.get_mut(i)) {
                    // The template is a copy: `d` goes to the caller.
                    *slot = Some((key, d.copy()?.unbind()));
                    table.len += 1;
                }
                Ok(d)
            }
        }
    }
}

/// Mixes a key's words into a table hash.
fn mix(words: impl IntoIterator<Item = u64>) -> u64 {
    words.into_iter().fold(0, |h: u64, w| {
        (h.rotate_left(29) ^ w).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    })
}

/// The addresses and lengths of a record's function, quantity and unit.
type TemplateKey = [(usize, usize); 3];

/// Record templates: function, quantity and unit filled in, so a record dict
/// is one copy and the `SetItem` of its value and raw bytes.
static TEMPLATES: PyOnceLock<Mutex<DictTable<TemplateKey>>> = PyOnceLock::new();

fn text_key(t: Option<&str>) -> (usize, usize) {
    t.map_or((0, 0), |t| (t.as_ptr() as usize, t.len()))
}

/// A record dict with function, quantity and unit set (from the templates
/// when its quantity is a static text, not a plain-text VIF).
fn record_dict<'py>(
    py: Python<'py>,
    c: &Cache,
    templates: Option<&mut DictTable<TemplateKey>>,
    rec: &MbusRecord<'_>,
) -> PyResult<Bound<'py, PyDict>> {
    let make = || {
        let e = c.record.bind(py).copy()?;
        fill_texts(py, c, &e, rec)?;
        Ok(e)
    };
    let quantity = match &rec.quantity {
        Some(Cow::Owned(_)) => return make(),
        Some(Cow::Borrowed(q)) => Some(*q),
        None => None,
    };
    let key = [
        text_key(Some(rec.function)),
        text_key(quantity),
        text_key(rec.unit),
    ];
    let hash = mix(key.iter().flat_map(|&(p, l)| [p as u64, l as u64]));
    DictTable::copy_or_make(py, templates, hash, key, make)
}

/// Sets `function`, `quantity` and `unit` of a record dict (the template has None).
fn fill_texts(
    py: Python<'_>,
    c: &Cache,
    e: &Bound<'_, PyDict>,
    rec: &MbusRecord<'_>,
) -> PyResult<()> {
    c.texts.set(e, intern!(py, "function"), rec.function)?;
    if let Some(q) = &rec.quantity {
        c.texts.set(e, intern!(py, "quantity"), q)?;
    }
    if let Some(u) = rec.unit {
        c.texts.set(e, intern!(py, "unit"), u)?;
    }
    Ok(())
}

fn record<'py>(
    py: Python<'py>,
    c: &Cache,
    templates: Option<&mut DictTable<TemplateKey>>,
    rec: &MbusRecord<'_>,
) -> PyResult<Bound<'py, PyDict>> {
    let e = record_dict(py, c, templates, rec)?;
    // The template holds 0 for these three and None for the value.
    if rec.storage_number != 0 {
        e.set_item(intern!(py, "storageNumber"), rec.storage_number)?;
    }
    if rec.tariff != 0 {
        e.set_item(intern!(py, "tariff"), rec.tariff)?;
    }
    if rec.subunit != 0 {
        e.set_item(intern!(py, "subunit"), rec.subunit)?;
    }
    if rec.value != MbusValue::Null {
        e.set_item(intern!(py, "value"), value(py, &rec.value)?)?;
    }
    e.set_item(intern!(py, "raw"), hex_str(py, rec.raw, false))?;
    Ok(e)
}

/// C, A, CI, identification, manufacturer, version, and the addresses of the
/// medium and product name texts.
type HeaderKey = (u8, u8, u8, u32, [u8; 3], u8, [(usize, usize); 2]);

/// Reading templates: the fields a meter sends unchanged in every telegram
/// (C, A, CI and the long header) filled in, by those fields.
static HEADER_TEMPLATES: PyOnceLock<Mutex<DictTable<HeaderKey>>> = PyOnceLock::new();

/// The key of `r`'s header template; `None` without a long header or with a
/// medium that is no static text.
fn header_key(r: &MbusReading<'_>) -> Option<HeaderKey> {
    let h = r.header.as_ref()?;
    let Cow::Borrowed(medium) = &h.medium else {
        return None;
    };
    Some((
        r.control,
        r.address,
        r.ci,
        h.id,
        h.manufacturer?,
        h.version,
        [text_key(Some(medium)), text_key(Some(h.product_name))],
    ))
}

/// Sets the fields of `d` that [`header_key`] covers.
fn fill_header(
    py: Python<'_>,
    c: &Cache,
    d: &Bound<'_, PyDict>,
    r: &MbusReading<'_>,
) -> PyResult<()> {
    d.set_item(intern!(py, "control"), r.control)?;
    d.set_item(intern!(py, "address"), r.address)?;
    d.set_item(intern!(py, "ci"), r.ci)?;
    if let Some(h) = &r.header {
        d.set_item(intern!(py, "id"), id_str(py, h.id))?;
        if let Some(m) = h.manufacturer_text() {
            d.set_item(intern!(py, "manufacturer"), m)?;
            d.set_item(intern!(py, "version"), h.version)?;
        }
        if !h.product_name.is_empty() {
            d.set_item(intern!(py, "productName"), h.product_name)?;
        }
        c.texts.set(d, intern!(py, "medium"), &h.medium)?;
    }
    Ok(())
}

/// A copy of the reading template with the header fields of `r` filled in:
/// from (or into) the header templates when `r` has a long header.
fn reading_dict<'py>(
    py: Python<'py>,
    c: &Cache,
    r: &MbusReading<'_>,
) -> PyResult<Bound<'py, PyDict>> {
    let make = || {
        let d = c.reading.bind(py).copy()?;
        fill_header(py, c, &d, r)?;
        Ok(d)
    };
    let Some(key) = header_key(r) else {
        return make();
    };
    let table = HEADER_TEMPLATES.get_or_init(py, || Mutex::new(DictTable::new(256)));
    // `try_lock` for the reason given in `mbus_to_dict`.
    let mut guard = table.try_lock().ok();
    let (ctl, a, ci, id, [m0, m1, m2], v, [(p0, l0), (p1, l1)]) = key;
    let hash = mix([
        u64::from(u32::from_le_bytes([ctl, a, ci, v])) << 32 | u64::from(id),
        u64::from(u32::from_le_bytes([m0, m1, m2, 0])),
        p0 as u64,
        l0 as u64,
        p1 as u64,
        l1 as u64,
    ]);
    DictTable::copy_or_make(py, guard.as_deref_mut(), hash, key, make)
}

/// The dict of an M-Bus reading; keys as in `mbuspico.types.MbusReading`.
pub fn mbus_to_dict<'py>(py: Python<'py>, r: &MbusReading<'_>) -> PyResult<Bound<'py, PyDict>> {
    let c = cache(py)?;
    // `protocol`, the header fields, `moreRecordsFollow` false and None elsewhere.
    let d = reading_dict(py, c, r)?;
    if let Some(a) = r.access_number {
        d.set_item(intern!(py, "accessNumber"), a)?;
    }
    if let Some(s) = r.status {
        d.set_item(intern!(py, "status"), s)?;
    }
    if let Some(s) = r.signature {
        d.set_item(intern!(py, "signature"), s)?;
    }
    let templates = TEMPLATES.get_or_init(py, || Mutex::new(DictTable::new(512)));
    // Not `lock`: a finalizer run by the allocations below could decode again
    // on this thread; it (or any other contention) takes the uncached path.
    let mut guard = templates.try_lock().ok();
    let mut records = Vec::with_capacity(r.records.len());
    for rec in &r.records {
        records.push(record(py, c, guard.as_deref_mut(), rec)?);
    }
    drop(guard);
    d.set_item(intern!(py, "records"), PyList::new(py, records)?)?;
    if r.more_records_follow {
        d.set_item(intern!(py, "moreRecordsFollow"), true)?;
    }
    if let Some((code, text)) = &r.error {
        let e = PyDict::new(py);
        e.set_item(intern!(py, "code"), *code)?;
        e.set_item(intern!(py, "text"), text.as_ref())?;
        d.set_item(intern!(py, "error"), e)?;
    }
    Ok(d)
}

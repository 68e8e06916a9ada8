//! `mbuspico._core.decode_columns`: a batch of telegrams decoded into columns.
//!
//! `mbuspico.to_pandas(telegrams, decoder=…)` builds its DataFrame from these
//! columns instead of one dict per reading (`python/mbuspico/frames.py`): the
//! telegrams are decoded and their values sorted into typed columns with the
//! GIL released, and only then become Python objects: one `bytes` of
//! little-endian numbers per numeric column, and per text column its distinct
//! texts (one `str` each) with one index per row. The column layout is the
//! dict path's: the MBusPico fields of every DLMS push and P1 telegram, then
//! one column per OBIS code, in order of first appearance. Wired M-Bus
//! readings keep the dict path: they are returned as dicts with their rows.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use pyo3::IntoPyObjectExt;

use super::convert;
use super::decoder::{self, Decoded, Decoder, Failure};
use crate::dlms::obis::{unit_symbol, Obis};
use crate::value::Value;

/// The marker of a missing timestamp (numpy's `NaT` as `int64`).
const NO_TIME: i64 = i64::MIN;

/// A missing text in a text column.
const NO_TEXT: u32 = u32::MAX;

/// Distinct texts of one column looked up by content; beyond them only a
/// repeat of the previous row's text is found again (a clock column has a new
/// text every row).
const TEXT_INDEX_LIMIT: usize = 4096;

/// The MBusPico columns of a DLMS or P1 reading, in the dict path's order,
/// with their units (`mbuspico.frames._MBUSPICO_UNITS`).
const FIELDS: [(&str, Option<&str>); 18] = [
    ("protocol", None),
    ("meterNumber", None),
    ("lxTimestamp", Some("s")),
    ("activePowerPlus", Some("W")),
    ("activePowerMinus", Some("W")),
    ("activeEnergyPlus", Some("Wh")),
    ("activeEnergyMinus", Some("Wh")),
    ("reactiveEnergyPlus", Some("varh")),
    ("reactiveEnergyMinus", Some("varh")),
    ("voltageL1", Some("V")),
    ("voltageL2", Some("V")),
    ("voltageL3", Some("V")),
    ("currentL1", Some("A")),
    ("currentL2", Some("A")),
    ("currentL3", Some("A")),
    ("powerFactor", None),
    ("systemTitle", None),
    ("frameCounter", None),
];

/// Position of `activePowerPlus` in [`FIELDS`]; the 13 values follow it.
const FIRST_VALUE: usize = 3;

/// One value as it goes into a column.
#[derive(Clone, Copy)]
enum Cell<'v> {
    Missing,
    Int(i64),
    Float(f64),
    Text(&'v str),
    /// Anything else (bool, integers above `i64::MAX`, lists): an object column.
    Other(&'v Value),
}

impl<'v> Cell<'v> {
    fn of(v: Option<&'v Value>) -> Cell<'v> {
        match v {
            None | Some(Value::Null) => Cell::Missing,
            Some(Value::Int(i)) => Cell::Int(*i),
            Some(Value::Float(f)) => Cell::Float(*f),
            Some(Value::Text(s)) => Cell::Text(s),
            Some(other) => Cell::Other(other),
        }
    }
}

/// The distinct texts of a text column, one after the other in one buffer.
#[derive(Default)]
struct Texts {
    data: String,
    /// Where each text ends in `data`.
    ends: Vec<usize>,
    /// The first [`TEXT_INDEX_LIMIT`] texts by content; once full, only the
    /// previous row's text is looked at.
    index: HashMap<Box<str>, u32>,
    last: u32,
}

impl Texts {
    fn id(&mut self, s: &str) -> u32 {
        if self.get(self.last) == Some(s) {
            return self.last;
        }
        let indexed = self.index.len() < TEXT_INDEX_LIMIT;
        if let Some(&i) = self.index.get(s).filter(|_| indexed) {
            self.last = i;
            return i;
        }
        let i = u32::try_from(self.ends.len()).unwrap_or(NO_TEXT - 1);
        self.data.push_str(s);
        self.ends.push(self.data.len());
        if indexed {
            self.index.insert(s.into(), i);
        }
        self.last = i;
        i
    }

    fn get(&self, id: u32) -> Option<&str> {
        let id = id as usize;
        let start = match id {
            0 => 0,
            _ => *self.ends.get(id - 1)?,
        };
        self.data.get(start..*self.ends.get(id)?)
    }

    fn iter(&self) -> impl Iterator<Item = &str> {
        (0..self.ends.len()).filter_map(|i| self.get(u32::try_from(i).unwrap_or(NO_TEXT)))
    }
}

/// A column's values, in the narrowest type that holds them all.
enum Store {
    /// Only missing values so far (this many).
    Empty(usize),
    /// Whole numbers, none missing.
    Int(Vec<i64>),
    /// Numbers, NaN where missing.
    Float(Vec<f64>),
    /// Texts by id in the column's [`Texts`], [`NO_TEXT`] where missing.
    Text(Vec<u32>),
    /// Mixed or other values.
    Object(Vec<Option<Value>>),
}

impl Store {
    fn len(&self) -> usize {
        match self {
            Store::Empty(n) => *n,
            Store::Int(v) => v.len(),
            Store::Float(v) => v.len(),
            Store::Text(v) => v.len(),
            Store::Object(v) => v.len(),
        }
    }
}

/// One column of the batch.
struct Column {
    name: String,
    /// The first unit sent with a value of this column.
    unit: Option<String>,
    /// The first other unit, if the column came with two (refused by `to_pandas`).
    conflict: Option<String>,
    /// The row of the last unit noted, and `unit` and `conflict` before it
    /// when it changed them: a code sent twice in one telegram counts with
    /// its last unit, as in the reading's dict.
    unit_row: usize,
    undo: Option<(Option<String>, Option<String>)>,
    /// The row (of the batch) where the column first appeared.
    first_row: usize,
    store: Store,
    texts: Texts,
}

impl Column {
    fn new(name: String, first_row: usize) -> Self {
        Column {
            name,
            unit: None,
            conflict: None,
            unit_row: usize::MAX,
            undo: None,
            first_row,
            store: Store::Empty(0),
            texts: Texts::default(),
        }
    }

    /// Notes the unit of the value of `row`.
    fn note_unit(&mut self, row: usize, unit: Option<&str>) {
        if self.unit_row == row {
            if let Some((unit, conflict)) = self.undo.take() {
                (self.unit, self.conflict) = (unit, conflict);
            }
        } else {
            (self.unit_row, self.undo) = (row, None);
        }
        let Some(unit) = unit else { return };
        match &self.unit {
            None => {
                self.undo = Some((None, self.conflict.clone()));
                self.unit = Some(unit.to_owned());
            }
            Some(known) if known != unit && self.conflict.is_none() => {
                self.undo = Some((self.unit.clone(), None));
                self.conflict = Some(unit.to_owned());
            }
            Some(_) => {}
        }
    }

    /// Missing values up to `row` (exclusive).
    fn pad(&mut self, row: usize) {
        let n = self.store.len();
        if n >= row {
            return;
        }
        let k = row - n;
        if let Store::Int(v) = &self.store {
            self.store = Store::Float(v.iter().map(|&i| i as f64).collect());
        }
        match &mut self.store {
            Store::Empty(c) => *c += k,
            Store::Int(_) => {}
            Store::Float(v) => v.resize(row, f64::NAN),
            Store::Text(v) => v.resize(row, NO_TEXT),
            Store::Object(v) => v.resize(row, None),
        }
    }

    /// Drops values from `row` on (a code sent twice in one telegram: the
    /// last value counts, as in the reading's dict).
    fn truncate(&mut self, row: usize) {
        match &mut self.store {
            Store::Empty(c) => *c = (*c).min(row),
            Store::Int(v) => v.truncate(row),
            Store::Float(v) => v.truncate(row),
            Store::Text(v) => v.truncate(row),
            Store::Object(v) => v.truncate(row),
        }
    }

    /// The values so far as objects.
    fn objects(&self) -> Vec<Option<Value>> {
        match &self.store {
            Store::Empty(c) => vec![None; *c],
            Store::Int(v) => v.iter().map(|&i| Some(Value::Int(i))).collect(),
            Store::Float(v) => v
                .iter()
                .map(|&f| (!f.is_nan()).then_some(Value::Float(f)))
                .collect(),
            Store::Text(v) => v
                .iter()
                .map(|&id| self.texts.get(id).map(|s| Value::Text(s.to_owned())))
                .collect(),
            Store::Object(v) => v.clone(),
        }
    }

    /// Sets the value of `row` (the column's next row, or its last).
    fn put(&mut self, row: usize, cell: Cell<'_>) {
        self.truncate(row);
        self.pad(row);
        match (&mut self.store, cell) {
            (_, Cell::Missing) => self.pad(row + 1),
            (Store::Empty(0), Cell::Int(i)) => self.store = Store::Int(vec![i]),
            (Store::Int(v), Cell::Int(i)) => v.push(i),
            (Store::Float(v), Cell::Int(i)) => v.push(i as f64),
            (Store::Float(v), Cell::Float(f)) => v.push(f),
            (Store::Empty(c), Cell::Int(_) | Cell::Float(_)) => {
                let mut v = vec![f64::NAN; *c];
                v.push(match cell {
                    Cell::Int(i) => i as f64,
                    Cell::Float(f) => f,
                    _ => f64::NAN,
                });
                self.store = Store::Float(v);
            }
            (Store::Int(v), Cell::Float(f)) => {
                let mut floats: Vec<f64> = v.iter().map(|&i| i as f64).collect();
                floats.push(f);
                self.store = Store::Float(floats);
            }
            (Store::Empty(c), Cell::Text(s)) => {
                let mut v = vec![NO_TEXT; *c];
                v.push(self.texts.id(s));
                self.store = Store::Text(v);
            }
            (Store::Text(v), Cell::Text(s)) => v.push(self.texts.id(s)),
            (Store::Object(v), cell) => v.push(object(cell)),
            (_, cell) => {
                let mut v = self.objects();
                v.push(object(cell));
                self.store = Store::Object(v);
            }
        }
    }
}

fn object(cell: Cell<'_>) -> Option<Value> {
    match cell {
        Cell::Missing => None,
        Cell::Int(i) => Some(Value::Int(i)),
        Cell::Float(f) => Some(Value::Float(f)),
        Cell::Text(s) => Some(Value::Text(s.to_owned())),
        Cell::Other(v) => Some(v.clone()),
    }
}

/// An OBIS code as one word (the column lookup key).
fn pack(code: &Obis) -> u64 {
    let [a, b, c, d, e, f] = code.0;
    u64::from_le_bytes([a, b, c, d, e, f, 0, 0])
}

/// What becomes of an ISO 8601 timestamp.
#[derive(Debug, PartialEq, Eq)]
enum Stamp {
    /// Microseconds since 1970-01-01 UTC (the text had a UTC offset).
    Utc(i64),
    /// Local wall-clock microseconds since 1970-01-01 (no UTC offset).
    Naive(i64),
    /// Not a date and time (NaT).
    Bad,
}

/// Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Reads `YYYY-MM-DDThh:mm:ss[.f…][Z|±hh:mm]`, what the decoders write
/// (DLMS clock, IEC 62056-6-2 §4.1.6.1; DSMR 5.0.2 §6.4 timestamps).
fn parse_iso(text: &str) -> Stamp {
    let b = text.as_bytes();
    let num = |at: usize, len: usize| -> Option<i64> {
        b.get(at..at + len)?.iter().try_fold(0i64, |v, &d| {
            d.is_ascii_digit().then(|| v * 10 + i64::from(d - b'0'))
        })
    };
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(i, c)| b.get(i) != Some(&c)) {
        return Stamp::Bad;
    }
    let fields = (|| {
        Some((
            num(0, 4)?,
            num(5, 2)?,
            num(8, 2)?,
            num(11, 2)?,
            num(14, 2)?,
            num(17, 2)?,
        ))
    })();
    let Some((year, month, day, hour, minute, second)) = fields else {
        return Stamp::Bad;
    };
    if year < 1
        || !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Stamp::Bad;
    }
    let mut at = 19;
    let mut micros = 0i64;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let digits = b.get(at..).unwrap_or_default();
        let n = digits.iter().take_while(|d| d.is_ascii_digit()).count();
        if n == 0 {
            return Stamp::Bad;
        }
        let mut scale = 100_000;
        for d in digits.iter().take(n.min(6)) {
            micros += i64::from(d - b'0') * scale;
            scale /= 10;
        }
        at += n;
    }
    let local = ((days_from_civil(year, month, day) * 24 + hour) * 60 + minute) * 60 + second;
    let local = local * 1_000_000 + micros;
    match b.get(at..) {
        Some([]) => Stamp::Naive(local),
        Some([b'Z']) => Stamp::Utc(local),
        Some([sign @ (b'+' | b'-'), _, _, b':', _, _]) => match (num(at + 1, 2), num(at + 4, 2)) {
            (Some(h), Some(m)) if h < 24 && m < 60 => {
                let offset = (h * 60 + m) * 60_000_000;
                Stamp::Utc(if *sign == b'+' {
                    local - offset
                } else {
                    local + offset
                })
            }
            _ => Stamp::Bad,
        },
        _ => Stamp::Bad,
    }
}

/// The columns of a batch, as they are filled.
struct Table {
    rows: usize,
    columns: Vec<Column>,
    /// The columns kept (`None`: all).
    wanted: Option<HashSet<String>>,
    /// The column of each of [`FIELDS`] (`None` when not kept), once a DLMS or
    /// P1 reading came.
    fields: Option<[Option<usize>; 18]>,
    /// The column of each OBIS code seen (`None` when not kept).
    codes: HashMap<u64, Option<usize>>,
    /// The codes of the previous reading in order, with their columns: a
    /// meter sends the same layout telegram after telegram.
    layout: Vec<(u64, Option<usize>)>,
    timestamps: Vec<i64>,
    naive_rows: Vec<i64>,
    naive_local: Vec<i64>,
    naive_first: Option<String>,
    no_timestamp: usize,
    /// The last system title and its hex.
    title: Option<([u8; 8], String)>,
}

/// A DLMS or P1 reading's parts, as the table takes them.
struct Row<'r, I> {
    protocol: &'static str,
    timestamp: Option<&'r str>,
    lx_timestamp: Option<i64>,
    meter_number: Option<&'r str>,
    values: [Option<&'r Value>; 13],
    system_title: Option<[u8; 8]>,
    frame_counter: Option<u32>,
    /// `(code, unit, value)` in telegram order.
    obis: I,
}

impl Table {
    fn new(wanted: Option<HashSet<String>>, capacity: usize) -> Self {
        Table {
            rows: 0,
            columns: Vec::new(),
            wanted,
            fields: None,
            codes: HashMap::new(),
            layout: Vec::new(),
            timestamps: Vec::with_capacity(capacity),
            naive_rows: Vec::new(),
            naive_local: Vec::new(),
            naive_first: None,
            no_timestamp: 0,
            title: None,
        }
    }

    /// A new column called `name`, unless it is not kept (its unit comes
    /// with its values).
    fn column(&mut self, name: String) -> Option<usize> {
        if self.wanted.as_ref().is_some_and(|w| !w.contains(&name)) {
            return None;
        }
        self.columns.push(Column::new(name, self.rows));
        Some(self.columns.len() - 1)
    }

    fn put(&mut self, column: Option<usize>, unit: Option<&str>, cell: Cell<'_>) {
        let row = self.rows;
        if let Some(c) = column.and_then(|c| self.columns.get_mut(c)) {
            c.note_unit(row, unit);
            c.put(row, cell);
        }
    }

    fn timestamp(&mut self, t: Option<&str>) {
        let stamp = match t {
            Some(t) => {
                let s = parse_iso(t);
                if matches!(s, Stamp::Naive(_)) && self.naive_first.is_none() {
                    self.naive_first = Some(t.to_owned());
                }
                s
            }
            None => Stamp::Bad,
        };
        if t.is_none() {
            self.no_timestamp += 1;
        }
        self.timestamps.push(match stamp {
            Stamp::Utc(us) => us,
            Stamp::Naive(local) => {
                self.naive_rows.push(self.rows as i64);
                self.naive_local.push(local);
                NO_TIME
            }
            Stamp::Bad => NO_TIME,
        });
    }

    /// A row without columns (a wired M-Bus reading, returned as its dict).
    fn skip_row(&mut self) {
        self.timestamp(None);
        self.rows += 1;
    }

    fn add<'r, I>(&mut self, r: Row<'r, I>)
    where
        I: Iterator<Item = (Obis, Option<&'r str>, &'r Value)>,
    {
        self.timestamp(r.timestamp);
        let fields = match self.fields {
            Some(f) => f,
            None => {
                let mut f = [None; 18];
                for (slot, (name, _)) in f.iter_mut().zip(FIELDS) {
                    *slot = self.column(name.to_owned());
                }
                self.fields = Some(f);
                f
            }
        };
        let [protocol, meter, lx, values @ .., title, counter] = fields;
        self.put(protocol, None, Cell::Text(r.protocol));
        self.put(
            meter,
            None,
            r.meter_number.map_or(Cell::Missing, Cell::Text),
        );
        self.put(
            lx,
            Some("s"),
            r.lx_timestamp.map_or(Cell::Missing, Cell::Int),
        );
        for (i, (column, v)) in values.into_iter().zip(r.values).enumerate() {
            let unit = FIELDS.get(FIRST_VALUE + i).and_then(|f| f.1);
            self.put(column, unit, Cell::of(v));
        }
        // The hex of the system title, kept while the meter sends the same one.
        let mut cached = self.title.take();
        if let Some(t) = r.system_title {
            if cached.as_ref().is_none_or(|(bytes, _)| *bytes != t) {
                cached = Some((t, crate::hex::encode(&t)));
            }
        }
        let title_text = r
            .system_title
            .and(cached.as_ref())
            .map(|(_, hex)| hex.as_str());
        self.put(title, None, title_text.map_or(Cell::Missing, Cell::Text));
        self.title = cached;
        let counter_cell = r
            .frame_counter
            .map_or(Cell::Missing, |c| Cell::Int(i64::from(c)));
        self.put(counter, None, counter_cell);
        for (i, (code, unit, value)) in r.obis.enumerate() {
            let key = pack(&code);
            let column = match self.layout.get(i) {
                Some(&(k, c)) if k == key => c,
                _ => {
                    let c = match self.codes.get(&key) {
                        Some(&c) => c,
                        None => {
                            let c = self.column(code.to_string());
                            self.codes.insert(key, c);
                            c
                        }
                    };
                    self.layout.truncate(i);
                    self.layout.push((key, c));
                    c
                }
            };
            self.put(column, unit, Cell::of(Some(value)));
        }
        self.rows += 1;
    }

    fn add_decoded(&mut self, d: &Decoded<'_>) {
        match d {
            Decoded::Dlms(r) => {
                let values = r.mbuspico_values().map(Option::as_ref);
                self.add(Row {
                    protocol: "dlms",
                    timestamp: r.timestamp.as_deref(),
                    lx_timestamp: r.lx_timestamp,
                    meter_number: r.meter_number.as_deref(),
                    values,
                    system_title: r.system_title,
                    frame_counter: r.frame_counter,
                    obis: r
                        .obis
                        .0
                        .iter()
                        .map(|(code, v)| (*code, unit_symbol(v.unit_code), &v.value)),
                });
            }
            Decoded::Dsmr {
                reading: r,
                system_title,
                frame_counter,
            } => {
                let fields = r.mbuspico_fields();
                let mut values = [None; 13];
                for (slot, (_, v)) in values.iter_mut().zip(&fields.values) {
                    *slot = v.as_ref();
                }
                self.add(Row {
                    protocol: "dsmr",
                    timestamp: r.timestamp.as_deref(),
                    lx_timestamp: fields.lx_timestamp,
                    meter_number: fields.meter_number.as_deref(),
                    values,
                    system_title: *system_title,
                    frame_counter: *frame_counter,
                    obis: r
                        .obis
                        .iter()
                        .map(|(code, v)| (code.obis(), v.unit.as_deref(), &v.value)),
                });
            }
            Decoded::Mbus(_) => self.skip_row(),
        }
    }

    fn finish(&mut self) {
        let rows = self.rows;
        self.columns.iter_mut().for_each(|c| c.pad(rows));
    }
}

/// `bytes` of little-endian 8-byte numbers.
fn le_bytes<'py, T: Copy>(
    py: Python<'py>,
    values: &[T],
    to_le: impl Fn(T) -> [u8; 8],
) -> PyResult<Bound<'py, PyBytes>> {
    PyBytes::new_with(py, values.len() * 8, |buf| {
        for (chunk, v) in buf.chunks_exact_mut(8).zip(values) {
            chunk.copy_from_slice(&to_le(*v));
        }
        Ok(())
    })
}

/// `(kind, data)` of a column: `("int64"|"float64", bytes)`,
/// `("text", (texts, codes))`, `("object", list)` or `("empty", None)`.
fn column_data<'py>(py: Python<'py>, c: &Column) -> PyResult<(&'static str, Bound<'py, PyAny>)> {
    Ok(match &c.store {
        Store::Empty(_) => ("empty", py.None().into_bound(py)),
        Store::Int(v) => ("int64", le_bytes(py, v, i64::to_le_bytes)?.into_any()),
        Store::Float(v) => ("float64", le_bytes(py, v, f64::to_le_bytes)?.into_any()),
        Store::Text(ids) => {
            let strings: Vec<_> = c.texts.iter().map(|s| PyString::new(py, s)).collect();
            let codes: Vec<i64> = ids
                .iter()
                .map(|&id| if id == NO_TEXT { -1 } else { i64::from(id) })
                .collect();
            let data = (
                PyList::new(py, strings)?,
                le_bytes(py, &codes, i64::to_le_bytes)?,
            );
            ("text", data.into_bound_py_any(py)?)
        }
        Store::Object(v) => {
            let items = v
                .iter()
                .map(|o| match o {
                    Some(v) => super::reading::value(py, v),
                    None => Ok(py.None().into_bound(py)),
                })
                .collect::<PyResult<Vec<_>>>()?;
            ("object", PyList::new(py, items)?.into_any())
        }
    })
}

/// Telegrams decoded at a time (by up to [`MAX_THREADS`] threads) before their
/// readings go into the columns: bounds the readings held.
const WINDOW: usize = 8192;

/// Most threads that decode one batch.
const MAX_THREADS: usize = 4;

/// Fewer telegrams than this are decoded on one thread.
const PARALLEL_MIN: usize = 256;

/// A telegram's result: `None` for an item that was no telegram.
type Outcome<'a> = Option<Result<Decoded<'a>, Failure>>;

/// Decodes `inputs` (those not `bad`) split over `threads` threads: the
/// outcomes in order, in one list per thread (a reading is large; it is not
/// moved again).
fn decode_window<'a>(
    decoder: &Decoder,
    inputs: &'a [Cow<'_, [u8]>],
    bad: &[bool],
    threads: usize,
) -> Vec<Vec<Outcome<'a>>> {
    let one = |inputs: &'a [Cow<'_, [u8]>], bad: &[bool]| -> Vec<Outcome<'a>> {
        inputs
            .iter()
            .zip(bad)
            .map(|(bytes, &bad)| (!bad).then(|| decoder.decode_core(bytes)))
            .collect()
    };
    if threads < 2 || inputs.len() < PARALLEL_MIN {
        return vec![one(inputs, bad)];
    }
    let chunk = inputs.len().div_ceil(threads);
    std::thread::scope(|s| {
        let mut parts = inputs.chunks(chunk).zip(bad.chunks(chunk));
        let here = parts.next();
        let handles: Vec<_> = parts.map(|(i, b)| s.spawn(move || one(i, b))).collect();
        let mut out = vec![here.map(|(i, b)| one(i, b)).unwrap_or_default()];
        for h in handles {
            match h.join() {
                Ok(v) => out.push(v),
                Err(e) => std::panic::resume_unwind(e),
            }
        }
        out
    })
}

/// Why decoding the batch stopped early (`errors="raise"`).
enum Stop {
    /// Item `i` was no telegram.
    Input(usize),
    /// A telegram did not decode.
    Failed(Failure),
}

/// Decode a batch of telegrams into columns, the GIL released while decoding.
///
/// The telegrams are decoded by up to four threads (as many as there are
/// cores); their readings go into the columns in item order.
///
/// decode_columns(decoder, items, /, *, errors="skip", columns=None) -> dict
///
/// items: an iterable of telegrams (what Decoder.decode accepts: bytes,
/// bytearray, memoryview, hex text, P1 text). errors="skip" counts the items
/// that do not decode (DecodeError, or TypeError for an item that is no
/// telegram) and leaves them out; errors="raise" raises the first, with its
/// byte offset. columns: names of the columns to build (default all); others
/// are not collected.
///
/// Returns {"rows": int, "timestamp": bytes, "naive_rows": bytes,
/// "naive_local": bytes, "naive_first": str | None, "columns": list,
/// "mbus": list, "skipped": int, "no_timestamp": int}:
///
/// * rows: readings decoded (one row each, in item order).
/// * timestamp: per row the reading's timestamp as int64 little-endian
///   microseconds since 1970-01-01 UTC; -2**63 (numpy's NaT) for none, for
///   a text that is no valid date and time, and for a clock sent without a UTC
///   offset (the Landis+Gyr E450: IEC 62056-6-2 §4.1.6.1 deviation 0x8000):
///   those rows are in naive_rows (int64), their local wall-clock time in
///   naive_local (int64 microseconds since 1970-01-01 local), the first such
///   text in naive_first.
/// * columns: (name, unit, first_row, kind, data, other_unit) per column in
///   order of first appearance: the MBusPico fields of DLMS and P1 readings
///   (protocol, meterNumber, lxTimestamp s, activePowerPlus W, …,
///   powerFactor, systemTitle, frameCounter), then one per OBIS code
///   "A-B:C.D.E" (IEC 62056-6-1). kind "int64" or "float64": data is bytes of
///   rows little-endian numbers (float NaN where missing; int64 only when
///   no row misses the value); "text": (texts, codes), texts a list of
///   distinct str (the same text again only when it did not follow itself
///   and the column has thousands), codes bytes of rows int64 little-endian
///   indices into texts, -1 where missing; "object" (bools, lists, mixed
///   types): a list of values or None; "empty": no value in any row, data
///   None. unit: the first unit sent
///   (COSEM unit symbol; P1 as sent), other_unit the first different one (a
///   column in two units) or None.
/// * mbus: (row, dict) of each wired M-Bus reading, whose row has no values
///   in the columns (NaT timestamp).
/// * skipped: items left out; no_timestamp: rows whose reading has none.
///
/// Raises DecodeError (with .offset) or TypeError for the first bad item with
/// errors="raise"; ValueError for an unknown errors value.
#[pyfunction]
#[pyo3(signature = (decoder, items, /, *, errors = "skip", columns = None))]
pub(crate) fn decode_columns<'py>(
    py: Python<'py>,
    decoder: &Bound<'py, Decoder>,
    items: &Bound<'py, PyAny>,
    errors: &str,
    columns: Option<Vec<String>>,
) -> PyResult<Bound<'py, PyDict>> {
    let raise = match errors {
        "skip" => false,
        "raise" => true,
        other => {
            return Err(PyValueError::new_err(format!(
                "errors must be \"skip\" or \"raise\", not {other:?}"
            )))
        }
    };
    let items: Vec<Bound<'py, PyAny>> = items.try_iter()?.collect::<PyResult<_>>()?;
    let (inputs, mut bad) = convert::inputs(&items);
    let is_bad: Vec<bool> = bad.iter().map(Option::is_some).collect();
    let d = decoder.get();
    let wanted = columns.map(|c| c.into_iter().collect::<HashSet<_>>());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_THREADS));
    let (table, mbus, skipped, stop) = py.detach(|| {
        let mut table = Table::new(wanted, inputs.len());
        let mut mbus = Vec::new();
        let mut skipped = 0usize;
        let windows = inputs.chunks(WINDOW).zip(is_bad.chunks(WINDOW));
        for (w, (inputs, is_bad)) in windows.enumerate() {
            let mut outcomes = decode_window(d, inputs, is_bad, threads);
            let in_order = outcomes.iter_mut().flatten().enumerate();
            for (k, outcome) in in_order {
                match outcome {
                    Some(Ok(Decoded::Mbus(_))) => {
                        if let Some(Ok(decoded)) = outcome.take() {
                            mbus.push((table.rows, decoded));
                        }
                        table.skip_row();
                    }
                    Some(Ok(decoded)) => table.add_decoded(decoded),
                    None if raise => {
                        return (table, mbus, skipped, Some(Stop::Input(w * WINDOW + k)));
                    }
                    Some(Err(_)) if raise => {
                        let failure = match outcome.take() {
                            Some(Err(f)) => Some(Stop::Failed(f)),
                            _ => None,
                        };
                        return (table, mbus, skipped, failure);
                    }
                    None | Some(Err(_)) => skipped += 1,
                }
            }
        }
        table.finish();
        (table, mbus, skipped, None)
    });
    match stop {
        Some(Stop::Failed(f)) => return Err(f.into_py()),
        Some(Stop::Input(i)) => {
            let e = bad.get_mut(i).and_then(Option::take);
            return Err(e.unwrap_or_else(|| PyValueError::new_err("not a telegram")));
        }
        None => {}
    }
    let out = PyDict::new(py);
    out.set_item("rows", table.rows)?;
    out.set_item(
        "timestamp",
        le_bytes(py, &table.timestamps, i64::to_le_bytes)?,
    )?;
    out.set_item(
        "naive_rows",
        le_bytes(py, &table.naive_rows, i64::to_le_bytes)?,
    )?;
    out.set_item(
        "naive_local",
        le_bytes(py, &table.naive_local, i64::to_le_bytes)?,
    )?;
    out.set_item("naive_first", table.naive_first.as_deref())?;
    let columns = PyList::empty(py);
    for c in &table.columns {
        let (kind, data) = column_data(py, c)?;
        columns.append(PyTuple::new(
            py,
            [
                c.name.as_str().into_bound_py_any(py)?,
                c.unit.as_deref().into_bound_py_any(py)?,
                c.first_row.into_bound_py_any(py)?,
                kind.into_bound_py_any(py)?,
                data,
                c.conflict.as_deref().into_bound_py_any(py)?,
            ],
        )?)?;
    }
    out.set_item("columns", columns)?;
    let readings = PyList::empty(py);
    for (row, reading) in &mbus {
        readings.append((*row, decoder::to_py(py, reading)?))?;
    }
    out.set_item("mbus", readings)?;
    out.set_item("skipped", skipped)?;
    out.set_item("no_timestamp", table.no_timestamp)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_timestamps() {
        assert_eq!(
            parse_iso("2022-02-04T16:43:20+01:00"),
            Stamp::Utc(1_643_989_400_000_000)
        );
        assert_eq!(
            parse_iso("2022-02-04T15:43:20Z"),
            Stamp::Utc(1_643_989_400_000_000)
        );
        assert_eq!(
            parse_iso("2022-02-04T10:13:20.50-05:30"),
            Stamp::Utc(1_643_989_400_500_000)
        );
        assert_eq!(parse_iso("1970-01-01T00:00:01"), Stamp::Naive(1_000_000));
        assert_eq!(parse_iso("2023-02-29T00:00:00"), Stamp::Bad);
        assert_eq!(
            parse_iso("2024-02-29T00:00:00Z"),
            Stamp::Utc(1_709_164_800_000_000)
        );
        assert_eq!(parse_iso("2022-02-04T16:43:20+01"), Stamp::Bad);
        assert_eq!(parse_iso("2022-02-04 16:43:20"), Stamp::Bad);
        assert_eq!(parse_iso(""), Stamp::Bad);
    }
}

//! From a data-notification to a [`Reading`] with MBusPico's field names.
//!
//! The notification body is walked generically, so the two Austrian M-Bus layouts
//! need no per-meter code (byte layouts: `shared/notes/dlms.md` §4.1, §4.2):
//!
//! * **Netz NÖ flat** (Kaifa MA309M, Sagemcom T210-D): one structure of
//!   `clock octet-string, {OBIS, value, {scaler, unit}} × 11, meter-number octet-string`,
//!   the clock and meter number without OBIS codes;
//! * **KSM-West nested** (TINETZ, IKB, Salzburg Netz, VKW, Polish Kaifa): a structure
//!   of `OBIS, clock` followed by structures `{OBIS, value[, {scaler, unit}]}`.
//!
//! A value follows a 6-byte octet-string (its OBIS code), optionally followed by a
//! scaler-unit structure `{integer, enum}`, either flat in the list or as the members
//! of a nested structure. Elements without an OBIS code are kept when their role is
//! unambiguous: a complete 12-byte date-time is the clock (0-0:1.0.0.255), a
//! printable string the meter number (0-0:96.1.0.255).
//!
//! Scaled value = raw × 10^scaler (IEC 62056-6-2 §4.3.2, class "Register"
//! attribute 3). Power factors (C = 13, 33, 53, 73; D = 7) are signed even when
//! sent as long-unsigned.

use serde::ser::{Serialize, SerializeMap, Serializer};

use super::axdr::{Children, Data, NodeRef, Tree};
use super::datetime::DateTime;
use super::obis::{unit_symbol, Obis};
use crate::hex;
pub use crate::value::Value;

/// How a data-notification lays out its values (`shared/notes/dlms.md` §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// OBIS code, value and scaler-unit as consecutive elements of one structure,
    /// the clock and meter number unlabelled (Netz NÖ Kaifa MA309M, Sagemcom T210-D; §4.1).
    Flat,
    /// `{OBIS, value[, scaler-unit]}` structures (KSM-West Kaifa, Honeywell DM515; §4.2).
    Nested,
    /// Wiener Netze / Kärnten Netz positional list without OBIS codes (§4.3).
    WienerNetze,
    /// Netz Burgenland positional list without OBIS codes (§4.3).
    Burgenland,
    /// Landis+Gyr push with object list (§4.4).
    ObjectList,
    /// No value under an OBIS code and no known positional layout.
    #[default]
    Unlabelled,
}

impl Layout {
    /// The layout's name: `obis-flat`, `obis-nested`, `wienernetze`,
    /// `burgenland`, `object-list`, `unlabelled`.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Flat => "obis-flat",
            Layout::Nested => "obis-nested",
            Layout::WienerNetze => "wienernetze",
            Layout::Burgenland => "burgenland",
            Layout::ObjectList => "object-list",
            Layout::Unlabelled => "unlabelled",
        }
    }
}

/// One value of the `obis` map.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ObisValue {
    /// The scaled value.
    pub value: Value,
    /// The unit symbol (`"Wh"`, `"W"`, `"V"`, `"A"`, …), `None` when dimensionless.
    pub unit: Option<&'static str>,
    /// The COSEM unit enumeration value (255 = none).
    #[serde(skip)]
    pub unit_code: u8,
}

/// The values of a reading by OBIS code, in the order the meter sent them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObisMap(pub Vec<(Obis, ObisValue)>);

impl ObisMap {
    /// The value of `obis`, if the meter sent it.
    pub fn get(&self, obis: &Obis) -> Option<&ObisValue> {
        self.0.iter().find(|(o, _)| o == obis).map(|(_, v)| v)
    }
}

impl Serialize for ObisMap {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (obis, value) in &self.0 {
            map.serialize_entry(&obis.to_string(), value)?;
        }
        map.end()
    }
}

fn serialize_hex<S: Serializer>(bytes: &Option<[u8; 8]>, s: S) -> Result<S::Ok, S::Error> {
    match bytes {
        Some(b) => s.serialize_str(&hex::encode(b)),
        None => s.serialize_none(),
    }
}

/// A decoded meter reading. Serialises (to a Python dict or JSON) with MBusPico's
/// field names; fields the meter does not send are `None`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reading {
    /// Always `"dlms"`.
    pub protocol: &'static str,
    /// The meter's clock, ISO 8601 local time with the meter's UTC offset.
    pub timestamp: Option<String>,
    /// Loxone time: local wall-clock seconds since 2009-01-01 00:00.
    pub lx_timestamp: Option<i64>,
    /// Meter number (0-0:96.1.0.255, or the Netz NÖ layout's last element).
    pub meter_number: Option<String>,
    /// +P, 1-0:1.7.0, W.
    pub active_power_plus: Option<Value>,
    /// −P, 1-0:2.7.0, W.
    pub active_power_minus: Option<Value>,
    /// +A, 1-0:1.8.0, Wh.
    pub active_energy_plus: Option<Value>,
    /// −A, 1-0:2.8.0, Wh.
    pub active_energy_minus: Option<Value>,
    /// +R, 1-0:3.8.0, varh.
    pub reactive_energy_plus: Option<Value>,
    /// −R, 1-0:4.8.0, varh.
    pub reactive_energy_minus: Option<Value>,
    /// U L1, 1-0:32.7.0, V.
    #[serde(rename = "voltageL1")]
    pub voltage_l1: Option<Value>,
    /// U L2, 1-0:52.7.0, V.
    #[serde(rename = "voltageL2")]
    pub voltage_l2: Option<Value>,
    /// U L3, 1-0:72.7.0, V.
    #[serde(rename = "voltageL3")]
    pub voltage_l3: Option<Value>,
    /// I L1, 1-0:31.7.0, A.
    #[serde(rename = "currentL1")]
    pub current_l1: Option<Value>,
    /// I L2, 1-0:51.7.0, A.
    #[serde(rename = "currentL2")]
    pub current_l2: Option<Value>,
    /// I L3, 1-0:71.7.0, A.
    #[serde(rename = "currentL3")]
    pub current_l3: Option<Value>,
    /// cos φ, 1-0:13.7.0 (e.g. 0.968), signed.
    pub power_factor: Option<Value>,
    /// System title of the general-glo-ciphering APDU, hex; `None` for plaintext input.
    #[serde(serialize_with = "serialize_hex")]
    pub system_title: Option<[u8; 8]>,
    /// Frame counter (invocation counter); `None` for plaintext input.
    pub frame_counter: Option<u32>,
    /// Every value by OBIS code `A-B:C.D.E` (`*F` only when F ≠ 255).
    pub obis: ObisMap,
    /// The layout the values came in (not part of the serialised reading).
    #[serde(skip)]
    pub layout: Layout,
}

impl Reading {
    /// MBusPico's thirteen value fields, in the order of its JSON: +P, −P, +A,
    /// −A, +R, −R, U L1–L3, I L1–L3, cos φ (the fields above, in order).
    pub fn mbuspico_values(&self) -> [&Option<Value>; 13] {
        [
            &self.active_power_plus,
            &self.active_power_minus,
            &self.active_energy_plus,
            &self.active_energy_minus,
            &self.reactive_energy_plus,
            &self.reactive_energy_minus,
            &self.voltage_l1,
            &self.voltage_l2,
            &self.voltage_l3,
            &self.current_l1,
            &self.current_l2,
            &self.current_l3,
            &self.power_factor,
        ]
    }
}

fn is_power_factor(obis: &Obis) -> bool {
    matches!(obis.electricity_cde(), Some((13 | 33 | 53 | 73, 7, _)))
}

/// Whether `bytes` is a non-empty run of printable ASCII (0x20–0x7E).
fn is_printable(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.iter().all(|b| (0x20..0x7F).contains(b))
}

/// `bytes` as text when [`is_printable`].
fn printable(bytes: &[u8]) -> Option<String> {
    // Printable ASCII is UTF-8 as it is.
    is_printable(bytes).then(|| String::from_utf8_lossy(bytes).into_owned())
}

fn date_time_of(data: &Data<'_>) -> Option<DateTime> {
    let bytes = match *data {
        Data::OctetString(b) | Data::DateTime(b) => b,
        _ => return None,
    };
    let arr = <&[u8; 12]>::try_from(bytes).ok()?;
    let dt = DateTime::from_bytes(arr);
    dt.is_complete().then_some(dt)
}

fn convert(node: NodeRef<'_, '_>, scaler: i8, obis: Option<&Obis>) -> Value {
    let data = node.data();
    if let Some(s) = date_time_of(data).and_then(|dt| dt.iso8601()) {
        return Value::Text(s);
    }
    match *data {
        Data::LongUnsigned(v) if obis.is_some_and(is_power_factor) => {
            Value::scaled((v as i16).into(), scaler)
        }
        Data::Boolean(b) => Value::Bool(b),
        Data::Float32(v) => Value::Float(f64::from(v) * 10f64.powi(scaler.into())),
        Data::Float64(v) => Value::Float(v * 10f64.powi(scaler.into())),
        Data::Null | Data::DontCare => Value::Null,
        Data::Array { .. } | Data::Structure { .. } => {
            Value::List(node.children().map(|n| convert(n, 0, None)).collect())
        }
        Data::BitString(_, b)
        | Data::OctetString(b)
        | Data::VisibleString(b)
        | Data::Utf8String(b) => Value::Text(printable(b).unwrap_or_else(|| hex::encode(b))),
        Data::Date(b) | Data::Time(b) | Data::DateTime(b) => Value::Text(hex::encode(b)),
        ref other => other
            .as_i128()
            .map_or(Value::Null, |raw| Value::scaled(raw, scaler)),
    }
}

/// `{integer scaler, enum unit}`.
fn scaler_unit(node: Option<NodeRef<'_, '_>>) -> Option<(i8, u8)> {
    let mut items = node?.structure()?;
    if items.len() != 2 {
        return None;
    }
    match (items.next()?.data(), items.next()?.data()) {
        (Data::Integer(s), Data::Enum(u)) => Some((*s, *u)),
        _ => None,
    }
}

fn obis_of(node: Option<NodeRef<'_, '_>>) -> Option<Obis> {
    match node?.data() {
        Data::OctetString(b) => Obis::from_slice(b),
        _ => None,
    }
}

/// Builder collecting the values of a notification body.
#[derive(Default)]
struct Collector<'t, 'a> {
    labelled: ObisMap,
    clock: Option<DateTime>,
    /// The first element without OBIS code that is a complete date-time.
    unlabelled_clock: Option<(NodeRef<'t, 'a>, DateTime)>,
    /// The first element without OBIS code that is a printable string.
    unlabelled_text: Option<NodeRef<'t, 'a>>,
    /// Whether a value came as a nested `{OBIS, value[, scaler-unit]}` structure.
    nested_seen: bool,
}

impl<'t, 'a> Collector<'t, 'a> {
    fn push(&mut self, obis: Obis, value: NodeRef<'t, 'a>, su: Option<(i8, u8)>) {
        let (scaler, unit) = su.unwrap_or((0, 255));
        if obis == Obis::CLOCK && self.clock.is_none() {
            self.clock = date_time_of(value.data());
        }
        self.labelled.0.push((
            obis,
            ObisValue {
                value: convert(value, scaler, Some(&obis)),
                unit: unit_symbol(unit),
                unit_code: unit,
            },
        ));
    }

    /// Keeps an element without OBIS code if its role may be inferred.
    fn unlabelled(&mut self, node: NodeRef<'t, 'a>) {
        let data = node.data();
        if let Some(dt) = date_time_of(data) {
            self.unlabelled_clock.get_or_insert((node, dt));
        } else if data.as_bytes().is_some_and(is_printable) {
            self.unlabelled_text.get_or_insert(node);
        }
    }

    /// `{OBIS, value[, {scaler, unit}]}` as one nested structure.
    fn nested(&mut self, item: NodeRef<'t, 'a>) -> bool {
        let Some(mut inner) = item.structure() else {
            return false;
        };
        if !(2..=3).contains(&inner.len()) {
            return false;
        }
        let Some(obis) = obis_of(inner.next()) else {
            return false;
        };
        let Some(value) = inner.next() else {
            return false;
        };
        self.push(obis, value, scaler_unit(inner.next()));
        self.nested_seen = true;
        true
    }

    fn walk(&mut self, mut items: Children<'t, 'a>) {
        while let Some(item) = items.next() {
            if self.nested(item) {
                continue;
            }
            // Flat: OBIS, value[, {scaler, unit}] as consecutive elements.
            if let Some(obis) = obis_of(Some(item)) {
                let mut look = items.clone();
                if let Some(value) = look.next() {
                    let su = scaler_unit(look.clone().next());
                    if su.is_some() {
                        look.next();
                    }
                    items = look;
                    self.push(obis, value, su);
                    continue;
                }
            }
            self.unlabelled(item);
        }
    }
}

/// What a positional element must be.
#[derive(Clone, Copy)]
enum Shape {
    /// A printable octet-string (meter number).
    Text,
    /// A 12-byte date-time octet-string.
    Clock,
    /// long-unsigned.
    U16,
    /// double-long-unsigned.
    U32,
}

/// One element of a positional layout: its shape and, unless skipped, its
/// OBIS code, scaler and COSEM unit.
type Slot = (Shape, Option<(Obis, i8, u8)>);

const fn e(c: u8, d: u8) -> Obis {
    Obis([1, 0, c, d, 0, 255])
}

/// Wiener Netze (Siemens IM350, Iskraemeco AM550, L+G E450 on the optical
/// customer interface): meter number (Siemens only), clock, +A −A +R −R (Wh, varh),
/// +P −P +Q −Q (W, var). Source: `shared/notes/dlms.md` §2.4 (Wiener Netze
/// "Kundenschnittstelle" description as implemented by rddl-network/EnergyAgent).
const WIENER_NETZE: [Slot; 10] = [
    (Shape::Text, Some((Obis::METER_SERIAL, 0, 255))),
    (Shape::Clock, Some((Obis::CLOCK, 0, 255))),
    (Shape::U32, Some((e(1, 8), 0, 30))),
    (Shape::U32, Some((e(2, 8), 0, 30))),
    (Shape::U32, Some((e(3, 8), 0, 32))),
    (Shape::U32, Some((e(4, 8), 0, 32))),
    (Shape::U32, Some((e(1, 7), 0, 27))),
    (Shape::U32, Some((e(2, 7), 0, 27))),
    (Shape::U32, Some((e(3, 7), 0, 29))),
    (Shape::U32, Some((e(4, 7), 0, 29))),
];

/// Netz Burgenland (L+G E450): U1..U3 (V), I1..I3 (0.01 A), +P −P (W),
/// +A −A (Wh), three phase angles (not exposed: their unit is not documented),
/// meter number. Source: `shared/notes/dlms.md` §2.4 (the BGLD reader's layout).
const BURGENLAND: [Slot; 14] = [
    (Shape::U16, Some((e(32, 7), 0, 35))),
    (Shape::U16, Some((e(52, 7), 0, 35))),
    (Shape::U16, Some((e(72, 7), 0, 35))),
    (Shape::U16, Some((e(31, 7), -2, 33))),
    (Shape::U16, Some((e(51, 7), -2, 33))),
    (Shape::U16, Some((e(71, 7), -2, 33))),
    (Shape::U32, Some((e(1, 7), 0, 27))),
    (Shape::U32, Some((e(2, 7), 0, 27))),
    (Shape::U32, Some((e(1, 8), 0, 30))),
    (Shape::U32, Some((e(2, 8), 0, 30))),
    (Shape::U16, None),
    (Shape::U16, None),
    (Shape::U16, None),
    (Shape::Text, Some((Obis::METER_SERIAL, 0, 255))),
];

/// The values of a structure without OBIS codes whose elements match one of the
/// known positional layouts exactly (count and type of every element).
fn positional(root: NodeRef<'_, '_>) -> Option<(ObisMap, Option<DateTime>, Layout)> {
    let items = root.structure()?;
    let (layout, name): (&[Slot], Layout) = match items.len() {
        10 => (&WIENER_NETZE, Layout::WienerNetze),
        // Iskraemeco and L+G send no meter number.
        9 => (WIENER_NETZE.get(1..)?, Layout::WienerNetze),
        14 => (&BURGENLAND, Layout::Burgenland),
        _ => return None,
    };
    let fits = |shape: Shape, node: NodeRef<'_, '_>| match (shape, node.data()) {
        (Shape::U16, Data::LongUnsigned(_)) | (Shape::U32, Data::DoubleLongUnsigned(_)) => true,
        (Shape::Clock, data) => date_time_of(data).is_some(),
        (Shape::Text, data) => data.as_bytes().is_some_and(is_printable),
        _ => false,
    };
    let mut obis = ObisMap(Vec::with_capacity(layout.len()));
    let mut clock = None;
    for ((shape, slot), node) in layout.iter().zip(items) {
        if !fits(*shape, node) {
            return None;
        }
        if let Some((code, scaler, unit)) = slot {
            if *code == Obis::CLOCK {
                clock = date_time_of(node.data());
            }
            obis.0.push((
                *code,
                ObisValue {
                    value: convert(node, *scaler, Some(code)),
                    unit: unit_symbol(*unit),
                    unit_code: *unit,
                },
            ));
        }
    }
    Some((obis, clock, name))
}

/// The scaler and unit of a register that a push with object list sends
/// without them (Landis+Gyr E450/E570, `shared/notes/dlms.md` §4.4): the values
/// arrive as bare integers. Energy and power are in Wh/varh and W/var and voltages
/// in V, as in every vector (the E450 of Netz Burgenland sends the same
/// quantities with these units, §4.3); currents in 0.01 A as that E450 sends
/// them; power factors in 0.001 (the E570 vector's 1000 at cos φ = 1). Anything
/// else stays raw and without unit.
fn implicit_scaler_unit(obis: &Obis) -> (i8, u8) {
    match obis.electricity_cde() {
        Some((1 | 2, 8, _)) => (0, 30),
        Some((3..=8, 8, _)) => (0, 32),
        Some((1 | 2, 7, _)) => (0, 27),
        Some((3 | 4, 7, _)) => (0, 29),
        Some((32 | 52 | 72, 7, _)) => (0, 35),
        Some((31 | 51 | 71, 7, _)) => (-2, 33),
        Some((13 | 33 | 53 | 73, 7, _)) => (-3, 255),
        _ => (0, 255),
    }
}

/// COSEM interface class of a push setup object (IEC 62056-6-2 §4.4.8).
const CLASS_PUSH_SETUP: u16 = 40;
/// COSEM interface classes "Register" and "Extended register".
const CLASS_REGISTER: u16 = 3;
const CLASS_EXTENDED_REGISTER: u16 = 4;

/// A push with object list (Landis+Gyr E450/E570, `shared/notes/dlms.md` §4.4):
/// `structure{ array of {class-id, OBIS, attribute, data-index}, value_1 … value_n }`
/// where value *i* is the attribute named by descriptor *i* and value 1 is the
/// object list itself (attribute 2 of the push setup). Push-setup attributes are
/// left out; registers get [`implicit_scaler_unit`]. `None` unless the body has
/// exactly this shape.
fn object_list(root: NodeRef<'_, '_>) -> Option<(ObisMap, Option<DateTime>)> {
    let mut items = root.structure()?;
    let list = items.next()?;
    if !matches!(list.data(), Data::Array { .. }) {
        return None;
    }
    let descriptors = list.children();
    if descriptors.len() != items.len() + 1 {
        return None;
    }
    let mut obis = ObisMap(Vec::with_capacity(descriptors.len()));
    let mut clock = None;
    for (descriptor, value) in descriptors.zip(std::iter::once(list).chain(items)) {
        let mut fields = descriptor.structure()?;
        if fields.len() != 4 {
            return None;
        }
        let (class, code, attribute, index) = (
            fields.next()?.data(),
            obis_of(fields.next())?,
            fields.next()?.data(),
            fields.next()?.data(),
        );
        let (Data::LongUnsigned(class), Data::Integer(_), Data::LongUnsigned(_)) =
            (*class, attribute, index)
        else {
            return None;
        };
        if class == CLASS_PUSH_SETUP {
            continue;
        }
        let (scaler, unit) = if matches!(class, CLASS_REGISTER | CLASS_EXTENDED_REGISTER) {
            implicit_scaler_unit(&code)
        } else {
            (0, 255)
        };
        if code == Obis::CLOCK && clock.is_none() {
            clock = date_time_of(value.data());
        }
        obis.0.push((
            code,
            ObisValue {
                value: convert(value, scaler, Some(&code)),
                unit: unit_symbol(unit),
                unit_code: unit,
            },
        ));
    }
    Some((obis, clock))
}

/// Builds the reading of a notification `body`; `notification_time` is used as
/// the timestamp when the body carries no clock.
pub fn build(
    body: &Tree<'_>,
    notification_time: Option<&DateTime>,
    system_title: Option<[u8; 8]>,
    frame_counter: Option<u32>,
) -> Reading {
    let mut c = Collector {
        labelled: ObisMap(Vec::with_capacity(16)),
        ..Collector::default()
    };
    let listed = body.root().and_then(object_list);
    let mut layout = Layout::Flat;
    if let Some((values, clock)) = listed {
        c.labelled = values;
        c.clock = clock;
        layout = Layout::ObjectList;
    } else if let Some(root) = body.root() {
        match root.data() {
            Data::Structure { .. } | Data::Array { .. } => c.walk(root.children()),
            _ => c.unlabelled(root),
        }
    }
    // Elements without OBIS code whose role is unambiguous (Netz NÖ flat layout)
    // go first, clock then meter number, as the meter sends them.
    let mut obis = c.labelled;
    let inferred = |code: Obis, node: NodeRef<'_, '_>| {
        (
            code,
            ObisValue {
                value: convert(node, 0, Some(&code)),
                unit: None,
                unit_code: 255,
            },
        )
    };
    if obis.get(&Obis::METER_SERIAL).is_none() {
        if let Some(node) = c.unlabelled_text {
            obis.0.insert(0, inferred(Obis::METER_SERIAL, node));
        }
    }
    if c.clock.is_none() {
        if let Some((node, dt)) = c.unlabelled_clock {
            c.clock = Some(dt);
            obis.0.insert(0, inferred(Obis::CLOCK, node));
        }
    }

    // No number came with an OBIS code: a known positional layout, if it is one.
    let numeric =
        |v: &ObisValue| matches!(v.value, Value::Int(_) | Value::UInt(_) | Value::Float(_));
    if c.nested_seen {
        layout = Layout::Nested;
    }
    if !obis.0.iter().any(|(_, v)| numeric(v)) {
        layout = Layout::Unlabelled;
        if let Some((values, clock, positional_layout)) = body.root().and_then(positional) {
            obis = values;
            c.clock = clock;
            layout = positional_layout;
        }
    }
    let clock = c.clock.or(notification_time.copied());
    let mut r = Reading {
        protocol: "dlms",
        timestamp: clock.as_ref().and_then(DateTime::iso8601),
        lx_timestamp: clock.as_ref().and_then(DateTime::loxone_seconds),
        meter_number: None,
        active_power_plus: None,
        active_power_minus: None,
        active_energy_plus: None,
        active_energy_minus: None,
        reactive_energy_plus: None,
        reactive_energy_minus: None,
        voltage_l1: None,
        voltage_l2: None,
        voltage_l3: None,
        current_l1: None,
        current_l2: None,
        current_l3: None,
        power_factor: None,
        system_title,
        frame_counter,
        obis: ObisMap::default(),
        layout,
    };
    // One pass; the first value of each quantity wins (any channel B).
    for (code, v) in &obis.0 {
        let slot = match code.electricity_cde() {
            Some((1, 7, 0)) => &mut r.active_power_plus,
            Some((2, 7, 0)) => &mut r.active_power_minus,
            Some((1, 8, 0)) => &mut r.active_energy_plus,
            Some((2, 8, 0)) => &mut r.active_energy_minus,
            Some((3, 8, 0)) => &mut r.reactive_energy_plus,
            Some((4, 8, 0)) => &mut r.reactive_energy_minus,
            Some((32, 7, 0)) => &mut r.voltage_l1,
            Some((52, 7, 0)) => &mut r.voltage_l2,
            Some((72, 7, 0)) => &mut r.voltage_l3,
            Some((31, 7, 0)) => &mut r.current_l1,
            Some((51, 7, 0)) => &mut r.current_l2,
            Some((71, 7, 0)) => &mut r.current_l3,
            Some((13, 7, 0)) => &mut r.power_factor,
            _ => {
                if *code == Obis::METER_SERIAL && r.meter_number.is_none() {
                    if let Value::Text(s) = &v.value {
                        r.meter_number = Some(s.clone());
                    }
                }
                continue;
            }
        };
        if slot.is_none() {
            *slot = Some(v.value.clone());
        }
    }
    r.obis = obis;
    r
}

//! The value of a reading, whichever standard it came from: DLMS/COSEM
//! registers, DSMR P1 objects and EN 13757-3 data records all become a
//! [`Value`] (a number, text, or a list of values).

/// A decoded value: a number, text, or a list of values.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Value {
    /// A whole number.
    Int(i64),
    /// A whole number above `i64::MAX`.
    UInt(u64),
    /// A number with a fractional part (negative scaler) or a float type.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// Text: a printable string, an ISO 8601 date-time, or lower-case hex of binary octets.
    Text(String),
    /// An array or structure of values.
    List(Vec<Value>),
    /// null-data, don't-care.
    Null,
}

impl Value {
    /// `raw × 10^scaler` (IEC 62056-6-2 §4.3.2, class "Register" attribute 3):
    /// an integer while it fits and the scaler is not negative, else a float.
    pub fn scaled(raw: i128, scaler: i8) -> Value {
        if let (0, Ok(v)) = (scaler, i64::try_from(raw)) {
            return Value::Int(v);
        }
        if scaler < 0 {
            // Division by an exact power of ten rounds correctly (233.7, not 233.70000000000002).
            return Value::Float(raw as f64 / 10f64.powi(-i32::from(scaler)));
        }
        let scaled = 10i128
            .checked_pow(u32::from(scaler.unsigned_abs()))
            .and_then(|p| raw.checked_mul(p));
        match scaled {
            Some(v) => i64::try_from(v)
                .map(Value::Int)
                .or_else(|_| u64::try_from(v).map(Value::UInt))
                .unwrap_or(Value::Float(v as f64)),
            None => Value::Float(raw as f64 * 10f64.powi(i32::from(scaler))),
        }
    }

    /// The value as `f64`, for numbers.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Int(v) => Some(v as f64),
            Value::UInt(v) => Some(v as f64),
            Value::Float(v) => Some(v),
            _ => None,
        }
    }
}

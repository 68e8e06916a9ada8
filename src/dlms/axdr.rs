//! A-XDR encoded COSEM data (IEC 62056-6-2 §4.1.5 "Data" CHOICE; A-XDR per
//! IEC 61334-6).
//!
//! Each value is a type tag followed by its content; strings, arrays and
//! structures carry a BER length or element count. Values borrow their bytes from
//! the input. Parsing is bounded: nesting deeper than [`MAX_DEPTH`] is an error, and
//! no count read from the data is used to reserve memory beyond the bytes present.

use crate::cursor::Cursor;
use crate::error::{DecodeError, ErrorKind, Result};

/// Deepest structure/array nesting accepted.
pub const MAX_DEPTH: usize = 16;

/// One A-XDR value. Tags as in IEC 62056-6-2 Table 2 ("Data" CHOICE).
#[derive(Debug, Clone, PartialEq)]
pub enum Data<'a> {
    /// `0` null-data.
    Null,
    /// `1` array.
    Array(Vec<Data<'a>>),
    /// `2` structure.
    Structure(Vec<Data<'a>>),
    /// `3` boolean.
    Boolean(bool),
    /// `4` bit-string: the number of bits and the bytes holding them.
    BitString(usize, &'a [u8]),
    /// `5` double-long (i32).
    DoubleLong(i32),
    /// `6` double-long-unsigned (u32).
    DoubleLongUnsigned(u32),
    /// `9` octet-string.
    OctetString(&'a [u8]),
    /// `10` visible-string.
    VisibleString(&'a [u8]),
    /// `12` utf8-string.
    Utf8String(&'a [u8]),
    /// `13` bcd (one byte).
    Bcd(u8),
    /// `15` integer (i8).
    Integer(i8),
    /// `16` long (i16).
    Long(i16),
    /// `17` unsigned (u8).
    Unsigned(u8),
    /// `18` long-unsigned (u16).
    LongUnsigned(u16),
    /// `20` long64 (i64).
    Long64(i64),
    /// `21` long64-unsigned (u64).
    Long64Unsigned(u64),
    /// `22` enum.
    Enum(u8),
    /// `23` float32.
    Float32(f32),
    /// `24` float64.
    Float64(f64),
    /// `25` date-time (12 bytes).
    DateTime([u8; 12]),
    /// `26` date (5 bytes).
    Date([u8; 5]),
    /// `27` time (4 bytes).
    Time([u8; 4]),
    /// `255` don't-care.
    DontCare,
}

impl Data<'_> {
    /// The value as a signed integer, for the integer types.
    pub fn as_i128(&self) -> Option<i128> {
        Some(match *self {
            Data::DoubleLong(v) => v.into(),
            Data::DoubleLongUnsigned(v) => v.into(),
            Data::Integer(v) => v.into(),
            Data::Long(v) => v.into(),
            Data::Unsigned(v) => v.into(),
            Data::LongUnsigned(v) => v.into(),
            Data::Long64(v) => v.into(),
            Data::Long64Unsigned(v) => v.into(),
            Data::Enum(v) => v.into(),
            Data::Bcd(v) => v.into(),
            _ => return None,
        })
    }

    /// The bytes of an octet-, visible- or utf8-string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Data::OctetString(b) | Data::VisibleString(b) | Data::Utf8String(b) => Some(b),
            _ => None,
        }
    }
}

/// Parses one value at the cursor.
///
/// # Errors
/// [`ErrorKind::UnknownDataType`], [`ErrorKind::NestingTooDeep`],
/// [`ErrorKind::InvalidLength`], [`ErrorKind::Truncated`].
pub fn parse<'a>(cur: &mut Cursor<'a>) -> Result<Data<'a>> {
    parse_at_depth(cur, 0)
}

fn parse_at_depth<'a>(cur: &mut Cursor<'a>, depth: usize) -> Result<Data<'a>> {
    let at = cur.offset();
    let tag = cur.u8()?;
    Ok(match tag {
        0 => Data::Null,
        1 | 2 => {
            if depth >= MAX_DEPTH {
                return Err(DecodeError::new(
                    ErrorKind::NestingTooDeep { limit: MAX_DEPTH },
                    at,
                ));
            }
            let count = cur.ber_length()?;
            // Every element takes at least one byte: never reserve more than that.
            let mut items = Vec::with_capacity(count.min(cur.remaining()));
            for _ in 0..count {
                items.push(parse_at_depth(cur, depth + 1)?);
            }
            if tag == 1 {
                Data::Array(items)
            } else {
                Data::Structure(items)
            }
        }
        3 => Data::Boolean(cur.u8()? != 0),
        4 => {
            let bits = cur.ber_length()?;
            let bytes = bits.div_ceil(8);
            Data::BitString(bits, cur.take(bytes)?)
        }
        5 => Data::DoubleLong(cur.u32_be()? as i32),
        6 => Data::DoubleLongUnsigned(cur.u32_be()?),
        9 | 10 | 12 => {
            let len = cur.ber_length()?;
            let bytes = cur.take(len)?;
            match tag {
                9 => Data::OctetString(bytes),
                10 => Data::VisibleString(bytes),
                _ => Data::Utf8String(bytes),
            }
        }
        13 => Data::Bcd(cur.u8()?),
        15 => Data::Integer(cur.u8()? as i8),
        16 => Data::Long(cur.u16_be()? as i16),
        17 => Data::Unsigned(cur.u8()?),
        18 => Data::LongUnsigned(cur.u16_be()?),
        20 => Data::Long64(cur.u64_be()? as i64),
        21 => Data::Long64Unsigned(cur.u64_be()?),
        22 => Data::Enum(cur.u8()?),
        23 => Data::Float32(f32::from_bits(cur.u32_be()?)),
        24 => Data::Float64(f64::from_bits(cur.u64_be()?)),
        25 => Data::DateTime(cur.array()?),
        26 => Data::Date(cur.array()?),
        27 => Data::Time(cur.array()?),
        255 => Data::DontCare,
        _ => return Err(DecodeError::new(ErrorKind::UnknownDataType { tag }, at)),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn one(bytes: &[u8]) -> Result<Data<'_>> {
        let mut c = Cursor::new(bytes, 0);
        let d = parse(&mut c)?;
        assert_eq!(c.remaining(), 0, "unconsumed bytes");
        Ok(d)
    }

    #[test]
    fn scalars() {
        assert_eq!(
            one(&[0x06, 0, 0, 0x32, 0x89]),
            Ok(Data::DoubleLongUnsigned(12937))
        );
        assert_eq!(one(&[0x12, 0x09, 0x21]), Ok(Data::LongUnsigned(2337)));
        assert_eq!(one(&[0x10, 0xFC, 0x18]), Ok(Data::Long(-1000)));
        assert_eq!(one(&[0x0F, 0xFD]), Ok(Data::Integer(-3)));
        assert_eq!(one(&[0x16, 0x1E]), Ok(Data::Enum(30)));
        assert_eq!(one(&[0x09, 0x02, 0x31, 0x38]), Ok(Data::OctetString(b"18")));
        assert_eq!(one(&[0x03, 0x01]), Ok(Data::Boolean(true)));
    }

    #[test]
    fn scaler_unit_structure() {
        assert_eq!(
            one(&[0x02, 0x02, 0x0F, 0xFF, 0x16, 0x23]),
            Ok(Data::Structure(vec![Data::Integer(-1), Data::Enum(35)]))
        );
    }

    #[test]
    fn hostile_counts_and_nesting() {
        // A structure announcing 2^32-1 elements must fail, not allocate.
        let e = one(&[0x01, 0x84, 0xFF, 0xFF, 0xFF, 0xFF, 0x00]).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Truncated { needed: 1 });
        let deep = [0x02, 0x01].repeat(40);
        let e = one(&deep).unwrap_err();
        assert_eq!(e.kind, ErrorKind::NestingTooDeep { limit: MAX_DEPTH });
        assert_eq!(e.offset, 32);
        assert_eq!(
            one(&[0x07]).unwrap_err(),
            DecodeError::new(ErrorKind::UnknownDataType { tag: 7 }, 0)
        );
    }
}

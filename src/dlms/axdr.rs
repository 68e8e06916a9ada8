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
///
/// Arrays and structures do not own their elements: a parsed value lives in a
/// [`Tree`], a flat pre-order list of nodes (one allocation for a whole
/// notification), where `len` is the number of elements and `span` the number of
/// nodes below. Walk them with [`NodeRef::children`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Data<'a> {
    /// `0` null-data.
    Null,
    /// `1` array of `len` elements, `span` nodes below it.
    Array {
        /// Number of elements.
        len: usize,
        /// Number of nodes below (elements and their descendants).
        span: usize,
    },
    /// `2` structure of `len` elements, `span` nodes below it.
    Structure {
        /// Number of elements.
        len: usize,
        /// Number of nodes below (elements and their descendants).
        span: usize,
    },
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
    DateTime(&'a [u8]),
    /// `26` date (5 bytes).
    Date(&'a [u8]),
    /// `27` time (4 bytes).
    Time(&'a [u8]),
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

    /// Number of nodes below this one in its [`Tree`].
    fn span(&self) -> usize {
        match *self {
            Data::Array { span, .. } | Data::Structure { span, .. } => span,
            _ => 0,
        }
    }
}

/// A parsed A-XDR value and everything below it, in pre-order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tree<'a> {
    nodes: Vec<Data<'a>>,
}

/// A node of a [`Tree`].
#[derive(Debug, Clone, Copy)]
pub struct NodeRef<'t, 'a> {
    nodes: &'t [Data<'a>],
    index: usize,
}

impl<'a> Tree<'a> {
    /// The root value (`None` only for an empty tree, which [`parse`] never returns).
    pub fn root(&self) -> Option<NodeRef<'_, 'a>> {
        (!self.nodes.is_empty()).then_some(NodeRef {
            nodes: &self.nodes,
            index: 0,
        })
    }

    /// All nodes in pre-order.
    pub fn nodes(&self) -> &[Data<'a>] {
        &self.nodes
    }
}

impl<'t, 'a> NodeRef<'t, 'a> {
    /// The value of this node (for arrays and structures: their length).
    pub fn data(&self) -> &'t Data<'a> {
        self.nodes.get(self.index).unwrap_or(&Data::Null)
    }

    /// The elements of an array or structure (empty for other values).
    pub fn children(&self) -> Children<'t, 'a> {
        let len = match *self.data() {
            Data::Array { len, .. } | Data::Structure { len, .. } => len,
            _ => 0,
        };
        Children {
            nodes: self.nodes,
            next: self.index + 1,
            left: len,
        }
    }

    /// The elements of a structure, or `None` for any other value.
    pub fn structure(&self) -> Option<Children<'t, 'a>> {
        matches!(self.data(), Data::Structure { .. }).then(|| self.children())
    }
}

/// Iterator over the elements of an array or structure.
#[derive(Debug, Clone)]
pub struct Children<'t, 'a> {
    nodes: &'t [Data<'a>],
    next: usize,
    left: usize,
}

impl<'t, 'a> Iterator for Children<'t, 'a> {
    type Item = NodeRef<'t, 'a>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let node = self.nodes.get(self.next)?;
        let item = NodeRef {
            nodes: self.nodes,
            index: self.next,
        };
        self.next += 1 + node.span();
        self.left -= 1;
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left))
    }
}

impl ExactSizeIterator for Children<'_, '_> {
    fn len(&self) -> usize {
        self.left
    }
}

/// Parses one value (with all its elements) at the cursor.
///
/// # Errors
/// [`ErrorKind::UnknownDataType`], [`ErrorKind::NestingTooDeep`],
/// [`ErrorKind::InvalidLength`], [`ErrorKind::Truncated`].
pub fn parse<'a>(cur: &mut Cursor<'a>) -> Result<Tree<'a>> {
    // Every node takes at least one byte, so this never over-reserves.
    let mut nodes = Vec::with_capacity(cur.remaining() / 2 + 1);
    parse_into(cur, &mut nodes, 0)?;
    Ok(Tree { nodes })
}

fn parse_into<'a>(cur: &mut Cursor<'a>, nodes: &mut Vec<Data<'a>>, depth: usize) -> Result<()> {
    let at = cur.offset();
    let tag = cur.u8()?;
    let data = match tag {
        0 => Data::Null,
        1 | 2 => {
            if depth >= MAX_DEPTH {
                return Err(DecodeError::new(
                    ErrorKind::NestingTooDeep { limit: MAX_DEPTH },
                    at,
                ));
            }
            let len = cur.ber_length()?;
            let index = nodes.len();
            nodes.push(Data::Null);
            for _ in 0..len {
                parse_into(cur, nodes, depth + 1)?;
            }
            let span = nodes.len() - index - 1;
            if let Some(slot) = nodes.get_mut(index) {
                *slot = if tag == 1 {
                    Data::Array { len, span }
                } else {
                    Data::Structure { len, span }
                };
            }
            return Ok(());
        }
        3 => Data::Boolean(cur.u8()? != 0),
        4 => {
            let bits = cur.ber_length()?;
            Data::BitString(bits, cur.take(bits.div_ceil(8))?)
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
        25 => Data::DateTime(cur.take(12)?),
        26 => Data::Date(cur.take(5)?),
        27 => Data::Time(cur.take(4)?),
        255 => Data::DontCare,
        _ => return Err(DecodeError::new(ErrorKind::UnknownDataType { tag }, at)),
    };
    nodes.push(data);
    Ok(())
}

/// Writes A-XDR data (the emit side of [`parse`]), for the simulator and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    fn length(&mut self, len: usize) {
        match len {
            0..=0x7f => self.buf.push(len as u8),
            0x80..=0xff => self.buf.extend_from_slice(&[0x81, len as u8]),
            _ => {
                self.buf.push(0x82);
                self.buf
                    .extend_from_slice(&(len.min(0xffff) as u16).to_be_bytes());
            }
        }
    }

    /// A structure header of `len` elements; the elements follow.
    pub fn structure(&mut self, len: usize) -> &mut Self {
        self.buf.push(2);
        self.length(len);
        self
    }

    /// An octet-string.
    pub fn octet_string(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.push(9);
        self.length(bytes.len());
        self.buf.extend_from_slice(bytes);
        self
    }

    /// double-long-unsigned.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.push(6);
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// long-unsigned.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.push(0x12);
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// long.
    pub fn i16(&mut self, v: i16) -> &mut Self {
        self.buf.push(0x10);
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// `{integer scaler, enum unit}`.
    pub fn scaler_unit(&mut self, scaler: i8, unit: u8) -> &mut Self {
        self.buf
            .extend_from_slice(&[2, 2, 0x0F, scaler as u8, 0x16, unit]);
        self
    }

    /// The bytes written.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn one(bytes: &[u8]) -> Result<Data<'_>> {
        let tree = all(bytes)?;
        Ok(*tree.root().unwrap().data())
    }

    fn all(bytes: &[u8]) -> Result<Tree<'_>> {
        let mut c = Cursor::new(bytes, 0);
        let t = parse(&mut c)?;
        assert_eq!(c.remaining(), 0, "unconsumed bytes");
        Ok(t)
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
    fn nested_structures_walk_in_order() {
        // {{-1, V}, [u16 2337], true}
        let bytes = [
            0x02, 0x03, 0x02, 0x02, 0x0F, 0xFF, 0x16, 0x23, 0x01, 0x01, 0x12, 0x09, 0x21, 0x03,
            0x01,
        ];
        let tree = all(&bytes).unwrap();
        let root = tree.root().unwrap();
        assert_eq!(*root.data(), Data::Structure { len: 3, span: 6 });
        let items: Vec<_> = root.children().collect();
        assert_eq!(items.len(), 3);
        let su: Vec<Data<'_>> = items[0].structure().unwrap().map(|n| *n.data()).collect();
        assert_eq!(su, [Data::Integer(-1), Data::Enum(35)]);
        let arr: Vec<Data<'_>> = items[1].children().map(|n| *n.data()).collect();
        assert_eq!(arr, [Data::LongUnsigned(2337)]);
        assert!(items[1].structure().is_none());
        assert_eq!(*items[2].data(), Data::Boolean(true));
    }

    #[test]
    fn writer_round_trip() {
        let mut w = Writer::new();
        w.structure(4)
            .octet_string(b"18")
            .u32(12937)
            .scaler_unit(-1, 35)
            .i16(-5);
        let bytes = w.into_bytes();
        let tree = all(&bytes).unwrap();
        let items: Vec<Data<'_>> = tree.root().unwrap().children().map(|n| *n.data()).collect();
        assert_eq!(items[0], Data::OctetString(b"18"));
        assert_eq!(items[1], Data::DoubleLongUnsigned(12937));
        assert_eq!(items[3], Data::Long(-5));
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

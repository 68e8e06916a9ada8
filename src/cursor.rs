//! A bounds-checked reader over a byte slice: the only place the parsers index.
//!
//! Every read returns `Result`; reading past the end is
//! [`ErrorKind::Truncated`] at the absolute offset (`base + position`), never a panic.

use crate::error::{DecodeError, ErrorKind, Result};

/// Reads big- or little-endian integers and byte runs from a slice.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `buf`; `base` is the absolute offset of `buf[0]`
    /// in the caller's input, added to every error offset.
    pub fn new(buf: &'a [u8], base: usize) -> Self {
        Cursor { buf, pos: 0, base }
    }

    /// Absolute offset of the next byte.
    pub fn offset(&self) -> usize {
        self.base.saturating_add(self.pos)
    }

    /// Position relative to the start of the slice.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left to read.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// The unread bytes, without consuming them.
    pub fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    /// An error of `kind` at the current offset.
    pub fn error(&self, kind: ErrorKind) -> DecodeError {
        DecodeError::new(kind, self.offset())
    }

    /// The next byte without consuming it.
    pub fn peek(&self) -> Result<u8> {
        self.buf
            .get(self.pos)
            .copied()
            .ok_or_else(|| self.error(ErrorKind::Truncated { needed: 1 }))
    }

    /// Consumes `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n);
        match end.and_then(|end| self.buf.get(self.pos..end)) {
            Some(s) => {
                self.pos = self.pos.saturating_add(n);
                Ok(s)
            }
            None => Err(self.error(ErrorKind::Truncated {
                needed: n.saturating_sub(self.remaining()),
            })),
        }
    }

    /// Consumes exactly `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Ok(out)
    }

    /// Consumes one byte.
    pub fn u8(&mut self) -> Result<u8> {
        let b = self.peek()?;
        self.pos = self.pos.saturating_add(1);
        Ok(b)
    }

    /// Consumes a big-endian `u16` (A-XDR byte order).
    pub fn u16_be(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// Consumes a big-endian `u32`.
    pub fn u32_be(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// Consumes a big-endian `u64`.
    pub fn u64_be(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// Consumes a BER/A-XDR length: one byte below 0x80, or `0x81`, `0x82`, `0x84`
    /// followed by that many length bytes (IEC 62056-6-2 / X.690 §8.1.3).
    pub fn ber_length(&mut self) -> Result<usize> {
        let at = self.offset();
        let first = self.u8()?;
        let width = match first {
            0x00..=0x7f => return Ok(usize::from(first)),
            0x81 => 1,
            0x82 => 2,
            0x83 => 3,
            0x84 => 4,
            _ => {
                return Err(DecodeError::new(
                    ErrorKind::InvalidLength { found: first },
                    at,
                ))
            }
        };
        let mut len: usize = 0;
        for b in self.take(width)? {
            len = (len << 8) | usize::from(*b);
        }
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_reports_absolute_offsets() {
        let mut c = Cursor::new(&[0x01, 0x02, 0x03], 100);
        assert_eq!(c.u16_be(), Ok(0x0102));
        assert_eq!(c.offset(), 102);
        let e = c.u16_be().unwrap_err();
        assert_eq!(e.offset, 102);
        assert_eq!(e.kind, ErrorKind::Truncated { needed: 1 });
        assert_eq!(c.u8(), Ok(3));
        assert_eq!(c.remaining(), 0);
    }

    #[test]
    fn ber_lengths() {
        assert_eq!(Cursor::new(&[0x7f], 0).ber_length(), Ok(0x7f));
        assert_eq!(Cursor::new(&[0x81, 0xf8], 0).ber_length(), Ok(248));
        assert_eq!(Cursor::new(&[0x82, 0x01, 0x55], 0).ber_length(), Ok(341));
        assert_eq!(Cursor::new(&[0x84, 0, 0, 1, 0], 0).ber_length(), Ok(256));
        assert_eq!(
            Cursor::new(&[0x80], 7).ber_length().unwrap_err(),
            DecodeError::new(ErrorKind::InvalidLength { found: 0x80 }, 7)
        );
        assert!(Cursor::new(&[0x82, 0x01], 0).ber_length().is_err());
    }

    #[test]
    fn take_overflow_is_an_error_not_a_panic() {
        let mut c = Cursor::new(&[1, 2], 0);
        c.u8().unwrap();
        assert!(c.take(usize::MAX).is_err());
    }
}

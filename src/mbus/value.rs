//! Data-field codings of EN 13757-3 (Annex A): integers, BCD, real, dates.
//!
//! All multi-byte fields are least significant byte first. The functions take the
//! data field exactly as sent and never panic on any length.

/// A little-endian two's-complement integer of 1 to 8 bytes (Annex A, type B).
pub fn int_le(bytes: &[u8]) -> i64 {
    let n = bytes.len().min(8);
    let mut v: u64 = 0;
    for (i, b) in bytes.iter().take(n).enumerate() {
        v |= u64::from(*b) << (8 * i);
    }
    if n == 0 || n == 8 {
        return v as i64;
    }
    let shift = 64 - 8 * n as u32;
    ((v << shift) as i64) >> shift
}

/// The unsigned little-endian integer of up to 8 bytes.
pub fn uint_le(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .take(8)
        .enumerate()
        .fold(0u64, |v, (i, b)| v | (u64::from(*b) << (8 * i)))
}

/// BCD of 1 to 6 bytes (Annex A, type A), most significant byte last, decoded the
/// lenient way libmbus does: a high nibble ≥ 0xA adds nothing, a low nibble ≥ 0xA
/// adds its value, and a top nibble 0xF makes the number negative (the negative
/// BCD convention of EN 13757-3 §6.4.3, "F" in the most significant digit).
pub fn bcd_lenient(bytes: &[u8]) -> i64 {
    let mut v: i64 = 0;
    for b in bytes.iter().rev() {
        let (hi, lo) = (i64::from(b >> 4), i64::from(b & 0x0F));
        v = v.saturating_mul(10);
        if hi < 10 {
            v = v.saturating_add(hi);
        }
        v = v.saturating_mul(10).saturating_add(lo);
    }
    if bytes.last().is_some_and(|b| b >> 4 == 0xF) {
        v = -v;
    }
    v
}

/// Whether every nibble is a decimal digit (a strictly valid BCD field).
pub fn bcd_is_valid(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| b >> 4 < 10 && b & 0x0F < 10)
}

/// Lower-level date fields as libmbus prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    /// Full year.
    pub year: u32,
    /// Month 1–12 (0 when not set).
    pub month: u8,
    /// Day 1–31 (0 when not set).
    pub day: u8,
    /// Hour.
    pub hour: u8,
    /// Minute.
    pub minute: u8,
    /// Second.
    pub second: u8,
    /// Whether the field has a time part.
    pub has_time: bool,
    /// The invalid-time bit (IV) was set: the value means nothing.
    pub invalid: bool,
}

impl DateTime {
    /// `YYYY-MM-DD` or `YYYY-MM-DDThh:mm:ss`.
    pub fn iso(&self) -> String {
        if self.has_time {
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                self.year, self.month, self.day, self.hour, self.minute, self.second
            )
        } else {
            format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
        }
    }
}

fn byte(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

/// Type G date (2 bytes): day, month, year in 7 bits split across both bytes.
pub fn date_g(b: &[u8]) -> DateTime {
    let (b0, b1) = (byte(b, 0), byte(b, 1));
    DateTime {
        year: 2000 + u32::from(((b0 & 0xE0) >> 5) | ((b1 & 0xF0) >> 1)),
        month: b1 & 0x0F,
        day: b0 & 0x1F,
        hour: 0,
        minute: 0,
        second: 0,
        has_time: false,
        invalid: false,
    }
}

/// Type F date-time (4 bytes): minute, hour, day, month, year; IV in bit 7 of
/// the first byte; hundred-year bits in the second byte (00 with year ≤ 80 is 20xx).
pub fn datetime_f(b: &[u8]) -> DateTime {
    let (b0, b1, b2, b3) = (byte(b, 0), byte(b, 1), byte(b, 2), byte(b, 3));
    if b0 & 0x80 != 0 {
        // libmbus prints the zeroed struct tm for an invalid time.
        return DateTime {
            year: 1900,
            month: 1,
            day: 0,
            hour: 0,
            minute: 0,
            second: 0,
            has_time: true,
            invalid: true,
        };
    }
    let year = u32::from(((b2 & 0xE0) >> 5) | ((b3 & 0xF0) >> 1));
    let hundred = (b1 & 0x60) >> 5;
    let full = if hundred == 0 {
        if year <= 80 {
            2000 + year
        } else {
            1900 + year
        }
    } else {
        1900 + 100 * u32::from(hundred) + year
    };
    DateTime {
        year: full,
        month: b3 & 0x0F,
        day: b2 & 0x1F,
        hour: b1 & 0x1F,
        minute: b0 & 0x3F,
        second: 0,
        has_time: true,
        invalid: false,
    }
}

/// Type I date-time (6 bytes): second, minute, hour, day, month, year (20xx); IV
/// in bit 7 of the second byte.
pub fn datetime_i(b: &[u8]) -> DateTime {
    let (b0, b1, b2, b3, b4) = (byte(b, 0), byte(b, 1), byte(b, 2), byte(b, 3), byte(b, 4));
    let year = u32::from(((b3 & 0xE0) >> 5) | ((b4 & 0xF0) >> 1));
    DateTime {
        year: 2000 + year,
        month: b4 & 0x0F,
        day: b3 & 0x1F,
        hour: b2 & 0x1F,
        minute: b1 & 0x3F,
        second: b0 & 0x3F,
        has_time: true,
        invalid: b1 & 0x80 != 0,
    }
}

/// Upper-case hex bytes separated by spaces, in the order given.
pub fn hex_spaced(bytes: impl ExactSizeIterator<Item = u8>) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.enumerate() {
        if i > 0 {
            s.push(' ');
        }
        for nibble in [b >> 4, b & 0x0F] {
            s.push(char::from(
                DIGITS.get(usize::from(nibble)).copied().unwrap_or(b'0'),
            ));
        }
    }
    s
}

/// Text sent last character first (LVAR text, plain-text VIF), each byte one
/// Latin-1 character, in reading order.
pub fn reversed_text(bytes: &[u8]) -> String {
    bytes.iter().rev().map(|&b| char::from(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers() {
        assert_eq!(int_le(&[0xFE, 0xFF]), -2);
        assert_eq!(int_le(&[0x39, 0x30, 0x00]), 12345);
        assert_eq!(int_le(&[0xFF; 8]), -1);
        assert_eq!(int_le(&[]), 0);
        assert_eq!(uint_le(&[0x78, 0x56, 0x34, 0x12]), 0x1234_5678);
    }

    #[test]
    fn bcd() {
        assert_eq!(bcd_lenient(&[0x78, 0x56, 0x34, 0x12]), 12_345_678);
        assert_eq!(bcd_lenient(&[0x21, 0x43, 0xF5]), -54321);
        assert!(bcd_is_valid(&[0x12, 0x34]));
        assert!(!bcd_is_valid(&[0x1A]));
        // Lenient: A in a low nibble adds 10, in a high nibble nothing.
        assert_eq!(bcd_lenient(&[0x0A]), 10);
        assert_eq!(bcd_lenient(&[0xA0]), 0);
    }

    #[test]
    fn dates() {
        // 13.03.2014 11:11 (ACW Itron BM +m in the libmbus corpus: 0B 0B CD 13).
        assert_eq!(
            datetime_f(&[0x0B, 0x0B, 0xCD, 0x13]).iso(),
            "2014-03-13T11:11:00"
        );
        assert_eq!(date_g(&[0x00, 0x00]).iso(), "2000-00-00");
        assert_eq!(datetime_f(&[0x80, 0, 0, 0]).iso(), "1900-01-00T00:00:00");
        assert_eq!(hex_spaced([0x00, 0x01, 0xAB].into_iter()), "00 01 AB");
    }
}

//! Hexadecimal text to bytes, for keys and pasted telegrams.
//!
//! ASCII whitespace between digit pairs is ignored; anything else that is not a
//! hex digit is an error naming its character offset.

/// Why hex text could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HexError {
    /// A character that is neither a hex digit nor whitespace, at this offset.
    InvalidCharacter(usize),
    /// An odd number of hex digits.
    OddLength,
}

/// The value of one hex digit (either case).
pub(crate) fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decodes hex digits, skipping ASCII whitespace.
pub fn decode(text: &str) -> Result<Vec<u8>, HexError> {
    let mut out = Vec::with_capacity(text.len() / 2);
    let mut high: Option<u8> = None;
    for (i, c) in text.bytes().enumerate() {
        if c.is_ascii_whitespace() {
            continue;
        }
        let n = nibble(c).ok_or(HexError::InvalidCharacter(i))?;
        match high.take() {
            None => high = Some(n),
            Some(h) => out.push((h << 4) | n),
        }
    }
    if high.is_some() {
        return Err(HexError::OddLength);
    }
    Ok(out)
}

/// Lower-case hex of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    fn digit(n: u8) -> char {
        char::from(if n < 10 { b'0' + n } else { b'a' + n - 10 })
    }
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(digit(b >> 4));
        s.push(digit(b & 0x0f));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_with_whitespace() {
        assert_eq!(decode("68 fa\nFA\t68"), Ok(vec![0x68, 0xfa, 0xfa, 0x68]));
        assert_eq!(decode("6"), Err(HexError::OddLength));
        assert_eq!(decode("6x"), Err(HexError::InvalidCharacter(1)));
        assert_eq!(encode(&[0x0f, 0xa0]), "0fa0");
    }
}

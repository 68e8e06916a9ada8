//! Wired M-Bus master: request frames, secondary addresses, received-frame
//! classification and timing (EN 13757-2 link layer, EN 13757-3 §§ on
//! secondary addressing). Pure: no I/O; the serial side is in the Python binding.
//!
//! ```text
//! 10 40 A CS 16                     SND_NKE          link reset, slave answers E5
//! 10 5B|7B A CS 16                  REQ_UD2          FCV set, FCB clear|set; slave answers RSP_UD
//! 68 03 03 68 53 A 50 CS 16         SND_UD CI 50     application reset
//! 68 0B 0B 68 73 FD 52 ID… CS 16    SND_UD CI 52     select by secondary address (E5 = selected)
//! 68 06 06 68 53 A 51 01 7A N CS 16 SND_UD CI 51     set primary address to N
//! ```
//!
//! Secondary addresses are written as 16 hexadecimal characters
//! `IIIIIIIIMMMMVVDD` (the libmbus convention): the identification number as its
//! 8 BCD digits, the manufacturer's two bytes **in wire order** (EMU = `B515`),
//! version and medium. An `F` is a wildcard: a whole digit of the identification
//! number, a whole byte (`FF`) of manufacturer, version and medium.

use core::fmt;
use core::time::Duration;

use super::frame::LongFrame;
use super::link::{self, address, control, Frame};
use crate::error::{ErrorKind, Result};

/// CI-field: application reset (EN 13757-3).
pub const CI_APPLICATION_RESET: u8 = 0x50;
/// CI-field: data send, here to set the primary address (EN 13757-3).
pub const CI_DATA_SEND: u8 = 0x51;
/// CI-field: selection of a slave by secondary address (EN 13757-3).
pub const CI_SELECT: u8 = 0x52;
/// CI-field of a variable-data response with the 12-byte long header (EN 13757-3).
pub const CI_RESPONSE_VARIABLE: u8 = 0x72;
/// The DIF of the "more records follow" special function (EN 13757-3).
pub const DIF_MORE_RECORDS_FOLLOW: u8 = 0x1F;

/// `10 40 A CS 16`: SND_NKE, the link reset. The slave answers `E5`, resets its
/// frame count bit, and (sent to 0xFD) leaves the selected state.
pub fn snd_nke(address: u8) -> [u8; 5] {
    link::emit_short(control::SND_NKE, address)
}

/// `10 5B|7B A CS 16`: REQ_UD2, request for class 2 data, FCV always set, FCB as
/// given. A slave answers with the next telegram when the FCB toggled since
/// the last request, and repeats its last answer when it did not (EN 13757-2).
pub fn req_ud2(address: u8, fcb: bool) -> [u8; 5] {
    let c = if fcb {
        control::REQ_UD2 | control::FCB
    } else {
        control::REQ_UD2
    };
    link::emit_short(c, address)
}

/// `68 03 03 68 53 A 50 CS 16`: application reset (SND_UD, CI 0x50, no data).
pub fn application_reset(address: u8) -> Vec<u8> {
    link::emit_long(control::SND_UD, address, CI_APPLICATION_RESET, &[])
}

/// `68 0B 0B 68 73 FD 52 <8 bytes> CS 16`: select the slave(s) matching
/// `secondary` (SND_UD with FCB set, as libmbus sends it).
pub fn select(secondary: &SecondaryAddress) -> Vec<u8> {
    link::emit_long(
        control::SND_UD | control::FCB,
        address::NETWORK_LAYER,
        CI_SELECT,
        &secondary.0,
    )
}

/// `68 06 06 68 53 A 51 01 7A N CS 16`: give the slave at `address` the primary
/// address `new` (DIF 01, VIF 7A "bus address").
///
/// # Errors
/// `new` above 250 (251–255 are not primary addresses).
pub fn set_primary_address(address: u8, new: u8) -> core::result::Result<Vec<u8>, AddressError> {
    if new > address::PRIMARY_MAX {
        return Err(AddressError(format!(
            "a primary address is 0 to 250, not {new}"
        )));
    }
    Ok(link::emit_long(
        control::SND_UD,
        address,
        CI_DATA_SEND,
        &[0x01, 0x7A, new],
    ))
}

/// A secondary address or wildcard pattern as it travels in the select frame:
/// identification number (4 bytes BCD, least significant first), manufacturer
/// (2 bytes), version, medium.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecondaryAddress(pub [u8; 8]);

/// A secondary address that cannot be parsed, or a bad primary address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressError(pub String);

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AddressError {}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Bytes from hex text, most significant digit first (`"B515"` → `[B5, 15]`).
fn hex_bytes(text: &[u8]) -> Option<Vec<u8>> {
    text.chunks(2)
        .map(|pair| match pair {
            [hi, lo] => Some(nibble(*hi)? << 4 | nibble(*lo)?),
            _ => None,
        })
        .collect()
}

/// The 2-byte manufacturer code of three letters `A`–`Z` (EN 13757-3 / EN 62056-21
/// FLAG association ID), in wire (little-endian) order.
fn manufacturer_letters(text: &[u8]) -> Option<[u8; 2]> {
    let mut code: u16 = 0;
    for &c in text {
        let c = c.to_ascii_uppercase();
        if !c.is_ascii_uppercase() {
            return None;
        }
        code = code << 5 | u16::from(c - 64);
    }
    Some(code.to_le_bytes())
}

impl SecondaryAddress {
    /// Matches every slave.
    pub const ANY: SecondaryAddress = SecondaryAddress([0xFF; 8]);

    /// Parses `IIIIIIIIMMMMVVDD` (16 hex characters, manufacturer in wire byte
    /// order), `IIIIIIII` (the rest wildcards), `IIIIIIIIAAA` or
    /// `IIIIIIIIAAAVVDD` (manufacturer as three letters). `F` is a wildcard.
    ///
    /// # Errors
    /// Any other length or a character that is not a hex digit (or a letter in
    /// the manufacturer position).
    pub fn parse(text: &str) -> core::result::Result<Self, AddressError> {
        let bad = || {
            AddressError(format!(
                "a secondary address is 16 hex digits IIIIIIIIMMMMVVDD (F = wildcard), \
                 8 digits of the identification number, or IIIIIIII + 3 manufacturer \
                 letters [+ VVDD]; not {text:?}"
            ))
        };
        let t = text.trim().as_bytes();
        let (id, rest) = (t.get(..8).ok_or_else(bad)?, t.get(8..).unwrap_or_default());
        let id = hex_bytes(id).ok_or_else(bad)?;
        let (manufacturer, tail): ([u8; 2], &[u8]) = match rest.len() {
            0 => ([0xFF, 0xFF], b"FFFF"),
            3 | 7 => (
                manufacturer_letters(rest.get(..3).ok_or_else(bad)?).ok_or_else(bad)?,
                rest.get(3..).filter(|r| !r.is_empty()).unwrap_or(b"FFFF"),
            ),
            8 => {
                let m = hex_bytes(rest.get(..4).ok_or_else(bad)?).ok_or_else(bad)?;
                (
                    <[u8; 2]>::try_from(m.as_slice()).map_err(|_| bad())?,
                    rest.get(4..).unwrap_or_default(),
                )
            }
            _ => return Err(bad()),
        };
        let tail = hex_bytes(tail).ok_or_else(bad)?;
        let mut out = [0u8; 8];
        let bytes = id
            .iter()
            .rev()
            .chain(manufacturer.iter())
            .chain(tail.iter());
        let mut n = 0;
        for (slot, b) in out.iter_mut().zip(bytes) {
            *slot = *b;
            n += 1;
        }
        if n != 8 || id.len() != 4 || tail.len() != 2 {
            return Err(bad());
        }
        Ok(SecondaryAddress(out))
    }

    /// The address of the slave that sent a variable-data response (CI 0x72):
    /// the 8 bytes after the CI-field.
    pub fn of_response(frame: &LongFrame<'_>) -> Option<Self> {
        if frame.ci != CI_RESPONSE_VARIABLE {
            return None;
        }
        let head = frame.data.get(..8)?;
        <[u8; 8]>::try_from(head).ok().map(SecondaryAddress)
    }

    /// Whether a slave with address `slave` answers a selection with this
    /// pattern: each `F` digit of the identification number and each `FF` byte of
    /// manufacturer, version and medium matches anything (EN 13757-3).
    pub fn matches(&self, slave: &SecondaryAddress) -> bool {
        let (pattern, own) = (&self.0, &slave.0);
        pattern
            .iter()
            .zip(own.iter())
            .enumerate()
            .all(|(i, (&p, &s))| {
                if i < 4 {
                    let hi = p >> 4 == 0xF || p >> 4 == s >> 4;
                    let lo = p & 0xF == 0xF || p & 0xF == s & 0xF;
                    hi && lo
                } else {
                    p == 0xFF || p == s
                }
            })
    }
}

impl fmt::Display for SecondaryAddress {
    /// `IIIIIIIIMMMMVVDD`, upper case.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        for byte in b.iter().take(4).rev().chain(b.iter().skip(4)) {
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

/// What a received frame is, for a master waiting for an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// `E5`: the slave acknowledged.
    Ack,
    /// A long frame with C-field RSP_UD (`08`, any ACD/DFC bits): user data.
    Response,
    /// A frame going from master to slave (PRM bit set): our own request echoed
    /// by the level converter, to be discarded.
    Echo,
    /// Any other valid frame (a short frame from a slave, a long frame with
    /// another C-field).
    Other,
}

/// Classifies the frame at the start of `buf`; returns what it is and its length.
///
/// # Errors
/// [`ErrorKind::Truncated`] when `buf` ends inside a frame (read more); any
/// other error of [`link::parse`] means the bytes are not a valid frame.
pub fn classify(buf: &[u8]) -> Result<(Received, usize)> {
    let (frame, len) = link::parse(buf, 0)?;
    let kind = match frame {
        Frame::Ack => Received::Ack,
        f if f.is_master_to_slave() => Received::Echo,
        Frame::Long(l) if l.control & 0xCF == control::RSP_UD => Received::Response,
        _ => Received::Other,
    };
    Ok((kind, len))
}

/// Whether `err` only says the input ended inside a frame.
pub fn is_incomplete(kind: &ErrorKind) -> bool {
    matches!(kind, ErrorKind::Truncated { .. } | ErrorKind::Empty)
}

/// Data bytes of a record whose DIF has this data field (EN 13757-3 table 4);
/// `None` for variable length (0xD) and special functions (0xF).
fn data_len(dif: u8) -> Option<usize> {
    match dif & 0x0F {
        0x0 | 0x8 => Some(0),
        0x1 | 0x9 => Some(1),
        0x2 | 0xA => Some(2),
        0x3 | 0xB => Some(3),
        0x4 | 0x5 | 0xC => Some(4),
        0x6 | 0xE => Some(6),
        0x7 => Some(8),
        _ => None,
    }
}

/// Length of an LVAR data field from its first byte (EN 13757-3 §6.3.3, as
/// libmbus reads it).
fn lvar_len(lvar: u8) -> Option<usize> {
    let n = usize::from(lvar);
    match lvar {
        0x00..=0xBF => Some(n),
        0xC0..=0xC9 => Some(2 * (n - 0xC0)),
        0xD0..=0xD9 => Some(2 * (n - 0xD0)),
        0xE0..=0xEF => Some(n - 0xE0),
        0xF0..=0xF4 => Some(4 * (n - 0xEC)),
        0xF5 => Some(48),
        0xF6 => Some(64),
        _ => None,
    }
}

/// Whether a variable-data response (CI 0x72) ends with the DIF 0x1F "more
/// records follow": the slave has a further telegram for the next REQ_UD2 with
/// toggled FCB (EN 13757-3). Walks only the record structure (DIF, DIFE, VIF,
/// VIFE, lengths), not the values; `false` for other CI-fields and for records
/// that do not parse.
pub fn more_records_follow(frame: &LongFrame<'_>) -> bool {
    if frame.ci != CI_RESPONSE_VARIABLE {
        return false;
    }
    let mut bytes = frame.data.iter().skip(12).copied();
    let skip = |it: &mut dyn Iterator<Item = u8>, n: usize| -> bool {
        (0..n).all(|_| it.next().is_some())
    };
    while let Some(dif) = bytes.next() {
        if dif == 0x2F {
            continue; // idle filler
        }
        if dif & 0x0F == 0x0F {
            return dif == DIF_MORE_RECORDS_FOLLOW;
        }
        let mut ext = dif;
        while ext & 0x80 != 0 {
            match bytes.next() {
                Some(b) => ext = b,
                None => return false,
            }
        }
        let Some(vif) = bytes.next() else {
            return false;
        };
        if vif & 0x7F == 0x7C {
            let Some(n) = bytes.next() else {
                return false;
            };
            if !skip(&mut bytes, usize::from(n)) {
                return false;
            }
        }
        let mut ext = vif;
        while ext & 0x80 != 0 {
            match bytes.next() {
                Some(b) => ext = b,
                None => return false,
            }
        }
        let len = match data_len(dif) {
            Some(n) => n,
            None => match bytes.next().and_then(lvar_len) {
                Some(n) => n,
                None => return false,
            },
        };
        if !skip(&mut bytes, len) {
            return false;
        }
    }
    false
}

/// How long a slave may stay silent, before its first byte and between bytes, at
/// `baudrate` (the libmbus values: 300 Bd 1.3 s, 600 0.8 s, 1200 0.5 s, 2400 and
/// 4800 0.3 s, faster 0.2 s).
pub fn response_timeout(baudrate: u32) -> Duration {
    Duration::from_millis(match baudrate {
        0..=300 => 1300,
        301..=600 => 800,
        601..=1200 => 500,
        1201..=4800 => 300,
        _ => 200,
    })
}

/// Time to send `bytes` bytes at `baudrate` with 11 bits per byte (start, 8
/// data, parity, stop; EN 13757-2 §4).
pub fn transmission_time(bytes: usize, baudrate: u32) -> Duration {
    let bits = (bytes as u64).saturating_mul(11);
    Duration::from_micros(bits.saturating_mul(1_000_000) / u64::from(baudrate.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_requests() {
        assert_eq!(snd_nke(1), [0x10, 0x40, 0x01, 0x41, 0x16]);
        assert_eq!(snd_nke(0xFD), [0x10, 0x40, 0xFD, 0x3D, 0x16]);
        assert_eq!(req_ud2(5, false), [0x10, 0x5B, 0x05, 0x60, 0x16]);
        assert_eq!(req_ud2(5, true), [0x10, 0x7B, 0x05, 0x80, 0x16]);
        assert_eq!(req_ud2(0xFE, true), [0x10, 0x7B, 0xFE, 0x79, 0x16]);
    }

    #[test]
    fn long_requests() {
        assert_eq!(
            application_reset(1),
            [0x68, 0x03, 0x03, 0x68, 0x53, 0x01, 0x50, 0xA4, 0x16]
        );
        assert_eq!(
            set_primary_address(0, 7).unwrap(),
            [0x68, 0x06, 0x06, 0x68, 0x53, 0x00, 0x51, 0x01, 0x7A, 0x07, 0x26, 0x16]
        );
        assert!(set_primary_address(0, 251).is_err());
        let a = SecondaryAddress::parse("12345678B5150102").unwrap();
        assert_eq!(
            select(&a),
            [
                0x68, 0x0B, 0x0B, 0x68, 0x73, 0xFD, 0x52, 0x78, 0x56, 0x34, 0x12, 0xB5, 0x15, 0x01,
                0x02, 0xA3, 0x16
            ]
        );
        let any = select(&SecondaryAddress::ANY);
        assert_eq!(any[7..15], [0xFF; 8]);
    }

    #[test]
    fn secondary_address_forms() {
        let full = SecondaryAddress::parse("12345678B5150102").unwrap();
        assert_eq!(full.0, [0x78, 0x56, 0x34, 0x12, 0xB5, 0x15, 0x01, 0x02]);
        assert_eq!(full.to_string(), "12345678B5150102");
        assert_eq!(
            SecondaryAddress::parse("12345678").unwrap().to_string(),
            "12345678FFFFFFFF"
        );
        // EMU = (5 << 10 | 13 << 5 | 21) = 0x15B5, wire order B5 15.
        assert_eq!(SecondaryAddress::parse("12345678emu0102").unwrap(), full);
        assert_eq!(
            SecondaryAddress::parse("12345678EMU").unwrap().to_string(),
            "12345678B515FFFF"
        );
        assert_eq!(
            SecondaryAddress::parse(" 1f3456789a1b0102 ")
                .unwrap()
                .to_string(),
            "1F3456789A1B0102"
        );
        for bad in [
            "",
            "1234567",
            "123456789",
            "12345678B51501",
            "12345678B515010203",
            "1234567GB5150102",
            "12345678E1U",
            "12345678EMU01",
            "ÄÄÄÄÄÄÄÄ",
            "12345678ÄÄ",
        ] {
            assert!(SecondaryAddress::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn wildcards() {
        let slave = SecondaryAddress::parse("12345678B5150102").unwrap();
        let yes = [
            "FFFFFFFFFFFFFFFF",
            "1FFFFFFFFFFFFFFF",
            "12345678FFFFFFFF",
            "F2F4F6F8B515FF02",
            "12345678B5150102",
        ];
        for p in yes {
            assert!(SecondaryAddress::parse(p).unwrap().matches(&slave), "{p}");
        }
        // manufacturer, version and medium wildcards are whole bytes
        let no = [
            "2FFFFFFFFFFFFFFF",
            "12345679FFFFFFFF",
            "12345678B5F5FFFF",
            "FFFFFFFFFFFF0202",
        ];
        for p in no {
            assert!(!SecondaryAddress::parse(p).unwrap().matches(&slave), "{p}");
        }
    }

    fn response(records: &[u8]) -> Vec<u8> {
        let mut data = vec![
            0x78, 0x56, 0x34, 0x12, 0xB5, 0x15, 0x01, 0x02, 0x2A, 0x00, 0x00, 0x00,
        ];
        data.extend_from_slice(records);
        link::emit_long(control::RSP_UD, 1, 0x72, &data)
    }

    #[test]
    fn more_records_follow_walks_the_records() {
        let cases: [(&[u8], bool); 9] = [
            (&[], false),
            (&[0x1F], true),
            (&[0x0F, 0x1F], false),
            (&[0x04, 0x13, 1, 2, 3, 4, 0x1F], true),
            // a 0x1F inside data is not a DIF
            (&[0x02, 0x13, 0x1F, 0x1F], false),
            (&[0x84, 0x10, 0x13, 1, 2, 3, 4, 0x2F, 0x1F], true),
            // plain-text VIF with 2 characters, one VIFE after the text
            (&[0x01, 0xFC, 0x02, b'a', b'b', 0x05, 0x09, 0x1F], true),
            // LVAR text of 3 bytes containing 1F
            (&[0x0D, 0x78, 0x03, 0x1F, 0x1F, 0x1F], false),
            // truncated record
            (&[0x04, 0x13, 1], false),
        ];
        for (records, expected) in cases {
            let f = response(records);
            let (Frame::Long(l), _) = link::parse(&f, 0).unwrap() else {
                unreachable!()
            };
            assert_eq!(more_records_follow(&l), expected, "{records:02X?}");
        }
    }

    #[test]
    fn classify_frames() {
        assert_eq!(classify(&[0xE5]).unwrap(), (Received::Ack, 1));
        assert_eq!(classify(&snd_nke(3)).unwrap(), (Received::Echo, 5));
        let r = response(&[0x1F]);
        assert_eq!(classify(&r).unwrap(), (Received::Response, r.len()));
        let acd = link::emit_long(0x38, 1, 0x72, &[0; 12]);
        assert_eq!(classify(&acd).unwrap().0, Received::Response);
        assert_eq!(
            classify(&link::emit_short(0x08, 1)).unwrap().0,
            Received::Other
        );
        let e = classify(&r[..10]).unwrap_err();
        assert!(is_incomplete(&e.kind));
        assert!(!is_incomplete(&classify(&[0x42]).unwrap_err().kind));
        let head = SecondaryAddress::of_response(&match link::parse(&r, 0).unwrap().0 {
            Frame::Long(l) => l,
            _ => unreachable!(),
        });
        assert_eq!(head.unwrap().to_string(), "12345678B5150102");
    }

    #[test]
    fn timing() {
        assert_eq!(response_timeout(300), Duration::from_millis(1300));
        assert_eq!(response_timeout(600), Duration::from_millis(800));
        assert_eq!(response_timeout(1200), Duration::from_millis(500));
        assert_eq!(response_timeout(2400), Duration::from_millis(300));
        assert_eq!(response_timeout(4800), Duration::from_millis(300));
        assert_eq!(response_timeout(9600), Duration::from_millis(200));
        assert_eq!(response_timeout(38400), Duration::from_millis(200));
        assert_eq!(transmission_time(5, 2400), Duration::from_micros(22_916));
        assert_eq!(transmission_time(1, 0), Duration::from_secs(11));
    }
}

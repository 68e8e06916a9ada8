//! Every EN 13757-2 link-layer frame: single character, short, control and long.
//!
//! ```text
//! E5                              single character (acknowledge)
//! 10 C A CS 16                    short frame
//! 68 03 03 68 C A CI CS 16        control frame (a long frame with L = 3)
//! 68 L L 68 C A CI data… CS 16    long frame
//! ```
//! Checksums are the 8-bit sum of C-field to last data byte (EN 13757-2 §5.4).
//! Parsing never panics; input that ends inside a frame is
//! [`ErrorKind::Truncated`].

use super::frame::{LongFrame, START, STOP};
use crate::error::{DecodeError, ErrorKind, Result};

/// The single-character acknowledge.
pub const ACK: u8 = 0xE5;
/// Start byte of the short frame.
pub const SHORT_START: u8 = 0x10;

/// C-field values and bits (EN 13757-2 §5.5).
pub mod control {
    /// SND_NKE: link reset, the slave answers E5.
    pub const SND_NKE: u8 = 0x40;
    /// SND_UD: send user data to the slave (FCB clear).
    pub const SND_UD: u8 = 0x53;
    /// REQ_UD2: request class 2 data (FCB clear).
    pub const REQ_UD2: u8 = 0x5B;
    /// REQ_UD1: request class 1 (alarm) data (FCB clear).
    pub const REQ_UD1: u8 = 0x5A;
    /// RSP_UD: the slave's response with user data.
    pub const RSP_UD: u8 = 0x08;
    /// Frame count bit (master to slave).
    pub const FCB: u8 = 0x20;
    /// Frame count bit valid (master to slave).
    pub const FCV: u8 = 0x10;
    /// Access demand (slave to master).
    pub const ACD: u8 = 0x20;
    /// Data flow control (slave to master).
    pub const DFC: u8 = 0x10;
    /// Direction bit: set on master-to-slave frames.
    pub const PRM: u8 = 0x40;
}

/// A-field values (EN 13757-2 §5.6).
pub mod address {
    /// Highest primary address.
    pub const PRIMARY_MAX: u8 = 250;
    /// Unconfigured slaves.
    pub const UNCONFIGURED: u8 = 0;
    /// The network layer: the slave selected by secondary address.
    pub const NETWORK_LAYER: u8 = 0xFD;
    /// Broadcast, every slave answers (only with a single slave on the bus).
    pub const BROADCAST_REPLY: u8 = 0xFE;
    /// Broadcast, no slave answers.
    pub const BROADCAST: u8 = 0xFF;
}

/// A parsed link-layer frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// `E5`.
    Ack,
    /// `10 C A CS 16`.
    Short {
        /// C-field.
        control: u8,
        /// A-field.
        address: u8,
    },
    /// `68 L L 68 …`: a control frame when `data` is empty (L = 3).
    Long(LongFrame<'a>),
}

impl Frame<'_> {
    /// The C-field (`None` for the single character).
    pub fn control(&self) -> Option<u8> {
        match self {
            Frame::Ack => None,
            Frame::Short { control, .. } => Some(*control),
            Frame::Long(f) => Some(f.control),
        }
    }

    /// Whether the frame goes from master to slave (PRM bit set).
    pub fn is_master_to_slave(&self) -> bool {
        self.control().is_some_and(|c| c & control::PRM != 0)
    }
}

/// Parses the frame at the start of `buf`; returns it and its length in bytes.
/// `base` is the absolute offset of `buf[0]` for error offsets.
///
/// # Errors
/// [`ErrorKind::Empty`], [`ErrorKind::Truncated`], [`ErrorKind::UnknownFraming`],
/// [`ErrorKind::Checksum`], [`ErrorKind::InvalidStop`], and the long-frame errors
/// of [`LongFrame::parse`].
pub fn parse(buf: &[u8], base: usize) -> Result<(Frame<'_>, usize)> {
    parse_with(buf, base, true)
}

/// [`parse`], checksums checked only when `verify_checksum` (see
/// [`LongFrame::parse_with`]).
///
/// # Errors
/// As [`parse`], without [`ErrorKind::Checksum`] when `verify_checksum` is false.
pub fn parse_with(buf: &[u8], base: usize, verify_checksum: bool) -> Result<(Frame<'_>, usize)> {
    match buf.first() {
        None => Err(DecodeError::new(ErrorKind::Empty, base)),
        Some(&ACK) => Ok((Frame::Ack, 1)),
        Some(&SHORT_START) => {
            let Some(&[_, control, address, cs, stop]) =
                buf.get(..5).and_then(|s| <&[u8; 5]>::try_from(s).ok())
            else {
                return Err(DecodeError::new(
                    ErrorKind::Truncated {
                        needed: 5 - buf.len(),
                    },
                    base + buf.len(),
                ));
            };
            let computed = control.wrapping_add(address);
            if verify_checksum && cs != computed {
                return Err(DecodeError::new(
                    ErrorKind::Checksum {
                        expected: cs,
                        computed,
                    },
                    base + 3,
                ));
            }
            if stop != STOP {
                return Err(DecodeError::new(
                    ErrorKind::InvalidStop { found: stop },
                    base + 4,
                ));
            }
            Ok((Frame::Short { control, address }, 5))
        }
        Some(&START) => {
            let f = LongFrame::parse_with(buf, base, verify_checksum)?;
            Ok((Frame::Long(f), f.frame_len))
        }
        Some(&found) => Err(DecodeError::new(ErrorKind::UnknownFraming { found }, base)),
    }
}

/// `10 C A CS 16`.
pub fn emit_short(control: u8, address: u8) -> [u8; 5] {
    [
        SHORT_START,
        control,
        address,
        control.wrapping_add(address),
        STOP,
    ]
}

/// `68 L L 68 C A CI data CS 16` (data at most 252 bytes).
pub fn emit_long(control: u8, address: u8, ci: u8, data: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(3 + data.len());
    body.extend_from_slice(&[control, address, ci]);
    body.extend_from_slice(data);
    LongFrame::emit(&body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_each_kind() {
        assert_eq!(parse(&[0xE5, 0x00], 0).unwrap(), (Frame::Ack, 1));
        let short = emit_short(control::REQ_UD2, 5);
        assert_eq!(short, [0x10, 0x5B, 0x05, 0x60, 0x16]);
        assert_eq!(
            parse(&short, 0).unwrap(),
            (
                Frame::Short {
                    control: 0x5B,
                    address: 5
                },
                5
            )
        );
        let long = emit_long(control::RSP_UD, 1, 0x72, &[1, 2, 3]);
        let (f, n) = parse(&long, 0).unwrap();
        assert_eq!(n, long.len());
        assert!(matches!(f, Frame::Long(l) if l.ci == 0x72 && l.data == [1, 2, 3]));
        assert!(!f.is_master_to_slave());
        assert!(Frame::Short {
            control: 0x40,
            address: 0
        }
        .is_master_to_slave());
    }

    #[test]
    fn short_frame_errors() {
        let e = parse(&[0x10, 0x5B, 0x05, 0x61, 0x16], 0).unwrap_err();
        assert_eq!(e.offset, 3);
        assert!(matches!(e.kind, ErrorKind::Checksum { .. }));
        let e = parse(&[0x10, 0x5B], 7).unwrap_err();
        assert_eq!(e, DecodeError::new(ErrorKind::Truncated { needed: 3 }, 9));
        assert!(parse(&[0x10, 0x40, 0x01, 0x41, 0x17], 0).is_err());
        assert_eq!(
            parse(&[0x42], 0).unwrap_err().kind,
            ErrorKind::UnknownFraming { found: 0x42 }
        );
    }
}

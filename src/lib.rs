//! # mbuspico
//!
//! Reads, decrypts and decodes what utility meters send on their customer ports:
//! DLMS/COSEM push over wired M-Bus as the Austrian meters send it (Kaifa MA309M and
//! Sagemcom T210-D of Netz NÖ, the KSM-West operators), with wired M-Bus
//! (EN 13757-2/-3) and DSMR P1 to follow.
//!
//! The core is pure Rust and never panics on input: every decoder returns a
//! [`DecodeError`] naming what was wrong and at which byte. The Python extension
//! module lives in `src/python/` behind the `python` feature.
//!
//! ```
//! use mbuspico::dlms::{decode, Key, Keys};
//! # fn main() -> Result<(), mbuspico::DecodeError> {
//! let frame = mbuspico::hex::decode(include_str!("../tests/data/dlms/netznoe_kaifa_ma309m_doc.hex")).unwrap();
//! let keys = Keys { key: Key::from_hex("36C66639E48A8CA4D6BC8B282A793BBB"), ..Keys::default() };
//! let reading = decode(&frame, &keys)?;
//! assert_eq!(reading.meter_number.as_deref(), Some("181220000009"));
//! assert_eq!(reading.timestamp.as_deref(), Some("2021-09-27T09:47:15+02:00"));
//! # Ok(()) }
//! ```
#![deny(unsafe_code)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)
)]

pub mod cursor;
pub mod dlms;
pub mod dsmr;
pub mod error;
pub mod framer;
pub mod hex;
pub mod hexdump;
pub mod mbus;
pub mod profile;
#[cfg(feature = "serial")]
pub mod serial;
pub mod stream;
pub mod value;

#[cfg(feature = "python")]
mod python;

pub use error::{Category, DecodeError, ErrorKind, Result};

/// Which protocol a telegram speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// DLMS/COSEM push: M-Bus frames with CI 0x00–0x1F (DLMS transport), a
    /// general-glo-ciphering APDU (0xDB) or a data-notification (0x0F).
    Dlms,
    /// Wired M-Bus, EN 13757-3 application data (any other CI-field).
    Mbus,
    /// DSMR P1 text telegram (starts with `/`).
    Dsmr,
}

/// Tells the protocol of a telegram from its first bytes: an M-Bus long frame
/// whose CI-field is a DLMS transport segment (0x00–0x1F) is DLMS, any other
/// long frame, short frame or single character is M-Bus; `/` starts a DSMR P1
/// telegram; anything else is treated as DLMS (whose decoder then says what is
/// wrong; an encrypted `0xDB` frame may still hold a P1 telegram).
pub fn detect(input: &[u8]) -> Protocol {
    match input.first() {
        Some(&mbus::frame::START) => match input.get(6) {
            Some(&ci) if ci <= dlms::transport::CI_MAX => Protocol::Dlms,
            Some(_) => Protocol::Mbus,
            None => Protocol::Dlms,
        },
        Some(&mbus::link::ACK | &mbus::link::SHORT_START) => Protocol::Mbus,
        Some(b'/') => Protocol::Dsmr,
        _ => Protocol::Dlms,
    }
}

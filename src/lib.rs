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
//! let keys = Keys { key: Key::from_hex("36C66639E48A8CA4D6BC8B282A793BBB"), auth_key: None };
//! let reading = decode(&frame, &keys)?;
//! assert_eq!(reading.meter_number.as_deref(), Some("181220000009"));
//! assert_eq!(reading.timestamp.as_deref(), Some("2021-09-27T09:47:15+02:00"));
//! # Ok(()) }
//! ```
#![deny(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::indexing_slicing))]

pub mod cursor;
pub mod dlms;
pub mod error;
pub mod hex;
pub mod mbus;
#[cfg(feature = "serial")]
pub mod serial;
pub mod stream;

#[cfg(feature = "python")]
mod python;

pub use error::{Category, DecodeError, ErrorKind, Result};

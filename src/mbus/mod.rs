//! Wired M-Bus link layer (EN 13757-2).
//!
//! For now the long frame `68 L L 68 C A CI … CS 16`, which also carries the DLMS
//! push of the Austrian customer interfaces (see [`crate::dlms::transport`]).

pub mod frame;

pub use frame::LongFrame;

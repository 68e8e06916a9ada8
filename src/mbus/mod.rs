//! Wired M-Bus (EN 13757-2 link layer, EN 13757-3 application layer).
//!
//! * [`frame`]: the long frame `68 L L 68 C A CI … CS 16`, which also carries the
//!   DLMS push of the Austrian customer interfaces (see [`crate::dlms::transport`]);
//! * [`link`]: every link-layer frame (E5, short, control, long), C- and A-fields.

pub mod frame;
pub mod link;

pub use frame::LongFrame;
pub use link::Frame;

//! The telegram finder of a serial port, whichever protocol family it carries:
//! M-Bus long frames and HDLC ([`crate::stream::Deframer`]: DLMS push, EN
//! 13757-3) or DSMR P1 text ([`crate::dsmr::stream::Framer`]). The blocking
//! reader and the Python `Deframer` hold one.

use crate::dsmr;
use crate::stream::{Deframer, Stats};

/// The telegram finder of a protocol family: M-Bus long frames (DLMS push and
/// EN 13757-3) or P1 text telegrams.
#[derive(Debug, Clone)]
pub enum Framer {
    /// M-Bus framing ([`Deframer`]).
    Mbus(Deframer),
    /// P1 telegrams ([`dsmr::stream::Framer`]).
    Dsmr(dsmr::stream::Framer),
}

impl Framer {
    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        match self {
            Framer::Mbus(f) => f.push(data),
            Framer::Dsmr(f) => f.push(data),
        }
    }

    /// The next complete telegram, or `None` when more bytes are needed.
    pub fn next_telegram(&mut self) -> Option<Vec<u8>> {
        match self {
            Framer::Mbus(f) => f.next_telegram(),
            Framer::Dsmr(f) => f.next_telegram(),
        }
    }

    /// Gives back a telegram the decoder could not verify, for rescanning
    /// (P1 encrypted frames, which only the decoder can verify; M-Bus telegrams
    /// are verified before they are handed out, so nothing happens for them).
    pub fn reject(&mut self, telegram: &[u8]) {
        if let Framer::Dsmr(f) = self {
            if telegram.first() == Some(&0xDB) {
                f.reject(telegram);
            }
        }
    }

    /// Ends the stream.
    pub fn finish(&mut self) {
        match self {
            Framer::Mbus(f) => f.finish(),
            Framer::Dsmr(f) => f.finish(),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        match self {
            Framer::Mbus(f) => f.stats(),
            Framer::Dsmr(f) => f.stats(),
        }
    }

    /// Bytes held back.
    pub fn buffered(&self) -> usize {
        match self {
            Framer::Mbus(f) => f.buffered(),
            Framer::Dsmr(f) => f.buffered(),
        }
    }
}

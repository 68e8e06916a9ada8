//! Finding P1 telegrams in a byte stream (sans-I/O), as [`crate::stream`] does
//! for M-Bus.
//!
//! A telegram starts with `/` and ends with the line after `!`; it is handed out
//! when that line end arrives, and only if its CRC verifies (or, DSMR 2.2/3.0,
//! when it has none). A `/` after the header line and before the `!` means the
//! previous telegram was cut off: it is dropped and counted. Encrypted frames
//! (`DB 08 …`, Luxembourg Smarty) are handed out when their length field says
//! they are complete; their tag is checked by the decoder. Anything else is
//! skipped and counted.
//!
//! Work is linear in the bytes pushed, also on input that never completes a
//! telegram (issue 19: headers over and over, never a `!`): bytes are skipped
//! by moving a read offset, and the searches for a telegram's end and for the
//! next start stop where the nearer of the two is found.

use super::telegram::{self, find_bang_from, trailer_end};
use crate::stream::{ByteQueue, Stats};

/// Longest telegram accepted (real ones reach 2.3 kB; the spec allows 1,024
/// characters of text message on top).
pub const MAX_TELEGRAM: usize = 8192;

/// A streaming P1 telegram finder: push bytes, pull telegrams.
#[derive(Debug, Clone, Default)]
pub struct Framer {
    buf: ByteQueue,
    stats: Stats,
    /// How far the telegram at the buffer start was already searched for its
    /// end and for a new start, without result: a telegram arriving byte by
    /// byte is then scanned once, not once per byte.
    scanned: usize,
}

/// Whether a telegram header may start at `i`: `/` and three letters (the
/// FLAG id, `ISk`, `KFM`, `Ene`, …), or the buffer ends before they arrive.
fn header_at(buf: &[u8], i: usize) -> bool {
    buf.get(i) == Some(&b'/') && (1..4).all(|k| buf.get(i + k).is_none_or(u8::is_ascii_alphabetic))
}

/// Whether a complete candidate verifies: its CRC matches, or, without a CRC
/// (DSMR 2.2/3.0), it is plain text (printable ASCII and line ends) — so that
/// binary data between a `/` and a `!` never passes as a telegram.
fn crc_ok(t: &[u8]) -> Option<bool> {
    let parsed = telegram::parse(t).ok()?;
    Some(match parsed.crc {
        telegram::Crc::Ok(_) => true,
        telegram::Crc::Mismatch { .. } => false,
        telegram::Crc::Missing => t
            .iter()
            .all(|&b| b == b'\r' || b == b'\n' || (0x20..0x7F).contains(&b)),
    })
}

impl Framer {
    /// An empty framer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.push(data);
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Bytes held back waiting for the rest of a telegram.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    fn skip(&mut self, n: usize) {
        let n = n.min(self.buf.len());
        self.buf.consume(n);
        self.stats.bytes_skipped += n as u64;
        if n > 0 {
            self.scanned = 0;
        }
    }

    /// Where the next candidate starts: a header (`/` and the three letters of
    /// the manufacturer's FLAG id, or too few bytes yet to tell) or `DB 08`.
    fn start(&self) -> usize {
        let buf = self.buf.live();
        if header_at(buf, 0) || buf.starts_with(&[0xDB, 0x08]) {
            return 0;
        }
        let slash = (0..buf.len()).find(|&i| header_at(buf, i));
        // Only a `DB 08` before the header counts: look no further.
        let before = slash.map_or(buf.len(), |a| a + 1);
        let db = buf
            .get(..before)
            .unwrap_or(buf)
            .windows(2)
            .position(|w| w == [0xDB, 0x08]);
        match (slash, db) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            // Keep a trailing 0xDB: its 0x08 may be on the way.
            (None, None) if buf.last() == Some(&0xDB) => buf.len() - 1,
            (None, None) => buf.len(),
        }
    }

    /// Length of the encrypted frame at the buffer start, if known yet.
    fn frame_len(&self) -> Option<usize> {
        let buf = self.buf.live();
        let len_at = 10;
        let first = *buf.get(len_at)?;
        Some(match first {
            0x00..=0x7F => len_at + 1 + usize::from(first),
            0x81 => len_at + 2 + usize::from(*buf.get(len_at + 1)?),
            0x82 => {
                let hi = usize::from(*buf.get(len_at + 1)?);
                let lo = usize::from(*buf.get(len_at + 2)?);
                len_at + 3 + (hi << 8 | lo)
            }
            _ => 0,
        })
    }

    /// The next complete telegram (or encrypted frame), or `None` when more
    /// bytes are needed.
    pub fn next_telegram(&mut self) -> Option<Vec<u8>> {
        loop {
            let start = self.start();
            self.skip(start);
            match self.buf.live().first() {
                None => return None,
                Some(&0xDB) => match self.frame_len() {
                    None if self.buf.len() < 13 => return None,
                    Some(len) if len > 13 && len <= MAX_TELEGRAM => {
                        if self.buf.len() < len {
                            return None;
                        }
                        self.stats.telegrams += 1;
                        self.scanned = 0;
                        return Some(self.buf.take(len));
                    }
                    _ => self.skip(1),
                },
                Some(_) => {
                    // A new telegram start at a line start before this one ended?
                    // A new header before this telegram's "!" means it was cut
                    // off (`/` + letters never occurs in a body: values are
                    // digits and hex).
                    // A text telegram never holds 0xDB either: `DB 08` restarts too.
                    // Bytes searched before may hold the first few bytes of a
                    // pattern that completes only now: look back a little.
                    let from = self.scanned.saturating_sub(8).max(1);
                    let buf = self.buf.live();
                    let restart = (from..buf.len()).find(|&i| {
                        (header_at(buf, i) && buf.get(i + 3).is_some())
                            || (buf.get(i) == Some(&0xDB) && buf.get(i + 1) == Some(&0x08))
                    });
                    // Only a `!` before the restart counts: look no further
                    // (the four bytes after one tell whether it ends the
                    // telegram; one found past the restart loses to it).
                    let bang = match restart {
                        Some(r) => find_bang_from(buf.get(..r + 5).unwrap_or(buf), from),
                        None => find_bang_from(buf, from),
                    };
                    match (bang, restart) {
                        (Some(b), Some(r)) if r < b => {
                            self.stats.incomplete_telegrams += 1;
                            self.skip(r);
                        }
                        (Some(b), _) => {
                            let Some(end) = trailer_end(buf, b) else {
                                if self.buf.len() > MAX_TELEGRAM {
                                    self.skip(1);
                                    continue;
                                }
                                return None;
                            };
                            let t = self.buf.take(end);
                            self.scanned = 0;
                            match crc_ok(&t) {
                                Some(true) => {
                                    self.stats.telegrams += 1;
                                    return Some(t);
                                }
                                Some(false) => {
                                    self.stats.bad_checksums += 1;
                                    self.stats.bytes_skipped += t.len() as u64;
                                }
                                None => self.stats.bytes_skipped += t.len() as u64,
                            }
                        }
                        (None, Some(r)) => {
                            self.stats.incomplete_telegrams += 1;
                            self.skip(r);
                        }
                        (None, None) if self.buf.len() > MAX_TELEGRAM => self.skip(1),
                        (None, None) => {
                            self.scanned = self.buf.len();
                            return None;
                        }
                    }
                }
            }
        }
    }

    /// Gives back an encrypted frame the decoder rejected (its tag did not
    /// verify): its first byte is skipped and the rest scanned again, so that a
    /// frame that lost a byte does not take the next frame's start with it.
    pub fn reject(&mut self, frame: &[u8]) {
        let Some(rest) = frame.get(1..) else {
            return;
        };
        self.buf.unshift(rest);
        self.scanned = 0;
        self.stats.telegrams = self.stats.telegrams.saturating_sub(1);
        self.stats.bytes_skipped += 1;
    }

    /// Ends the stream: what is buffered can no longer complete.
    pub fn finish(&mut self) {
        if self.buf.live().first() == Some(&b'/') {
            self.stats.incomplete_telegrams += 1;
        }
        let n = self.buf.len();
        self.skip(n);
    }
}

#[cfg(test)]
mod tests {
    use super::super::crc::crc16;
    use super::*;

    fn telegram(n: u32) -> Vec<u8> {
        let mut t =
            format!("/ISK5\\2M550T-1013\r\n\r\n1-0:1.8.1({n:06}.000*kWh)\r\n!").into_bytes();
        let crc = crc16(&t);
        t.extend_from_slice(format!("{crc:04X}\r\n").as_bytes());
        t
    }

    #[test]
    fn stream_with_garbage_and_a_cut_telegram() {
        let (a, b) = (telegram(1), telegram(2));
        let mut stream = b"xx!BAD0\r\n".to_vec(); // tail of an earlier telegram
        stream.extend_from_slice(&a[..20]); // cut off
        stream.extend_from_slice(&a);
        stream.extend_from_slice(b"\xff\xff");
        stream.extend_from_slice(&b);
        for chunk in [1, 3, 64, 4096] {
            let mut f = Framer::new();
            let mut out = Vec::new();
            for c in stream.chunks(chunk) {
                f.push(c);
                while let Some(t) = f.next_telegram() {
                    out.push(t);
                }
            }
            f.finish();
            assert_eq!(out, vec![a.clone(), b.clone()], "chunk {chunk}");
            assert_eq!(f.stats().incomplete_telegrams, 1, "chunk {chunk}");
        }
    }

    #[test]
    fn bad_crc_is_dropped() {
        let mut bad = telegram(1);
        bad[25] = b'9';
        let mut f = Framer::new();
        f.push(&bad);
        assert_eq!(f.next_telegram(), None);
        assert_eq!(f.stats().bad_checksums, 1);
        assert_eq!(crc_ok(&telegram(3)), Some(true));
    }

    #[test]
    fn every_prefix_waits() {
        let t = telegram(7);
        for cut in 0..t.len() {
            let mut f = Framer::new();
            f.push(&t[..cut]);
            assert_eq!(f.next_telegram(), None, "prefix {cut}");
            f.push(&t[cut..]);
            assert_eq!(f.next_telegram(), Some(t.clone()), "split {cut}");
        }
    }
}

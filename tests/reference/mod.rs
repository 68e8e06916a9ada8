//! The stream framers as they were before issue 19 (commit a3c2527,
//! `src/stream.rs` and `src/dsmr/stream.rs`, test modules left out), kept
//! verbatim as the reference the linear ones must agree with: the same
//! telegrams, at the same calls, and the same counters. Only the paths
//! changed (the crate's public API instead of `crate::`/`super::`), and the
//! counters and limits are the crate's.
#![allow(dead_code, missing_docs)]

/// `mbuspico::stream::Deframer` before issue 19.
pub mod deframer {
    use mbuspico::dlms::{gbt, hdlc, transport};
    use mbuspico::error::ErrorKind;
    use mbuspico::mbus::frame::{LongFrame, START};
    pub use mbuspico::stream::Stats;

    use mbuspico::stream::{MAX_GBT_BLOCKS, MAX_HDLC_TELEGRAM};

    /// A streaming telegram finder: push bytes, pull telegrams.
    ///
    /// Its whole state (buffer, counters, what was dropped last) serializes with
    /// serde, so a deframer can be saved and resumed (Python pickling).
    #[derive(Debug, Clone, Default, serde::Serialize)]
    pub struct Deframer {
        buf: Vec<u8>,
        stats: Stats,
        /// The frame dropped just before, if the last thing done was dropping a
        /// segment or GBT block: its successor belongs to the same lost telegram.
        last_dropped: Option<Dropped>,
        /// Buffer length below which the HDLC telegram at the start of the buffer
        /// cannot be complete (0: try now); spares re-reading a long GBT push
        /// on every byte.
        hdlc_wait: usize,
        /// The last telegram handed out was HDLC and ended in a flag, and nothing
        /// came since: a frame format byte next means that flag opens it too.
        flag_may_open: bool,
    }

    /// What the frame dropped last belonged to.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
    enum Dropped {
        /// A DLMS transport segment with this sequence number.
        Segment(u8),
        /// A GBT block with this block number.
        Block(u16),
    }

    /// Whether an error means the buffer simply ended too early.
    fn needs_more(kind: &ErrorKind, offset: usize, buffered: usize) -> bool {
        matches!(
            kind,
            ErrorKind::Truncated { .. }
                | ErrorKind::MissingSegment { .. }
                | ErrorKind::GbtIncomplete { .. }
        ) && offset >= buffered
    }

    /// The GBT block number a verified HDLC frame carries (its information field,
    /// after an LLC header if there is one, starts with a GBT block header).
    fn gbt_block_number(frame: &hdlc::HdlcFrame<'_>) -> Option<u16> {
        let info = frame.info;
        let block = match info.get(..hdlc::LLC.len()) {
            Some(llc) if llc == hdlc::LLC || llc == hdlc::LLC_COMMAND => {
                info.get(hdlc::LLC.len()..).unwrap_or_default()
            }
            _ => info,
        };
        gbt::parse_block(block, 0).ok().map(|b| b.number)
    }

    impl Deframer {
        /// An empty deframer.
        pub fn new() -> Self {
            Self::default()
        }

        /// Appends received bytes.
        pub fn push(&mut self, data: &[u8]) {
            self.buf.extend_from_slice(data);
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
            self.buf.drain(..n);
            self.stats.bytes_skipped += n as u64;
            if n > 0 {
                self.last_dropped = None;
                self.hdlc_wait = 0;
            }
        }

        /// Hands out the first `n` buffered bytes as a telegram.
        fn take(&mut self, n: usize) -> Vec<u8> {
            let n = n.min(self.buf.len());
            let telegram: Vec<u8> = self.buf.drain(..n).collect();
            self.stats.telegrams += 1;
            self.last_dropped = None;
            self.hdlc_wait = 0;
            self.flag_may_open = false;
            telegram
        }

        /// A frame right after an HDLC telegram that starts with its format byte
        /// (`0xA_`) shares the telegram's closing flag: put a copy of the flag back
        /// in front of it, counted in [`Stats::shared_flags`].
        fn share_flag(&mut self) {
            if std::mem::take(&mut self.flag_may_open)
                && self
                    .buf
                    .first()
                    .is_some_and(|&b| b & 0xF0 == hdlc::FORMAT_TYPE_3)
            {
                self.buf.insert(0, hdlc::FLAG);
                self.stats.shared_flags += 1;
            }
        }

        /// Drops a verified frame that does not complete a telegram.
        fn drop_frame(&mut self, frame_len: usize, segment: Option<u8>) {
            if let Some(seq) = segment {
                let continues = seq != 0
                    && self.last_dropped == Some(Dropped::Segment(seq.wrapping_sub(1) & 0x0F));
                if !continues {
                    self.stats.incomplete_telegrams += 1;
                }
            }
            self.skip(frame_len);
            self.last_dropped = segment.map(Dropped::Segment);
        }

        /// Drops the HDLC frame at the start of the buffer, which does not start a
        /// telegram that can complete: a verified frame is counted as an incomplete
        /// telegram (once per run of GBT blocks 1, 2, 3, … of the same lost push) and
        /// skipped whole; anything else is skipped one byte.
        fn drop_hdlc_frame(&mut self) {
            match hdlc::HdlcFrame::parse(&self.buf, 0) {
                Ok(frame) => {
                    let block = gbt_block_number(&frame);
                    let continues = block.is_some_and(|n| {
                        n > 1 && self.last_dropped == Some(Dropped::Block(n.wrapping_sub(1)))
                    });
                    if !continues {
                        self.stats.incomplete_telegrams += 1;
                    }
                    let len = frame.frame_len;
                    self.skip(len);
                    self.last_dropped = block.map(Dropped::Block);
                }
                Err(first) => {
                    if first.kind.category() == mbuspico::error::Category::Checksum {
                        self.stats.bad_checksums += 1;
                    }
                    self.skip(1);
                }
            }
        }

        /// The next complete, verified telegram (its raw frames), or `None` when more
        /// bytes are needed.
        pub fn next_telegram(&mut self) -> Option<Vec<u8>> {
            if self.flag_may_open && !self.buf.is_empty() {
                self.share_flag();
            }
            loop {
                let start = self
                    .buf
                    .iter()
                    .position(|&b| b == START || b == hdlc::FLAG)
                    .unwrap_or(self.buf.len());
                self.skip(start);
                if self.buf.is_empty() {
                    return None;
                }
                if self.buf.first() == Some(&hdlc::FLAG) {
                    match self.next_hdlc() {
                        Some(Some(telegram)) => return Some(telegram),
                        Some(None) => continue,
                        None => return None,
                    }
                }
                if let Ok(frame) = LongFrame::parse(&self.buf, 0) {
                    if transport::segment_info(&frame).is_err() {
                        // An M-Bus telegram: one frame is the whole telegram.
                        return Some(self.take(frame.frame_len));
                    }
                }
                match transport::reassemble(&self.buf) {
                    Ok(r) => return Some(self.take(r.consumed)),
                    Err(e) if needs_more(&e.kind, e.offset, self.buf.len()) => return None,
                    Err(_) => match LongFrame::parse(&self.buf, 0) {
                        // The first frame is fine; the telegram it starts is not.
                        Ok(frame) => {
                            let segment = transport::segment_info(&frame).ok().map(|(seq, _)| seq);
                            self.drop_frame(frame.frame_len, segment);
                        }
                        Err(first) => {
                            if matches!(first.kind, ErrorKind::Checksum { .. }) {
                                self.stats.bad_checksums += 1;
                            }
                            self.skip(1);
                        }
                    },
                }
            }
        }

        /// The HDLC telegram (IEC 62056-46 frames of one push) at the start of the
        /// buffer: `Some(Some(..))` handed out, `Some(None)` something was skipped
        /// (try again), `None` more bytes are needed. The HCS is checked as soon as
        /// a frame's header is in, so a stray 0x7E never holds the stream for long.
        ///
        /// A general block transfer (the first APDU starts with 0xE0) is one
        /// telegram from the frame with block 1 to the frame with the last block.
        /// When its blocks cannot complete (out of order, a broken or foreign frame
        /// after the first, more than [`MAX_GBT_BLOCKS`] blocks) the first frame is
        /// dropped and the search goes on after it, so the next push is found.
        fn next_hdlc(&mut self) -> Option<Option<Vec<u8>>> {
            if self.buf.len() < self.hdlc_wait {
                return None;
            }
            let result = hdlc::reassemble(&self.buf).and_then(|r| {
                if r.apdu.first() == Some(&hdlc::GENERAL_BLOCK_TRANSFER) {
                    gbt::reassemble(&self.buf, r)
                } else {
                    Ok(r)
                }
            });
            match result {
                Ok(r) if r.segments <= MAX_GBT_BLOCKS && r.consumed <= MAX_HDLC_TELEGRAM => {
                    let telegram = self.take(r.consumed);
                    self.flag_may_open = telegram.last() == Some(&hdlc::FLAG);
                    if !self.buf.is_empty() {
                        self.share_flag();
                    }
                    Some(Some(telegram))
                }
                Err(e)
                    if needs_more(&e.kind, e.offset, self.buf.len())
                        && self.buf.len() <= MAX_HDLC_TELEGRAM
                        && !matches!(e.kind, ErrorKind::GbtIncomplete { expected }
                            if usize::from(expected) > MAX_GBT_BLOCKS) =>
                {
                    // Nothing can change before the missing bytes are in (less
                    // two: a frame may share its opening flag with the one before).
                    let needed = match e.kind {
                        ErrorKind::Truncated { needed } => needed.saturating_sub(2),
                        _ => 0,
                    };
                    self.hdlc_wait = self.buf.len() + needed.max(1);
                    None
                }
                _ => {
                    self.drop_hdlc_frame();
                    Some(None)
                }
            }
        }

        /// Ends the stream: whatever is still buffered can no longer complete and is
        /// counted as skipped (and as an incomplete telegram if it holds verified
        /// segments).
        pub fn finish(&mut self) {
            loop {
                if let Ok(frame) = LongFrame::parse(&self.buf, 0) {
                    let segment = transport::segment_info(&frame).ok().map(|(seq, _)| seq);
                    self.drop_frame(frame.frame_len, segment);
                } else if hdlc::HdlcFrame::parse(&self.buf, 0).is_ok() {
                    self.drop_hdlc_frame();
                } else {
                    break;
                }
            }
            let n = self.buf.len();
            self.skip(n);
        }
    }
}

/// `mbuspico::dsmr::stream::Framer` before issue 19.
pub mod p1 {
    use mbuspico::dsmr::telegram::{self, find_bang_from, trailer_end};
    use mbuspico::stream::Stats;

    pub use mbuspico::dsmr::stream::MAX_TELEGRAM;

    /// A streaming P1 telegram finder: push bytes, pull telegrams.
    #[derive(Debug, Clone, Default)]
    pub struct Framer {
        buf: Vec<u8>,
        stats: Stats,
        /// How far the telegram at the buffer start was already searched for its
        /// end and for a new start, without result: a telegram arriving byte by
        /// byte is then scanned once, not once per byte.
        scanned: usize,
    }

    /// Whether a telegram header may start at `i`: `/` and three letters (the
    /// FLAG id, `ISk`, `KFM`, `Ene`, …), or the buffer ends before they arrive.
    fn header_at(buf: &[u8], i: usize) -> bool {
        buf.get(i) == Some(&b'/')
            && (1..4).all(|k| buf.get(i + k).is_none_or(u8::is_ascii_alphabetic))
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
            self.buf.extend_from_slice(data);
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
            self.buf.drain(..n);
            self.stats.bytes_skipped += n as u64;
            if n > 0 {
                self.scanned = 0;
            }
        }

        /// Where the next candidate starts: a header (`/` and the three letters of
        /// the manufacturer's FLAG id, or too few bytes yet to tell) or `DB 08`.
        fn start(&self) -> usize {
            if header_at(&self.buf, 0) || self.buf.starts_with(&[0xDB, 0x08]) {
                return 0;
            }
            let slash = (0..self.buf.len()).find(|&i| header_at(&self.buf, i));
            let db = self.buf.windows(2).position(|w| w == [0xDB, 0x08]);
            match (slash, db) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) => a,
                (None, Some(b)) => b,
                // Keep a trailing 0xDB: its 0x08 may be on the way.
                (None, None) if self.buf.last() == Some(&0xDB) => self.buf.len() - 1,
                (None, None) => self.buf.len(),
            }
        }

        /// Length of the encrypted frame at the buffer start, if known yet.
        fn frame_len(&self) -> Option<usize> {
            let len_at = 10;
            let first = *self.buf.get(len_at)?;
            Some(match first {
                0x00..=0x7F => len_at + 1 + usize::from(first),
                0x81 => len_at + 2 + usize::from(*self.buf.get(len_at + 1)?),
                0x82 => {
                    let hi = usize::from(*self.buf.get(len_at + 1)?);
                    let lo = usize::from(*self.buf.get(len_at + 2)?);
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
                match self.buf.first() {
                    None => return None,
                    Some(&0xDB) => match self.frame_len() {
                        None if self.buf.len() < 13 => return None,
                        Some(len) if len > 13 && len <= MAX_TELEGRAM => {
                            if self.buf.len() < len {
                                return None;
                            }
                            self.stats.telegrams += 1;
                            self.scanned = 0;
                            return Some(self.buf.drain(..len).collect());
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
                        let restart = (from..self.buf.len()).find(|&i| {
                            (header_at(&self.buf, i) && self.buf.get(i + 3).is_some())
                                || (self.buf.get(i) == Some(&0xDB)
                                    && self.buf.get(i + 1) == Some(&0x08))
                        });
                        let bang = find_bang_from(&self.buf, from);
                        match (bang, restart) {
                            (Some(b), Some(r)) if r < b => {
                                self.stats.incomplete_telegrams += 1;
                                self.skip(r);
                            }
                            (Some(b), _) => {
                                let Some(end) = trailer_end(&self.buf, b) else {
                                    if self.buf.len() > MAX_TELEGRAM {
                                        self.skip(1);
                                        continue;
                                    }
                                    return None;
                                };
                                let t: Vec<u8> = self.buf.drain(..end).collect();
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
            let mut buf = rest.to_vec();
            buf.extend_from_slice(&self.buf);
            self.buf = buf;
            self.scanned = 0;
            self.stats.telegrams = self.stats.telegrams.saturating_sub(1);
            self.stats.bytes_skipped += 1;
        }

        /// Ends the stream: what is buffered can no longer complete.
        pub fn finish(&mut self) {
            if !self.buf.is_empty() && self.buf.first() == Some(&b'/') {
                self.stats.incomplete_telegrams += 1;
            }
            let n = self.buf.len();
            self.skip(n);
        }
    }
}

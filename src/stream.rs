//! Finding verified telegrams in a byte stream (sans-I/O).
//!
//! [`Deframer`] takes bytes in any chunking and hands out complete telegrams whose
//! every frame passed its length, stop-byte and checksum checks: DLMS push
//! telegrams whose transport segments (CI 0x00–0x1F) arrived complete and in
//! order, single M-Bus long frames with any other CI-field (EN 13757-3 data), and
//! DLMS pushes in HDLC type 3 frames (`7E A0 …`, HCS and FCS verified; Wiener
//! Netze, Netz Burgenland), including general block transfers (Landis+Gyr
//! E450/E570: one HDLC frame per block, handed out as one telegram from block 1
//! to the last block). Input that ends inside a
//! frame is "need more bytes" ([`Deframer::next_telegram`] returns `None`), never an
//! error. Anything else is skipped one byte at a time until the next verified frame
//! start, and counted in [`Stats`].
//!
//! Invariant: every byte pushed is either part of a telegram handed out, counted in
//! [`Stats::bytes_skipped`], or still buffered ([`Deframer::buffered`]); an HDLC
//! flag shared by two frames is in both telegrams ([`Stats::shared_flags`]).
//!
//! Work is linear in the bytes pushed, also on input made to look like frames
//! (issue 19): skipping a byte moves a read offset instead of the buffered
//! bytes, and a frame candidate at the buffer start is first checked against
//! running sums and CRCs of the buffer ([`Buffer`]), so one that fails its
//! M-Bus checksum or HDLC FCS costs constant time, however long it claims to
//! be. Only a candidate whose first frame verifies is parsed in full.

use crate::dlms::hdlc::X25; // CRC-16/X.25, table-driven
use crate::dlms::{gbt, hdlc, transport};
use crate::error::{Category, ErrorKind};
use crate::mbus::frame::{LongFrame, START, STOP};

/// Counters of what the deframer did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// Telegrams handed out.
    pub telegrams: u64,
    /// Bytes that were not part of any telegram handed out (garbage, broken frames,
    /// incomplete telegrams).
    pub bytes_skipped: u64,
    /// Frame candidates (`68 L L 68` with enough bytes) whose checksum failed.
    pub bad_checksums: u64,
    /// Telegrams dropped incomplete: verified segments whose telegram lost a
    /// segment (or arrived out of order), counted once per telegram.
    pub incomplete_telegrams: u64,
    /// HDLC flags that closed one frame and opened the next (ISO/IEC 13239
    /// allows one flag between frames; a meter's own opening flag may also be
    /// lost): such a flag is in both telegrams handed out, so bytes in
    /// telegrams + skipped = bytes pushed + shared flags.
    pub shared_flags: u64,
}

/// Most blocks a general block transfer may have; a longer one is dropped.
pub const MAX_GBT_BLOCKS: usize = 64;
/// Most bytes an HDLC telegram (all its frames) may take while it is being
/// collected; a longer one is dropped, so a stream never buffers without bound.
pub const MAX_HDLC_TELEGRAM: usize = MAX_GBT_BLOCKS * (hdlc::MAX_LENGTH + 2);

/// A byte queue: bytes are appended at the end and consumed from the front
/// by moving a read offset, so consuming is O(1) whatever is buffered; the
/// consumed bytes are dropped when appending, once they are at least as many
/// as the live ones (amortized O(1) per byte).
#[derive(Debug, Clone, Default)]
pub(crate) struct ByteQueue {
    data: Vec<u8>,
    /// Offset of the first live byte in `data`.
    head: usize,
}

impl ByteQueue {
    /// A queue holding `bytes`.
    pub(crate) fn from_vec(bytes: Vec<u8>) -> Self {
        ByteQueue {
            data: bytes,
            head: 0,
        }
    }

    /// The live bytes.
    pub(crate) fn live(&self) -> &[u8] {
        self.data.get(self.head..).unwrap_or_default()
    }

    /// How many bytes are live.
    pub(crate) fn len(&self) -> usize {
        self.data.len().saturating_sub(self.head)
    }

    /// Whether no byte is live.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `bytes`; returns by how much the offsets of the bytes already
    /// in `data` moved down (the consumed bytes dropped first), usually 0.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> usize {
        let dropped = if self.head > 0 && self.head >= self.len() {
            let head = std::mem::take(&mut self.head);
            self.data.drain(..head);
            head
        } else {
            0
        };
        self.data.extend_from_slice(bytes);
        dropped
    }

    /// Consumes the first `n` live bytes (at most all of them); returns
    /// whether the queue is now empty (and `data` cleared).
    pub(crate) fn consume(&mut self, n: usize) -> bool {
        self.head = self.head.saturating_add(n).min(self.data.len());
        if self.head == self.data.len() {
            self.data.clear();
            self.head = 0;
            return true;
        }
        false
    }

    /// Consumes and returns the first `n` live bytes (at most all of them).
    pub(crate) fn take(&mut self, n: usize) -> Vec<u8> {
        let live = self.live();
        let taken = live.get(..n).unwrap_or(live).to_vec();
        self.consume(n);
        taken
    }

    /// Puts `bytes` back in front of the live bytes; returns whether the
    /// offsets of the bytes in `data` stayed the same (the bytes went where
    /// consumed ones were).
    pub(crate) fn unshift(&mut self, bytes: &[u8]) -> bool {
        if let Some(at) = self.head.checked_sub(bytes.len()) {
            if let Some(slot) = self.data.get_mut(at..self.head) {
                slot.copy_from_slice(bytes);
                self.head = at;
                return true;
            }
        }
        let mut data = Vec::with_capacity(bytes.len() + self.len());
        data.extend_from_slice(bytes);
        data.extend_from_slice(self.live());
        *self = ByteQueue::from_vec(data);
        false
    }
}

/// Running values (8-bit sums, CRC registers) over a stretch of a byte
/// buffer, computed as far as they are asked for: `states[i]` is the value
/// after the bytes `from..from + i`, from an arbitrary start value. The value
/// over any stretch `a..b` inside follows from the values at `a` and `b`.
#[derive(Debug, Clone, Default)]
struct Running<T> {
    from: usize,
    states: Vec<T>,
}

impl<T: Copy + Default> Running<T> {
    /// The values at offsets `a` and `b` of `data` (`a <= b <= data.len()`),
    /// computing those missing with `step`; `None` when out of range.
    fn at(&mut self, data: &[u8], a: usize, b: usize, step: impl Fn(T, u8) -> T) -> Option<(T, T)> {
        if a < self.from || a >= self.from + self.states.len() {
            self.from = a;
            self.states.clear();
            self.states.push(T::default());
        }
        let done = self.from + self.states.len() - 1;
        if b > done {
            let state = *self.states.last()?;
            let more = data.get(done..b)?.iter().scan(state, |state, &byte| {
                *state = step(*state, byte);
                Some(*state)
            });
            self.states.extend(more);
        }
        let first = *self.states.get(a - self.from)?;
        let last = *self.states.get(b.checked_sub(self.from)?)?;
        Some((first, last))
    }

    /// The offsets of the buffer moved down by `n`.
    fn shift(&mut self, n: usize) {
        if let Some(from) = self.from.checked_sub(n) {
            self.from = from;
        } else {
            let dead = n - self.from;
            self.states.drain(..dead.min(self.states.len()));
            self.from = 0;
        }
    }

    fn clear(&mut self) {
        self.states.clear();
    }
}

/// CRC-16/X.25 ([`hdlc::crc16_x25`]) over any stretch of a buffer from the
/// CRC registers at its ends ([`Running`]): the CRC is linear, so the
/// register after `n` bytes from start value `r` is the register after the
/// same bytes from 0, XOR the register after `n` zero bytes from `r`.
mod x25 {
    use std::sync::OnceLock;

    /// The reflected polynomial.
    const POLY: u16 = 0x8408;
    /// Powers of two up to which zero runs are tabled: a stretch of at most
    /// 2^LEVELS - 1 bytes (an HDLC frame has at most 2047).
    const LEVELS: usize = 12;

    /// A linear map of registers as two tables: `r` goes to
    /// `[0][r & 0xFF] ^ [1][r >> 8]`.
    type Map = [[u16; 256]; 2];

    pub(super) struct Tables {
        /// The register after one zero byte from `i`.
        byte: [u16; 256],
        /// `zeros[k]`: the register after 2^k zero bytes.
        zeros: [Map; LEVELS],
    }

    /// The register after one zero byte from `r`.
    fn zero_byte(mut r: u16) -> u16 {
        for _ in 0..8 {
            r = if r & 1 != 0 { (r >> 1) ^ POLY } else { r >> 1 };
        }
        r
    }

    fn apply(map: &Map, r: u16) -> u16 {
        let [lo, hi] = map;
        lo.get(usize::from(r as u8)).copied().unwrap_or_default()
            ^ hi.get(usize::from(r >> 8)).copied().unwrap_or_default()
    }

    /// The map taking single-bit register `1 << j` to `columns[j]`.
    fn map(columns: &[u16; 16]) -> Map {
        std::array::from_fn(|half| {
            std::array::from_fn(|v| {
                columns
                    .iter()
                    .skip(half * 8)
                    .take(8)
                    .enumerate()
                    .filter(|&(bit, _)| (v >> bit) & 1 != 0)
                    .fold(0, |r, (_, &c)| r ^ c)
            })
        })
    }

    /// The tables, made on first use.
    pub(super) fn tables() -> &'static Tables {
        static TABLES: OnceLock<Tables> = OnceLock::new();
        TABLES.get_or_init(|| {
            let mut columns: [u16; 16] = std::array::from_fn(|j| zero_byte(1 << j));
            let mut zeros = [[[0u16; 256]; 2]; LEVELS];
            for level in &mut zeros {
                *level = map(&columns);
                // Twice as many zero bytes: each column through this level again.
                columns = columns.map(|c| apply(level, c));
            }
            Tables {
                byte: std::array::from_fn(|i| zero_byte(i as u16)),
                zeros,
            }
        })
    }

    impl Tables {
        /// The register after `byte` from `r`.
        pub(super) fn step(&self, r: u16, byte: u8) -> u16 {
            let i = usize::from((r ^ u16::from(byte)) as u8);
            (r >> 8) ^ self.byte.get(i).copied().unwrap_or_default()
        }

        /// CRC-16/X.25 of the `n` bytes between the registers `a` and `b`
        /// (`b` the register after them from `a`); `None` for `n` of
        /// 2^LEVELS or more.
        pub(super) fn crc(&self, a: u16, b: u16, n: usize) -> Option<u16> {
            if n >> LEVELS != 0 {
                return None;
            }
            // The register after `n` zero bytes from `a ^ 0xFFFF`.
            let mut r = a ^ 0xFFFF;
            for (k, level) in self.zeros.iter().enumerate() {
                if (n >> k) & 1 != 0 {
                    r = apply(level, r);
                }
            }
            Some(!(b ^ r))
        }
    }
}

/// The deframer's buffer: the bytes pushed and neither handed out nor
/// skipped, with their running 8-bit sums (M-Bus checksum) and CRC-16/X.25
/// registers (HDLC FCS), computed on demand, so the checksum of any stretch
/// is found in constant time. A stretch that does not reach back into one
/// checked before is checked directly instead (faster, and each byte is so
/// read at most once). It serializes as the bytes alone.
#[derive(Debug, Clone, Default)]
struct Buffer {
    queue: ByteQueue,
    sums: Running<u8>,
    /// Offset in `queue.data` up to which bytes were summed directly: a
    /// stretch after it is summed directly (faster than the running sums,
    /// and each byte so at most once), one reaching back before it from the
    /// running sums.
    summed: usize,
    crcs: Running<u16>,
    /// Offset in `queue.data` up to which CRCs were computed directly: as
    /// with `summed`.
    crc_direct: usize,
}

impl Buffer {
    fn live(&self) -> &[u8] {
        self.queue.live()
    }

    fn len(&self) -> usize {
        self.queue.len()
    }

    fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    fn push(&mut self, bytes: &[u8]) {
        let moved = self.queue.push(bytes);
        if moved > 0 {
            self.sums.shift(moved);
            self.summed = self.summed.saturating_sub(moved);
            self.crcs.shift(moved);
            self.crc_direct = self.crc_direct.saturating_sub(moved);
        }
    }

    fn consume(&mut self, n: usize) {
        if self.queue.consume(n) {
            self.clear_running();
        }
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        let taken = self.queue.take(n);
        if self.queue.is_empty() {
            self.clear_running();
        }
        taken
    }

    fn clear_running(&mut self) {
        self.sums.clear();
        self.summed = 0;
        self.crcs.clear();
        self.crc_direct = 0;
    }

    /// Puts an HDLC flag in front of the live bytes.
    fn unshift_flag(&mut self) {
        let head = self.queue.head;
        let same = head > 0 && self.queue.data.get(head - 1) == Some(&hdlc::FLAG);
        // Running values stay right if the byte before was that flag already.
        if !self.queue.unshift(&[hdlc::FLAG]) || !same {
            self.clear_running();
        }
    }

    /// The 8-bit sum of the live bytes `a..b`.
    fn sum(&mut self, a: usize, b: usize) -> Option<u8> {
        let (a, b) = (self.queue.head + a, self.queue.head + b);
        if a >= self.summed {
            let bytes = self.queue.data.get(a..b)?;
            self.summed = b;
            return Some(bytes.iter().fold(0u8, |acc, &x| acc.wrapping_add(x)));
        }
        let (x, y) = self.sums.at(&self.queue.data, a, b, u8::wrapping_add)?;
        Some(y.wrapping_sub(x))
    }

    /// The CRC-16/X.25 of the live bytes `a..b`.
    fn crc16_x25(&mut self, a: usize, b: usize) -> Option<u16> {
        let (a, b) = (self.queue.head + a, self.queue.head + b);
        if a >= self.crc_direct {
            let bytes = self.queue.data.get(a..b)?;
            self.crc_direct = b;
            return Some(X25.checksum(bytes));
        }
        let tables = x25::tables();
        let (x, y) = self
            .crcs
            .at(&self.queue.data, a, b, |r, byte| tables.step(r, byte))?;
        tables.crc(x, y, b.checked_sub(a)?)
    }
}

impl serde::Serialize for Buffer {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.live().serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for Buffer {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Buffer {
            queue: ByteQueue::from_vec(Vec::deserialize(deserializer)?),
            ..Buffer::default()
        })
    }
}

/// What the first frame of a candidate at the buffer start comes to, found
/// in constant time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Candidate {
    /// The frame verifies: read the telegram it starts.
    Verified,
    /// The buffer ends inside the frame, `needed` bytes short or more
    /// (HDLC; 0 for M-Bus, not worked out).
    Truncated { needed: usize },
    /// The frame fails; `checksum` when it is its checksum (M-Bus) or HCS or
    /// FCS (HDLC) that fails.
    Broken { checksum: bool },
}

/// What the header of an HDLC frame comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HdlcHeader {
    /// The input ends inside the header.
    Truncated,
    /// The header is broken; `checksum` when it is its HCS.
    Broken { checksum: bool },
    /// The header is fine (and its HCS, if it has one); the closing flag is
    /// at `end`.
    Fine { end: usize },
}

/// The header of the HDLC frame whose opening flag is `input[0]`, checked as
/// [`hdlc::HdlcFrame::parse`] checks it, in the same order: flag, format
/// type, destination and source address (1, 2 or 4 bytes, the last with
/// LSB 1), control, then either no HCS (length field = header + FCS) or an
/// HCS that must match (length field at least header + HCS + FCS).
fn hdlc_header(input: &[u8]) -> HdlcHeader {
    let byte = |at: usize| input.get(at).copied();
    let broken = HdlcHeader::Broken { checksum: false };
    let (Some(flag), Some(f0)) = (byte(0), byte(1)) else {
        return match byte(0) {
            Some(flag) if flag != hdlc::FLAG => broken,
            _ => HdlcHeader::Truncated,
        };
    };
    if flag != hdlc::FLAG || f0 & 0xF0 != hdlc::FORMAT_TYPE_3 {
        return broken;
    }
    let Some(f1) = byte(2) else {
        return HdlcHeader::Truncated;
    };
    let length = (usize::from(f0 & 0x07) << 8) | usize::from(f1);
    // Destination, then source address.
    let mut at = 3;
    for _ in 0..2 {
        let mut len = 1;
        loop {
            let Some(b) = byte(at + len - 1) else {
                return HdlcHeader::Truncated;
            };
            if b & 1 == 1 {
                if len == 3 {
                    return broken;
                }
                break;
            }
            if len == 4 {
                return broken;
            }
            len += 1;
        }
        at += len;
    }
    // The control field.
    if byte(at).is_none() {
        return HdlcHeader::Truncated;
    }
    let header_end = at + 1;
    // Format to control, and the FCS.
    let minimum = header_end + 1;
    if length >= minimum + 2 {
        let (Some(lo), Some(hi), Some(header)) = (
            byte(header_end),
            byte(header_end + 1),
            input.get(1..header_end),
        ) else {
            return HdlcHeader::Truncated;
        };
        if X25.checksum(header) != u16::from_le_bytes([lo, hi]) {
            return HdlcHeader::Broken { checksum: true };
        }
    } else if length != minimum {
        return broken;
    }
    HdlcHeader::Fine { end: 1 + length }
}

/// A streaming telegram finder: push bytes, pull telegrams.
///
/// Its whole state (buffer, counters, what was dropped last) serializes with
/// serde, so a deframer can be saved and resumed (Python pickling).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Deframer {
    buf: Buffer,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
            self.last_dropped = None;
            self.hdlc_wait = 0;
        }
    }

    /// Hands out the first `n` buffered bytes as a telegram.
    fn take(&mut self, n: usize) -> Vec<u8> {
        let telegram = self.buf.take(n);
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
                .live()
                .first()
                .is_some_and(|&b| b & 0xF0 == hdlc::FORMAT_TYPE_3)
        {
            self.buf.unshift_flag();
            self.stats.shared_flags += 1;
        }
    }

    /// Drops a verified frame that does not complete a telegram.
    fn drop_frame(&mut self, frame_len: usize, segment: Option<u8>) {
        if let Some(seq) = segment {
            let continues =
                seq != 0 && self.last_dropped == Some(Dropped::Segment(seq.wrapping_sub(1) & 0x0F));
            if !continues {
                self.stats.incomplete_telegrams += 1;
            }
        }
        self.skip(frame_len);
        self.last_dropped = segment.map(Dropped::Segment);
    }

    /// Skips the first byte of a candidate whose first frame is broken.
    fn drop_broken(&mut self, checksum: bool) {
        if checksum {
            self.stats.bad_checksums += 1;
        }
        self.skip(1);
    }

    /// Drops the HDLC frame at the start of the buffer, which does not start a
    /// telegram that can complete: a verified frame is counted as an incomplete
    /// telegram (once per run of GBT blocks 1, 2, 3, … of the same lost push) and
    /// skipped whole; anything else is skipped one byte.
    fn drop_hdlc_frame(&mut self) {
        match hdlc::HdlcFrame::parse(self.buf.live(), 0) {
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
            Err(first) => self.drop_broken(first.kind.category() == Category::Checksum),
        }
    }

    /// What the M-Bus long frame at the buffer start comes to, as
    /// [`LongFrame::parse`] finds it (Sagemcom body of L + 256 bytes
    /// included), its checksums from the running sums.
    fn long_frame_candidate(&mut self) -> Candidate {
        let live = self.buf.live();
        let (Some(&start), Some(&first), Some(&second), Some(&start2)) =
            (live.first(), live.get(1), live.get(2), live.get(3))
        else {
            return Candidate::Truncated { needed: 0 };
        };
        if start != START || start2 != START || first != second {
            return Candidate::Broken { checksum: false };
        }
        let declared = usize::from(first);
        // Whether the L-field reading failed at its checksum (rather than at
        // the stop byte, or by being too short to be a frame).
        let mut checksum = false;
        if declared >= 3 {
            match self.long_body(declared) {
                None => return Candidate::Truncated { needed: 0 },
                Some((true, true)) => return Candidate::Verified,
                Some((sum_ok, _)) => checksum = !sum_ok,
            }
        }
        match self.long_body(declared + 256) {
            Some((true, true)) => Candidate::Verified,
            None if declared < 3 => Candidate::Truncated { needed: 0 },
            _ => Candidate::Broken { checksum },
        }
    }

    /// Whether the checksum and the stop byte of a long frame with a body of
    /// `len` bytes at the buffer start are right; `None` while the buffer ends
    /// before its stop byte.
    fn long_body(&mut self, len: usize) -> Option<(bool, bool)> {
        let live = self.buf.live();
        let (&checksum, &stop) = (live.get(4 + len)?, live.get(5 + len)?);
        let sum = self.buf.sum(4, 4 + len)?;
        Some((sum == checksum, stop == STOP))
    }

    /// What the HDLC frame at the buffer start comes to, as
    /// [`hdlc::HdlcFrame::parse`] finds it: its header read as that reads it
    /// ([`hdlc_header`]), its FCS from the running CRCs.
    fn hdlc_frame_candidate(&mut self) -> Candidate {
        let live = self.buf.live();
        match hdlc_header(live) {
            // A header field is missing: `parse` asks for one more byte.
            HdlcHeader::Truncated => Candidate::Truncated { needed: 1 },
            HdlcHeader::Broken { checksum } => Candidate::Broken { checksum },
            HdlcHeader::Fine { end } => match (end + 1).checked_sub(live.len()) {
                Some(needed) if needed > 0 => Candidate::Truncated { needed },
                _ => self.fcs_candidate(end),
            },
        }
    }

    /// What an HDLC frame at the buffer start whose header verified and
    /// whose closing flag `end` is in comes to: its FCS, then that flag.
    fn fcs_candidate(&mut self, end: usize) -> Candidate {
        let live = self.buf.live();
        let Some(fcs_at) = end.checked_sub(2) else {
            return Candidate::Verified;
        };
        let (Some(&lo), Some(&hi), closing) = (
            live.get(fcs_at),
            live.get(fcs_at + 1),
            live.get(end).copied(),
        ) else {
            return Candidate::Verified;
        };
        match self.buf.crc16_x25(1, fcs_at) {
            Some(fcs) if fcs != u16::from_le_bytes([lo, hi]) => {
                Candidate::Broken { checksum: true }
            }
            Some(_) if closing != Some(hdlc::FLAG) => Candidate::Broken { checksum: false },
            // Verified, or not known here: the full parse decides.
            _ => Candidate::Verified,
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
                .live()
                .iter()
                .position(|&b| b == START || b == hdlc::FLAG)
                .unwrap_or(self.buf.len());
            self.skip(start);
            if self.buf.is_empty() {
                return None;
            }
            if self.buf.live().first() == Some(&hdlc::FLAG) {
                match self.next_hdlc() {
                    Some(Some(telegram)) => return Some(telegram),
                    Some(None) => continue,
                    None => return None,
                }
            }
            // A first frame that does not verify starts nothing (as
            // `transport::reassemble` would find), whatever follows.
            match self.long_frame_candidate() {
                Candidate::Verified => {}
                Candidate::Truncated { .. } => return None,
                Candidate::Broken { checksum } => {
                    self.drop_broken(checksum);
                    continue;
                }
            }
            let buf = self.buf.live();
            if let Ok(frame) = LongFrame::parse(buf, 0) {
                if transport::segment_info(&frame).is_err() {
                    // An M-Bus telegram: one frame is the whole telegram.
                    return Some(self.take(frame.frame_len));
                }
            }
            match transport::reassemble(buf) {
                Ok(r) => return Some(self.take(r.consumed)),
                Err(e) if needs_more(&e.kind, e.offset, buf.len()) => return None,
                Err(_) => match LongFrame::parse(buf, 0) {
                    // The first frame is fine; the telegram it starts is not.
                    Ok(frame) => {
                        let segment = transport::segment_info(&frame).ok().map(|(seq, _)| seq);
                        self.drop_frame(frame.frame_len, segment);
                    }
                    Err(first) => {
                        self.drop_broken(matches!(first.kind, ErrorKind::Checksum { .. }))
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
        // A first frame that does not verify fails the telegram (as
        // `hdlc::reassemble` would find), whatever follows; one the buffer
        // ends in waits as below.
        match self.hdlc_frame_candidate() {
            Candidate::Verified => {}
            Candidate::Truncated { needed } if self.buf.len() <= MAX_HDLC_TELEGRAM => {
                self.hdlc_wait = self.buf.len() + needed.saturating_sub(2).max(1);
                return None;
            }
            Candidate::Truncated { .. } => {
                self.drop_broken(false);
                return Some(None);
            }
            Candidate::Broken { checksum } => {
                self.drop_broken(checksum);
                return Some(None);
            }
        }
        let buf = self.buf.live();
        let result = hdlc::reassemble(buf).and_then(|r| {
            if r.apdu.first() == Some(&hdlc::GENERAL_BLOCK_TRANSFER) {
                gbt::reassemble(buf, r)
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
                if needs_more(&e.kind, e.offset, buf.len())
                    && buf.len() <= MAX_HDLC_TELEGRAM
                    && !matches!(e.kind, ErrorKind::GbtIncomplete { expected }
                        if usize::from(expected) > MAX_GBT_BLOCKS) =>
            {
                // Nothing can change before the missing bytes are in (less
                // two: a frame may share its opening flag with the one before).
                let needed = match e.kind {
                    ErrorKind::Truncated { needed } => needed.saturating_sub(2),
                    _ => 0,
                };
                self.hdlc_wait = buf.len() + needed.max(1);
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
            if let Ok(frame) = LongFrame::parse(self.buf.live(), 0) {
                let segment = transport::segment_info(&frame).ok().map(|(seq, _)| seq);
                self.drop_frame(frame.frame_len, segment);
            } else if hdlc::HdlcFrame::parse(self.buf.live(), 0).is_ok() {
                self.drop_hdlc_frame();
            } else {
                break;
            }
        }
        let n = self.buf.len();
        self.skip(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dlms::transport::emit;
    use proptest::prelude::*;

    fn telegram(seed: u8, len: usize) -> Vec<u8> {
        let apdu: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(seed)).collect();
        emit(&apdu, 245)
    }

    #[test]
    fn garbage_around_and_every_chunking() {
        let a = telegram(3, 260);
        let b = telegram(7, 30);
        let mut stream = vec![0x00, 0x68, 0x68, 0x16];
        stream.extend_from_slice(&a);
        stream.extend_from_slice(&[0xE5, 0x68, 0x01]);
        stream.extend_from_slice(&b);
        for chunk in [1, 2, 7, 64, 1000] {
            let mut d = Deframer::new();
            let mut out = Vec::new();
            for c in stream.chunks(chunk) {
                d.push(c);
                while let Some(t) = d.next_telegram() {
                    out.push(t);
                }
            }
            d.finish();
            assert_eq!(out, vec![a.clone(), b.clone()], "chunk {chunk}");
            let s = d.stats();
            assert_eq!(s.telegrams, 2);
            assert_eq!(s.bytes_skipped, 7, "chunk {chunk}");
        }
    }

    #[test]
    fn hdlc_and_mbus_telegrams_mixed_with_garbage() {
        let apdu: Vec<u8> = (0..150u8).map(|i| i.wrapping_mul(13)).collect();
        let h = hdlc::emit(&apdu, &[0xCF], &[0x02, 0x23], hdlc::CONTROL_UI, 64);
        let a = telegram(3, 100);
        let mut stream = vec![0x7E, 0xA0, 0x11, 0x7E, 0x00];
        stream.extend_from_slice(&h);
        stream.extend_from_slice(&a);
        let mut corrupt = h.clone();
        corrupt[20] ^= 0x40; // a flipped bit: the FCS of the first frame fails
        stream.extend_from_slice(&corrupt);
        stream.extend_from_slice(&h);
        for chunk in [1, 3, 64, 4096] {
            let mut d = Deframer::new();
            let mut out = Vec::new();
            for c in stream.chunks(chunk) {
                d.push(c);
                while let Some(t) = d.next_telegram() {
                    out.push(t);
                }
            }
            d.finish();
            assert_eq!(out, vec![h.clone(), a.clone(), h.clone()], "chunk {chunk}");
            let s = d.stats();
            assert_eq!(s.telegrams, 3);
            assert_eq!(s.bytes_skipped, (5 + corrupt.len()) as u64, "chunk {chunk}");
            assert!(s.bad_checksums >= 1);
        }
    }

    #[test]
    fn missing_second_segment_drops_the_first() {
        let a = telegram(3, 300);
        let b = telegram(5, 300);
        let first_frame_len = 245 + 11;
        let mut stream = a[..first_frame_len].to_vec();
        stream.extend_from_slice(&b);
        let mut d = Deframer::new();
        d.push(&stream);
        assert_eq!(d.next_telegram(), Some(b.clone()));
        assert_eq!(d.next_telegram(), None);
        assert_eq!(d.stats().incomplete_telegrams, 1);
        assert_eq!(d.stats().bytes_skipped, first_frame_len as u64);
    }

    #[test]
    fn three_segments_missing_the_last_count_once() {
        let a = emit(&[0x11; 600], 245);
        let b = telegram(5, 100);
        let third = 2 * 256;
        let mut stream = a[..third].to_vec();
        stream.extend_from_slice(&b);
        let mut d = Deframer::new();
        d.push(&stream);
        assert_eq!(d.next_telegram(), Some(b));
        assert_eq!(d.stats().incomplete_telegrams, 1);
        // An orphan last segment (its start was missed) is one more.
        d.push(&a[third..]);
        d.finish();
        assert_eq!(d.stats().incomplete_telegrams, 2);
    }

    #[test]
    fn every_prefix_needs_more_and_every_split_agrees() {
        let a = telegram(3, 300);
        for cut in 0..a.len() {
            let mut d = Deframer::new();
            d.push(&a[..cut]);
            assert_eq!(d.next_telegram(), None, "prefix {cut}");
            assert_eq!(
                d.stats().bytes_skipped,
                0,
                "prefix {cut} must wait, not skip"
            );
            d.push(&a[cut..]);
            assert_eq!(d.next_telegram(), Some(a.clone()), "split at {cut}");
        }
    }

    #[test]
    fn mbus_frames_are_telegrams_of_their_own() {
        let mbus = crate::mbus::link::emit_long(0x08, 1, 0x72, &[0; 12]);
        let dlms = telegram(3, 300);
        let mut stream = mbus.clone();
        stream.extend_from_slice(&[0xE5, 0x10]);
        stream.extend_from_slice(&dlms);
        let mut d = Deframer::new();
        d.push(&stream);
        assert_eq!(d.next_telegram(), Some(mbus));
        assert_eq!(d.next_telegram(), Some(dlms));
        assert_eq!(d.stats().bytes_skipped, 2);
    }

    #[test]
    fn flipped_byte_is_never_handed_out() {
        let a = telegram(3, 260);
        for i in 0..a.len() {
            let mut bad = a.clone();
            bad[i] ^= 0x01;
            let mut d = Deframer::new();
            d.push(&bad);
            let mut out = Vec::new();
            while let Some(t) = d.next_telegram() {
                out.push(t);
            }
            d.finish();
            assert!(out.is_empty(), "byte {i} flipped yet a telegram came out");
            assert_eq!(d.stats().bytes_skipped, bad.len() as u64);
        }
    }

    /// One HDLC frame carrying a GBT block, LLC header only on block 1, as the
    /// Landis+Gyr meters send it.
    fn gbt_frame(control: u8, number: u16, data: &[u8]) -> Vec<u8> {
        let mut apdu = vec![gbt::TAG, control];
        apdu.extend_from_slice(&number.to_be_bytes());
        apdu.extend_from_slice(&[0, 0]);
        match data.len() {
            n if n < 0x80 => apdu.push(n as u8),
            n => apdu.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]),
        }
        apdu.extend_from_slice(data);
        let info = if number == 1 {
            let mut info = hdlc::LLC.to_vec();
            info.extend_from_slice(&apdu);
            info
        } else {
            apdu
        };
        let length = 2 + 2 + 1 + 1 + 2 + info.len() + 2;
        let mut body = vec![0xA0 | (length >> 8) as u8, length as u8, 0xCE, 0xFF, 0x03];
        body.push(hdlc::CONTROL_UI);
        body.extend_from_slice(&hdlc::crc16_x25(&body).to_le_bytes());
        body.extend_from_slice(&info);
        body.extend_from_slice(&hdlc::crc16_x25(&body).to_le_bytes());
        let mut frame = vec![hdlc::FLAG];
        frame.extend_from_slice(&body);
        frame.push(hdlc::FLAG);
        frame
    }

    /// A GBT push of `blocks` blocks (the last with the last-block bit) and the
    /// offset of each frame.
    fn gbt_push(seed: u8, blocks: u16) -> (Vec<u8>, Vec<usize>) {
        let mut wire = Vec::new();
        let mut starts = Vec::new();
        for n in 1..=blocks {
            let data: Vec<u8> = (0..100u8).map(|i| i.wrapping_mul(seed) ^ n as u8).collect();
            let control = if n == blocks { 0xC0 } else { 0x40 };
            starts.push(wire.len());
            wire.extend_from_slice(&gbt_frame(control, n, &data));
        }
        (wire, starts)
    }

    fn run(stream: &[u8], chunk: usize) -> (Vec<Vec<u8>>, Stats) {
        let mut d = Deframer::new();
        let mut out = Vec::new();
        for c in stream.chunks(chunk) {
            d.push(c);
            while let Some(t) = d.next_telegram() {
                out.push(t);
            }
        }
        d.finish();
        let s = d.stats();
        let handed: usize = out.iter().map(Vec::len).sum();
        assert_eq!(
            handed as u64 + s.bytes_skipped,
            stream.len() as u64 + s.shared_flags
        );
        (out, s)
    }

    #[test]
    fn gbt_push_is_one_telegram_in_every_chunking() {
        let (a, _) = gbt_push(3, 4);
        let (b, _) = gbt_push(5, 1);
        let mbus = telegram(7, 50);
        let mut stream = vec![0x7E, 0x00, 0x68];
        stream.extend_from_slice(&a);
        stream.extend_from_slice(&[0xE5, 0x7E]);
        stream.extend_from_slice(&b);
        stream.extend_from_slice(&mbus);
        stream.extend_from_slice(&a);
        for chunk in [1, 2, 5, 64, 4096] {
            let (out, s) = run(&stream, chunk);
            assert_eq!(
                out,
                vec![a.clone(), b.clone(), mbus.clone(), a.clone()],
                "chunk {chunk}"
            );
            assert_eq!(s.bytes_skipped, 5, "chunk {chunk}");
            assert_eq!(s.incomplete_telegrams, 0, "chunk {chunk}");
        }
    }

    #[test]
    fn gbt_every_prefix_waits_without_skipping() {
        let (a, _) = gbt_push(3, 3);
        for cut in 0..a.len() {
            let mut d = Deframer::new();
            d.push(&a[..cut]);
            assert_eq!(d.next_telegram(), None, "prefix {cut}");
            assert_eq!(
                d.stats().bytes_skipped,
                0,
                "prefix {cut} must wait, not skip"
            );
            d.push(&a[cut..]);
            assert_eq!(d.next_telegram(), Some(a.clone()), "split at {cut}");
            assert_eq!(d.buffered(), 0);
        }
    }

    #[test]
    fn gbt_lost_rest_of_push_drops_the_partial_one() {
        let (a, starts) = gbt_push(3, 4);
        let (b, _) = gbt_push(9, 3);
        // Blocks 1 and 2 of `a`, then all of `b`: block 1 after block 2 is out of order.
        let mut stream = a[..starts[2]].to_vec();
        stream.extend_from_slice(&b);
        for chunk in [1, 7, 4096] {
            let (out, s) = run(&stream, chunk);
            assert_eq!(out, vec![b.clone()], "chunk {chunk}");
            assert_eq!(s.incomplete_telegrams, 1, "chunk {chunk}");
            assert_eq!(s.bytes_skipped, starts[2] as u64, "chunk {chunk}");
        }
    }

    #[test]
    fn gbt_orphan_blocks_are_skipped_and_counted_once() {
        let (a, starts) = gbt_push(3, 5);
        let mut stream = a[starts[1]..].to_vec();
        stream.extend_from_slice(&a);
        for chunk in [1, 3, 4096] {
            let (out, s) = run(&stream, chunk);
            assert_eq!(out, vec![a.clone()], "chunk {chunk}");
            assert_eq!(s.incomplete_telegrams, 1, "chunk {chunk}");
            assert_eq!(s.bytes_skipped, (a.len() - starts[1]) as u64);
        }
    }

    #[test]
    fn gbt_broken_or_foreign_later_frame_drops_the_push() {
        let (a, starts) = gbt_push(3, 3);
        let plain = hdlc::emit(&[0xDB, 1, 2], &[0xCE, 0xFF], &[0x03], hdlc::CONTROL_UI, 200);
        let mut foreign = a[..starts[1]].to_vec();
        foreign.extend_from_slice(&plain);
        foreign.extend_from_slice(&a);
        let (out, _) = run(&foreign, 1);
        assert_eq!(out, vec![plain.clone(), a.clone()]);
        for i in starts[1]..a.len() {
            let mut bad = a.clone();
            bad[i] ^= 0x10;
            bad.extend_from_slice(&a);
            for chunk in [1, 4096] {
                let (out, _) = run(&bad, chunk);
                assert_eq!(out, vec![a.clone()], "byte {i} flipped, chunk {chunk}");
            }
        }
        // A first frame with block number 2 (LLC and all) starts nothing.
        let stray = hdlc::emit(
            &[gbt::TAG, 0x40, 0, 2, 0, 0, 1, 9],
            &[0xCE, 0xFF],
            &[0x03],
            hdlc::CONTROL_UI,
            200,
        );
        let mut stream = stray.clone();
        stream.extend_from_slice(&a);
        let (out, s) = run(&stream, 1);
        assert_eq!(out, vec![a.clone()]);
        assert_eq!(s.incomplete_telegrams, 1);
        assert_eq!(s.bytes_skipped, stray.len() as u64);
    }

    #[test]
    fn gbt_push_too_long_is_dropped_not_buffered() {
        let (long, _) = gbt_push(3, (MAX_GBT_BLOCKS + 1) as u16);
        let (a, _) = gbt_push(5, 2);
        let mut stream = long.clone();
        stream.extend_from_slice(&a);
        for chunk in [97, 1 << 20] {
            let mut d = Deframer::new();
            let mut out = Vec::new();
            let mut most = 0;
            for c in stream.chunks(chunk) {
                d.push(c);
                while let Some(t) = d.next_telegram() {
                    out.push(t);
                }
                most = most.max(d.buffered());
            }
            d.finish();
            assert_eq!(out, vec![a.clone()], "chunk {chunk}");
            if chunk < stream.len() {
                assert!(most < MAX_GBT_BLOCKS * 200, "buffered {most}");
            }
            assert_eq!(d.stats().incomplete_telegrams, 1);
            assert_eq!(d.stats().bytes_skipped, long.len() as u64);
        }
        // The most blocks allowed still come out.
        let (max, _) = gbt_push(3, MAX_GBT_BLOCKS as u16);
        let (out, _) = run(&max, 1000);
        assert_eq!(out, vec![max]);
    }

    #[test]
    fn gbt_partial_push_at_finish_is_counted() {
        let (a, starts) = gbt_push(3, 3);
        let (out, s) = run(&a[..starts[2]], 10);
        assert!(out.is_empty());
        assert_eq!(s.incomplete_telegrams, 1);
        assert_eq!(s.bytes_skipped, starts[2] as u64);
    }

    #[test]
    fn running_crc_of_any_stretch_is_the_crc() {
        let tables = x25::tables();
        let data: Vec<u8> = (0..3000u32).map(|i| (i * 7919 % 251) as u8).collect();
        let mut running = Running::<u16>::default();
        for (a, b) in [
            (0, 0),
            (0, 9),
            (5, 100),
            (7, 2050),
            (1, 4096 + 7),
            (2990, 3000),
        ] {
            let b = b.min(data.len());
            let (x, y) = running
                .at(&data, a, b, |r, byte| tables.step(r, byte))
                .unwrap();
            if b - a < 4096 {
                assert_eq!(tables.crc(x, y, b - a), Some(hdlc::crc16_x25(&data[a..b])));
            } else {
                assert_eq!(tables.crc(x, y, b - a), None);
            }
        }
        assert_eq!(X25.checksum(b"123456789"), hdlc::crc16_x25(b"123456789"));
    }

    /// What `HdlcFrame::parse` and `LongFrame::parse` say of a candidate, as
    /// the deframer's constant-time checks put it.
    fn parsed_hdlc(live: &[u8]) -> Candidate {
        match hdlc::HdlcFrame::parse(live, 0) {
            Ok(_) => Candidate::Verified,
            Err(e) => match e.kind {
                ErrorKind::Truncated { needed } => Candidate::Truncated { needed },
                kind => Candidate::Broken {
                    checksum: kind.category() == Category::Checksum,
                },
            },
        }
    }

    fn parsed_long(live: &[u8]) -> Candidate {
        match LongFrame::parse(live, 0) {
            Ok(_) => Candidate::Verified,
            Err(e) if needs_more(&e.kind, e.offset, live.len()) => {
                Candidate::Truncated { needed: 0 }
            }
            Err(e) => Candidate::Broken {
                checksum: matches!(e.kind, ErrorKind::Checksum { .. }),
            },
        }
    }

    /// Frames and near-frames: HDLC and M-Bus frames as sent, then bytes
    /// changed, cut or added, and runs of false starts.
    fn candidates() -> impl Strategy<Value = Vec<u8>> {
        let hdlc_frame = (
            prop::collection::vec(any::<u8>(), 0..300),
            prop::sample::select(vec![
                vec![0x03u8],
                vec![0xCE, 0xFF],
                vec![0x02, 0x02, 0x02, 0x23],
            ]),
            any::<bool>(),
        )
            .prop_map(|(info, dest, segmented)| {
                let mut out = Vec::new();
                hdlc::push_frame(&mut out, &info, &dest, &[0x21], 0x13, segmented);
                out
            });
        let long_frame =
            prop::collection::vec(any::<u8>(), 0..520).prop_map(|body| LongFrame::emit(&body));
        let header = prop::sample::select(vec![0xA0u8, 0xA7, 0xA8])
            .prop_flat_map(|f0| (Just(f0), any::<u8>()))
            .prop_map(|(f0, f1)| {
                let head = [f0, f1, 0x03, 0x21, 0x13];
                let mut out = vec![hdlc::FLAG];
                out.extend_from_slice(&head);
                out.extend_from_slice(&hdlc::crc16_x25(&head).to_le_bytes());
                out
            });
        let piece = prop_oneof![
            hdlc_frame,
            long_frame,
            header,
            Just(vec![0x68, 0xFF, 0xFF, 0x68]),
            Just(vec![0x68, 0x01, 0x01, 0x68]),
            prop::collection::vec(
                prop_oneof![
                    Just(0x7Eu8),
                    Just(0x68),
                    Just(0xA0),
                    Just(0x16),
                    any::<u8>()
                ],
                0..30
            ),
        ];
        (
            prop::collection::vec(piece, 1..6),
            prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
        )
            .prop_map(|(pieces, edits)| {
                let mut out = pieces.concat();
                if !out.is_empty() {
                    for (at, byte) in edits {
                        let i = at.index(out.len());
                        out[i] = byte;
                    }
                }
                out
            })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]

        /// At every offset of any input, pushed in any chunking, the
        /// constant-time candidate checks say what a full parse says.
        #[test]
        fn candidate_checks_agree_with_parse(
            input in candidates(),
            chunks in prop::collection::vec(1usize..700, 1..6),
            steps in prop::collection::vec(0usize..40, 1..40),
        ) {
            let mut d = Deframer::new();
            let mut fed = 0;
            let mut chunk = chunks.iter().cycle();
            let mut step = steps.iter().cycle();
            let mut unshifted = false;
            while fed < input.len() || !d.buf.is_empty() {
                if fed < input.len() {
                    let n = (*chunk.next().unwrap()).min(input.len() - fed);
                    d.push(&input[fed..fed + n]);
                    fed += n;
                }
                let live = d.buf.live().to_vec();
                if live.first() == Some(&hdlc::FLAG) {
                    proptest::prop_assert_eq!(d.hdlc_frame_candidate(), parsed_hdlc(&live));
                }
                if live.first() == Some(&START) {
                    proptest::prop_assert_eq!(d.long_frame_candidate(), parsed_long(&live));
                }
                let n = (*step.next().unwrap()).min(live.len());
                if n == 0 && !unshifted && live.first().is_some_and(|&b| b & 0xF0 == 0xA0) {
                    d.buf.unshift_flag();
                    unshifted = true;
                } else {
                    // Past the flag put back and the byte after it, at least.
                    d.buf.consume(n.max(1 + usize::from(unshifted)));
                    unshifted = false;
                }
            }
        }
    }
}

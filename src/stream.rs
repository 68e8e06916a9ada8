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

use crate::dlms::{gbt, hdlc, transport};
use crate::error::ErrorKind;
use crate::mbus::frame::{LongFrame, START};

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

/// A streaming telegram finder: push bytes, pull telegrams.
///
/// Its whole state (buffer, counters, what was dropped last) serializes with
/// serde, so a deframer can be saved and resumed (Python pickling).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
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
            let continues =
                seq != 0 && self.last_dropped == Some(Dropped::Segment(seq.wrapping_sub(1) & 0x0F));
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
                if first.kind.category() == crate::error::Category::Checksum {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dlms::transport::emit;

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
}

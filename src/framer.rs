//! The telegram finder of a serial port, whichever protocol family it carries:
//! M-Bus long frames and HDLC ([`crate::stream::Deframer`]: DLMS push, EN
//! 13757-3) or DSMR P1 text ([`crate::dsmr::stream::Framer`]), or, not knowing
//! which, both ([`Auto`]) until one of them finds a verified telegram. The
//! blocking reader and the Python `Deframer` hold one.

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
    /// Either family, told from the first verified telegram ([`Auto`]).
    Auto(Box<Auto>),
}

impl Framer {
    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        match self {
            Framer::Mbus(f) => f.push(data),
            Framer::Dsmr(f) => f.push(data),
            Framer::Auto(f) => f.push(data),
        }
    }

    /// The next complete telegram, or `None` when more bytes are needed.
    pub fn next_telegram(&mut self) -> Option<Vec<u8>> {
        match self {
            Framer::Mbus(f) => f.next_telegram(),
            Framer::Dsmr(f) => f.next_telegram(),
            Framer::Auto(f) => f.next_telegram(),
        }
    }

    /// Gives back a telegram the decoder could not verify, for rescanning
    /// (P1 encrypted frames, which only the decoder can verify; M-Bus telegrams
    /// are verified before they are handed out, so nothing happens for them).
    pub fn reject(&mut self, telegram: &[u8]) {
        match self {
            Framer::Dsmr(f) if telegram.first() == Some(&0xDB) => f.reject(telegram),
            Framer::Auto(f) => f.reject(telegram),
            _ => {}
        }
    }

    /// Ends the stream.
    pub fn finish(&mut self) {
        match self {
            Framer::Mbus(f) => f.finish(),
            Framer::Dsmr(f) => f.finish(),
            Framer::Auto(f) => f.finish(),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        match self {
            Framer::Mbus(f) => f.stats(),
            Framer::Dsmr(f) => f.stats(),
            Framer::Auto(f) => f.stats(),
        }
    }

    /// Bytes held back.
    pub fn buffered(&self) -> usize {
        match self {
            Framer::Mbus(f) => f.buffered(),
            Framer::Dsmr(f) => f.buffered(),
            Framer::Auto(f) => f.buffered(),
        }
    }

    /// The family whose telegrams it finds: M-Bus framing or P1, or `None`
    /// while an [`Auto`] framer has not recognised either yet.
    pub fn family(&self) -> Option<Family> {
        match self {
            Framer::Mbus(_) => Some(Family::Mbus),
            Framer::Dsmr(_) => Some(Family::P1),
            Framer::Auto(f) => f.chosen,
        }
    }
}

/// A protocol family as a serial port carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// M-Bus long frames and HDLC frames (DLMS push, EN 13757-3).
    Mbus,
    /// DSMR P1 text telegrams and Smarty `DB 08` frames.
    P1,
}

/// Both framers fed the same bytes until one of them hands out a telegram;
/// from then on only that one (the other dropped).
///
/// Its counters are those of the framer in the lead, so that the invariant of
/// [`Stats`] holds throughout: bytes in telegrams + skipped + buffered = bytes
/// pushed + shared flags. Before the choice the lead is the framer that has
/// skipped fewer bytes (a byte is skipped only once both skipped it); after
/// it, the chosen one, which has seen every byte: the bytes the other one took
/// for its own are counted as skipped there, once. Bad checksums and
/// incomplete telegrams of both are counted (the dropped framer's up to the
/// choice), so no counter ever goes down.
///
/// An M-Bus or HDLC telegram and a P1 text telegram are verified by their
/// checksums or CRC, and the first one decides (the one that ended first, if
/// both complete at once). A Smarty `DB 08` frame is verified only by the
/// decoder: it is handed out on trial and decides once the next telegram is
/// asked for without it having been given back ([`Framer::reject`]). A
/// `DB 08` found inside an M-Bus or HDLC frame still being collected (DLMS
/// push telegrams carry one) is given back to the P1 framer at once.
#[derive(Debug, Clone, Default)]
pub struct Auto {
    mbus: Deframer,
    p1: dsmr::stream::Framer,
    chosen: Option<Family>,
    /// A `DB 08` frame is out on trial.
    trial: bool,
    /// The dropped framer's bad checksums and incomplete telegrams.
    carried: Stats,
}

impl Auto {
    /// An empty framer that has recognised nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&mut self, data: &[u8]) {
        match self.chosen {
            Some(Family::Mbus) => self.mbus.push(data),
            Some(Family::P1) => self.p1.push(data),
            None => {
                self.mbus.push(data);
                self.p1.push(data);
            }
        }
    }

    fn choose(&mut self, family: Family) {
        let other = match family {
            Family::Mbus => std::mem::take(&mut self.p1).stats(),
            Family::P1 => std::mem::take(&mut self.mbus).stats(),
        };
        self.carried.bad_checksums += other.bad_checksums;
        self.carried.incomplete_telegrams += other.incomplete_telegrams;
        self.chosen = Some(family);
        self.trial = false;
    }

    fn next_telegram(&mut self) -> Option<Vec<u8>> {
        if self.trial {
            // The frame on trial was not given back: the decoder took it.
            self.choose(Family::P1);
        }
        match self.chosen {
            Some(Family::Mbus) => return self.mbus.next_telegram(),
            Some(Family::P1) => return self.p1.next_telegram(),
            None => {}
        }
        let mbus = self.mbus.next_telegram();
        let mut p1 = self.p1.next_telegram();
        while let Some(frame) = p1.take_if(|f| f.first() == Some(&0xDB)) {
            // Where the frame starts, counted from the stream's end: inside an
            // M-Bus/HDLC candidate that started earlier it is part of it.
            let from_end = self.p1.buffered() + frame.len();
            if mbus.is_none() && self.mbus.buffered() <= from_end {
                self.trial = true;
                return Some(frame);
            }
            self.p1.reject(&frame);
            p1 = self.p1.next_telegram();
        }
        match (mbus, p1) {
            (Some(m), Some(p)) => {
                // Both at once: the one that ended first (the other one's
                // bytes are skipped by the chosen framer).
                if self.p1.buffered() > self.mbus.buffered() {
                    self.choose(Family::P1);
                    Some(p)
                } else {
                    self.choose(Family::Mbus);
                    Some(m)
                }
            }
            (Some(m), None) => {
                self.choose(Family::Mbus);
                Some(m)
            }
            (None, Some(p)) => {
                self.choose(Family::P1);
                Some(p)
            }
            (None, None) => None,
        }
    }

    fn reject(&mut self, telegram: &[u8]) {
        let on_trial = std::mem::take(&mut self.trial);
        if (on_trial || self.chosen == Some(Family::P1)) && telegram.first() == Some(&0xDB) {
            self.p1.reject(telegram);
        }
    }

    fn finish(&mut self) {
        self.trial = false;
        self.mbus.finish();
        self.p1.finish();
    }

    /// The framer in the lead (see [`Auto`]).
    fn lead(&self) -> Family {
        match self.chosen {
            Some(f) => f,
            None if self.p1.stats().bytes_skipped < self.mbus.stats().bytes_skipped => Family::P1,
            None => Family::Mbus,
        }
    }

    fn stats(&self) -> Stats {
        let (m, p) = (self.mbus.stats(), self.p1.stats());
        let lead = match self.lead() {
            Family::Mbus => m,
            Family::P1 => p,
        };
        Stats {
            bad_checksums: m.bad_checksums + p.bad_checksums + self.carried.bad_checksums,
            incomplete_telegrams: m.incomplete_telegrams
                + p.incomplete_telegrams
                + self.carried.incomplete_telegrams,
            ..lead
        }
    }

    fn buffered(&self) -> usize {
        match self.lead() {
            Family::Mbus => self.mbus.buffered(),
            Family::P1 => self.p1.buffered(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dlms::{hdlc, transport};
    use crate::dsmr::crc::crc16;
    use proptest::prelude::*;

    /// A P1 telegram with its CRC.
    fn p1(n: u32) -> Vec<u8> {
        let mut t =
            format!("/ISK5\\2M550T-1013\r\n\r\n1-0:1.8.1({n:06}.000*kWh)\r\n!").into_bytes();
        let crc = crc16(&t);
        t.extend_from_slice(format!("{crc:04X}\r\n").as_bytes());
        t
    }

    /// A DLMS push telegram in M-Bus frames: a general-glo-ciphering APDU,
    /// so that the P1 framer sees a `DB 08` frame start inside it.
    fn mbus(seed: u8, len: usize, segment: usize) -> Vec<u8> {
        let mut apdu = vec![0xDB, 0x08, b'K', b'F', b'M', 0x10, 0x20, 0, 0, 1, 0x82];
        apdu.extend_from_slice(&u16::try_from(len).unwrap_or(0).to_be_bytes());
        apdu.extend((0..len).map(|i| (i as u8).wrapping_mul(seed) ^ 0x5A));
        transport::emit(&apdu, segment)
    }

    /// The same APDU in HDLC frames.
    fn hdlc(seed: u8, len: usize, info: usize) -> Vec<u8> {
        let mut apdu = vec![0xDB, 0x08, b'L', b'G', b'Z', 0x10, 0x20, 0, 0, 1, 0x82];
        apdu.extend_from_slice(&u16::try_from(len).unwrap_or(0).to_be_bytes());
        apdu.extend((0..len).map(|i| (i as u8).wrapping_mul(seed) ^ 0xA5));
        hdlc::emit(&apdu, &[0xCF], &[0x02, 0x23], hdlc::CONTROL_UI, info)
    }

    /// Runs `framer` over `stream` in chunks, checking after every step that
    /// every byte is accounted for once and that no counter goes down;
    /// returns the telegrams handed out.
    fn run(framer: &mut Framer, stream: &[u8], chunks: &[usize]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let (mut pos, mut i, mut handed) = (0, 0, 0);
        let mut last = Stats::default();
        let mut check = |f: &Framer, pushed: usize, handed: usize| {
            let s = f.stats();
            assert_eq!(
                handed as u64 + s.bytes_skipped + f.buffered() as u64,
                pushed as u64 + s.shared_flags,
                "{s:?} after {pushed} bytes"
            );
            assert!(s.telegrams >= last.telegrams && s.bytes_skipped >= last.bytes_skipped);
            assert!(s.bad_checksums >= last.bad_checksums);
            assert!(s.incomplete_telegrams >= last.incomplete_telegrams);
            last = s;
        };
        while pos < stream.len() {
            let n = chunks[i % chunks.len()].min(stream.len() - pos);
            framer.push(&stream[pos..pos + n]);
            pos += n;
            i += 1;
            while let Some(t) = framer.next_telegram() {
                handed += t.len();
                out.push(t);
            }
            check(framer, pos, handed);
        }
        framer.finish();
        check(framer, pos, handed);
        assert_eq!(framer.buffered(), 0);
        out
    }

    fn auto() -> Framer {
        Framer::Auto(Box::new(Auto::new()))
    }

    #[test]
    fn p1_after_garbage_then_only_p1() {
        let (a, b) = (p1(1), p1(2));
        let m = mbus(3, 300, 120);
        let mut stream = b"\x00\xffnoise\r\n".to_vec();
        stream.extend_from_slice(&a);
        stream.extend_from_slice(&m); // an M-Bus telegram on a P1 port: skipped
        stream.extend_from_slice(&b);
        for chunk in [1, 7, 64, 4096] {
            let mut f = auto();
            assert_eq!(f.family(), None);
            let out = run(&mut f, &stream, &[chunk]);
            assert_eq!(f.family(), Some(Family::P1));
            // The M-Bus telegram holds a `DB 08` frame start: the P1 framer,
            // alone from the first telegram on, hands out what it finds there.
            assert_eq!(out.first(), Some(&a));
            assert_eq!(out.last(), Some(&b));
            assert!(out
                .iter()
                .all(|t| t == &a || t == &b || t.starts_with(&[0xDB, 0x08])));
            assert_eq!(f.stats().telegrams, out.len() as u64);
        }
    }

    #[test]
    fn mbus_and_hdlc_after_garbage_then_never_p1() {
        let (m, h) = (mbus(3, 400, 200), hdlc(5, 300, 100));
        let mut stream = b"/ISK5 a cut P1 telegram\r\n".to_vec();
        stream.extend_from_slice(&m);
        stream.extend_from_slice(&p1(1));
        stream.extend_from_slice(&h);
        for chunk in [1, 7, 64, 4096] {
            let mut f = auto();
            let out = run(&mut f, &stream, &[chunk]);
            assert_eq!(f.family(), Some(Family::Mbus));
            assert_eq!(out, vec![m.clone(), h.clone()], "chunk {chunk}");
            let s = f.stats();
            assert_eq!(s.telegrams, 2);
            assert_eq!(
                s.bytes_skipped as usize,
                stream.len() - m.len() - h.len(),
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn a_smarty_frame_is_on_trial_until_the_next_telegram_is_asked_for() {
        // A `DB 08` frame (Luxembourg Smarty): the length byte at offset 10.
        let mut frame = vec![0xDB, 0x08, 1, 2, 3, 4, 5, 6, 7, 8, 0x20];
        frame.extend((0..0x20u8).map(|i| i.wrapping_mul(7)));
        let mut f = auto();
        f.push(&frame);
        assert_eq!(f.next_telegram(), Some(frame.clone()));
        assert_eq!(f.family(), None);
        f.reject(&frame); // the decoder gave it back: still undecided
        assert_eq!(f.next_telegram(), None);
        assert_eq!(f.family(), None);
        f.push(&frame);
        assert_eq!(f.next_telegram(), Some(frame.clone()));
        assert_eq!(f.next_telegram(), None); // kept: P1 from now on
        assert_eq!(f.family(), Some(Family::P1));
        let s = f.stats();
        assert_eq!(s.telegrams, 1);
        assert_eq!(s.bytes_skipped as usize + f.buffered(), frame.len());
    }

    #[test]
    fn a_dlms_telegram_is_not_taken_for_a_smarty_frame() {
        // Its APDU is a `DB 08` frame, complete before the M-Bus frame is.
        let m = mbus(9, 60, 245);
        let mut f = auto();
        f.push(&m[..m.len() - 2]);
        assert_eq!(f.next_telegram(), None);
        f.push(&m[m.len() - 2..]);
        assert_eq!(f.next_telegram(), Some(m.clone()));
        assert_eq!(f.family(), Some(Family::Mbus));
        assert_eq!(f.stats().bytes_skipped, 0);
    }

    /// A piece of a mixed stream.
    #[derive(Debug, Clone)]
    enum Piece {
        Garbage(Vec<u8>),
        Mbus(Vec<u8>),
        Hdlc(Vec<u8>),
        P1(Vec<u8>),
        /// A telegram cut short.
        Cut(Vec<u8>),
    }

    impl Piece {
        fn bytes(&self) -> &[u8] {
            match self {
                Piece::Garbage(b) | Piece::Mbus(b) | Piece::Hdlc(b) | Piece::P1(b) => b,
                Piece::Cut(b) => b,
            }
        }

        fn family(&self) -> Option<Family> {
            match self {
                Piece::Mbus(_) | Piece::Hdlc(_) => Some(Family::Mbus),
                Piece::P1(_) => Some(Family::P1),
                Piece::Garbage(_) | Piece::Cut(_) => None,
            }
        }
    }

    /// Bytes that cannot start a frame of either family.
    fn inert() -> impl Strategy<Value = u8> {
        any::<u8>().prop_map(|b| match b {
            0x68 | 0x7E | b'/' | 0xDB => 0x00,
            b => b,
        })
    }

    fn piece() -> impl Strategy<Value = Piece> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..80).prop_map(Piece::Garbage),
            prop::collection::vec(inert(), 0..80).prop_map(Piece::Garbage),
            (any::<u8>(), 1usize..500, 16usize..246)
                .prop_map(|(s, l, g)| Piece::Mbus(mbus(s, l, g))),
            (any::<u8>(), 1usize..500, 16usize..200)
                .prop_map(|(s, l, i)| Piece::Hdlc(hdlc(s, l, i))),
            (0u32..999_999).prop_map(|n| Piece::P1(p1(n))),
            ((0u32..999_999), any::<prop::sample::Index>()).prop_map(|(n, at)| {
                let t = p1(n);
                Piece::Cut(t[..at.index(t.len())].to_vec())
            }),
            (any::<u8>(), 1usize..300, any::<prop::sample::Index>()).prop_map(|(s, l, at)| {
                let t = mbus(s, l, 245);
                Piece::Cut(t[..at.index(t.len())].to_vec())
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn auto_on_mixed_streams(pieces in prop::collection::vec(piece(), 0..8),
                                 chunks in prop::collection::vec(1usize..300, 1..8)) {
            let stream: Vec<u8> = pieces.iter().flat_map(|p| p.bytes().to_vec()).collect();
            // `run` checks the byte accounting and the counters at every step.
            let mut f = auto();
            let out = run(&mut f, &stream, &chunks);
            prop_assert_eq!(f.stats().telegrams, out.len() as u64);
            match f.family() {
                None => prop_assert!(out.is_empty()),
                Some(Family::Mbus) => {
                    // Exactly what an M-Bus deframer alone finds.
                    let alone = run(&mut Framer::Mbus(Deframer::new()), &stream, &chunks);
                    prop_assert_eq!(&out, &alone);
                }
                Some(Family::P1) => {
                    let alone = run(
                        &mut Framer::Dsmr(dsmr::stream::Framer::new()), &stream, &chunks,
                    );
                    if !stream.contains(&0xDB) {
                        prop_assert_eq!(&out, &alone);
                    }
                    for t in &out {
                        prop_assert!(t.first() == Some(&b'/') || t.starts_with(&[0xDB, 0x08]));
                    }
                }
            }
            // A telegram after inert garbage only decides, and comes out first.
            let first = pieces.iter().position(|p| !matches!(p, Piece::Garbage(_)));
            if let Some(i) = first {
                let inert = |b: &u8| ![0x68, 0x7E, b'/', 0xDB].contains(b);
                let clean = pieces[..i].iter().all(|p| p.bytes().iter().all(inert));
                if clean && pieces[i].family().is_some() {
                    prop_assert_eq!(f.family(), pieces[i].family());
                    prop_assert_eq!(out.first().map(Vec::as_slice), Some(pieces[i].bytes()));
                }
            }
        }
    }
}

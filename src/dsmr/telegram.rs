//! The P1 telegram grammar (DSMR 5.0.2 §6.2–6.4; DSMR 2.2/3.0 §5):
//!
//! ```text
//! telegram = "/" XXX Z ident CR LF CR LF *(line CR LF) "!" [CRC] CR LF
//! line     = OBIS 1*("(" [value ["*" unit]] ")")
//! ```
//! Lenient where real meters deviate: LF-only captures, a missing blank line,
//! 1–4 CRC digits in any case, no CRC at all (DSMR 2.2/3.0), a value continued on
//! the next physical line (DSMR 2.2 gas, long Kamstrup texts), bytes ≥ 0x80.
//! Lines that are not OBIS lines are kept as unknown lines, never errors.

use std::borrow::Cow;

use super::crc::crc16;
use crate::error::{DecodeError, ErrorKind, Result};

/// The CRC verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crc {
    /// The CRC matches (over the bytes as received, or, for an LF-only
    /// capture, over its CR LF form).
    Ok(u16),
    /// No CRC after `!` (DSMR 2.2 and 3.0 have none).
    Missing,
    /// The CRC does not match.
    Mismatch {
        /// The CRC in the telegram.
        given: u16,
        /// The CRC computed.
        computed: u16,
    },
}

/// An OBIS reference `A-B:C.D.E` (F, when sent, is kept in the text only).
/// Serialises as its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Code {
    /// Value groups A, B, C, D, E.
    pub groups: [u8; 5],
}

impl serde::Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.text())
    }
}

impl Code {
    /// The same reference as a six-group OBIS code (F = 255).
    pub fn obis(&self) -> crate::dlms::obis::Obis {
        let [a, b, c, d, e] = self.groups;
        crate::dlms::obis::Obis([a, b, c, d, e, 255])
    }

    /// Parses `A-B:C.D.E` with an optional `*F` or `.F`.
    pub fn parse(text: &[u8]) -> Option<Code> {
        // The separator after group i (after E also "."; none after F).
        const SEPARATORS: [u8; 5] = [b'-', b':', b'.', b'.', b'*'];
        let mut groups = [0u8; 5];
        let mut i = 0usize;
        let mut v = 0u32;
        let mut digits = false;
        for &b in text {
            let d = b.wrapping_sub(b'0');
            if d < 10 {
                // v <= 255 here, so this cannot overflow.
                v = v.wrapping_mul(10).wrapping_add(u32::from(d));
                if v > 255 {
                    return None;
                }
                digits = true;
                continue;
            }
            let expected = SEPARATORS.get(i) == Some(&b) || (i == 4 && b == b'.');
            if !digits || !expected {
                return None;
            }
            if let Some(g) = groups.get_mut(i) {
                *g = v as u8;
            }
            i += 1;
            v = 0;
            digits = false;
        }
        if !digits {
            return None;
        }
        match i {
            4 => *groups.get_mut(4)? = v as u8,
            5 => {} // F group
            _ => return None,
        }
        Some(Code { groups })
    }

    /// `A-B:C.D.E` (written digit by digit: this runs for every line).
    pub fn text(&self) -> String {
        let mut s = String::with_capacity(16);
        for (i, g) in self.groups.iter().enumerate() {
            if let Some(sep) = ["", "-", ":", ".", "."].get(i) {
                s.push_str(sep);
            }
            if *g >= 100 {
                s.push(char::from(b'0' + g / 100));
            }
            if *g >= 10 {
                s.push(char::from(b'0' + g / 10 % 10));
            }
            s.push(char::from(b'0' + g % 10));
        }
        s
    }
}

/// One COSEM line: its code and where its `(…)` groups are in
/// [`Telegram::groups`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The OBIS reference.
    pub code: Code,
    /// The range of the line's groups in [`Telegram::groups`].
    pub groups: std::ops::Range<usize>,
    /// Offset of the line in the input.
    pub offset: usize,
}

/// A parsed telegram, borrowing from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Telegram<'a> {
    /// The header line without `/` and line end, e.g. `ISK5\2M550T-1013`.
    pub header: &'a [u8],
    /// The COSEM lines in order.
    pub lines: Vec<Line>,
    /// The contents of every line's groups, without the parentheses
    /// (continuation lines joined), line after line: one vector for the
    /// telegram, not one per line.
    pub groups: Vec<Cow<'a, [u8]>>,
    /// Lines that are not COSEM lines (kept as sent, without line end).
    pub unknown: Vec<&'a [u8]>,
    /// The CRC verdict.
    pub crc: Crc,
    /// The telegram uses LF alone as line end (a re-saved capture; the CRC was
    /// then checked over its CR LF form).
    pub lf_only: bool,
    /// Bytes from `/` through the line end after the CRC.
    pub len: usize,
}

impl<'a> Telegram<'a> {
    /// The group contents of `line`.
    pub fn groups_of(&self, line: &Line) -> &[Cow<'a, [u8]>] {
        self.groups.get(line.groups.clone()).unwrap_or_default()
    }
}

/// The index of the first `needle` in `hay`, eight bytes at a time (the
/// classic zero-byte test on `word ^ needle × 0x01…01`: the lowest flagged byte
/// is always a true match).
pub fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pattern = LO * u64::from(needle);
    let mut chunks = hay.chunks_exact(8);
    let mut base = 0usize;
    for chunk in &mut chunks {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let x = u64::from_le_bytes(word) ^ pattern;
        let found = x.wrapping_sub(LO) & !x & HI;
        if found != 0 {
            return Some(base + (found.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == needle)
        .map(|i| base + i)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// CRC over `bytes` with a CR inserted before every LF (an LF-only capture
/// checked in its CR LF form).
fn crc_as_crlf(bytes: &[u8]) -> u16 {
    let mut crlf = Vec::with_capacity(bytes.len() + bytes.len() / 16);
    for &b in bytes {
        if b == b'\n' {
            crlf.push(b'\r');
        }
        crlf.push(b);
    }
    crc16(&crlf)
}

/// Splits `(a)(b*u)…` into group contents, appended to `out`; `false` (and
/// `out` as it was) if the text is not groups only.
fn split_groups<'t, T>(text: &'t [u8], out: &mut Vec<T>, f: impl Fn(&'t [u8]) -> T) -> bool {
    let before = out.len();
    let mut rest = text;
    while let Some((&open, inner)) = rest.split_first() {
        let close = match (open, inner.iter().position(|&b| b == b')')) {
            (b'(', Some(close)) => close,
            _ => {
                out.truncate(before);
                return false;
            }
        };
        let (content, after) = inner.split_at(close);
        out.push(f(content));
        rest = after.get(1..).unwrap_or_default();
    }
    true
}

/// Whether `text` opens more groups than it closes (a group continued on
/// the next line).
fn left_open(text: &[u8]) -> bool {
    text.iter().filter(|&&b| b == b'(').count() > text.iter().filter(|&&b| b == b')').count()
}

/// Finds the `!` that ends a telegram starting at `buf[0]`: at a line start,
/// or right after the last group's `)` (as the Aidon 6534 example prints it),
/// and followed by at most four hex digits (the CRC; none on DSMR 2.2/3.0)
/// and a line end, a NUL or the end of the input. A `!` followed by anything
/// else is no end: a corrupted line start (`1` → `!` is one bit) must not cut
/// a telegram short and pass it off as one without a CRC.
pub fn find_bang(buf: &[u8]) -> Option<usize> {
    find_bang_from(buf, 0)
}

/// [`find_bang`] searching from `from` on (the bytes before it still count as
/// context: the byte before a `!`).
pub fn find_bang_from(buf: &[u8], mut from: usize) -> Option<usize> {
    loop {
        let at = find_byte(buf.get(from..)?, b'!')? + from;
        let before = at.checked_sub(1).and_then(|i| buf.get(i));
        if matches!(before, Some(b'\n' | b')')) && ends_trailer(buf, at) {
            return Some(at);
        }
        from = at + 1;
    }
}

/// Whether the bytes after the `!` at `bang` can be a CRC trailer.
fn ends_trailer(buf: &[u8], bang: usize) -> bool {
    let rest = buf.get(bang + 1..).unwrap_or_default();
    let digits = rest
        .iter()
        .take(4)
        .take_while(|b| b.is_ascii_hexdigit())
        .count();
    match rest.get(digits) {
        None | Some(b'\r' | b'\n' | 0) => true,
        // Fewer than four digits, then the next telegram (its line end lost).
        Some(b'/') => true,
        Some(_) => false,
    }
}

/// One past the trailer of the `!` at `bang`: up to four CRC digits and a line
/// end (CR LF, or LF alone). `None` while the input may still be inside it
/// (it ends before the line end). A trailer whose line end was lost ends after
/// its digits, so the next telegram's `/` is not swallowed.
pub fn trailer_end(buf: &[u8], bang: usize) -> Option<usize> {
    let start = bang + 1;
    let rest = buf.get(start..)?;
    let digits = rest
        .iter()
        .take(4)
        .take_while(|b| b.is_ascii_hexdigit())
        .count();
    let mut end = start + digits;
    match buf.get(end) {
        None => return None,
        Some(b'\r') => {
            end += 1;
            match buf.get(end) {
                None => return None,
                Some(b'\n') => end += 1,
                Some(_) => {}
            }
        }
        Some(b'\n') => end += 1,
        Some(_) => {}
    }
    Some(end)
}

/// Finds the end of a telegram that starts at `buf[0] == b'/'`: the index of
/// the `!` and the index one past the line end after the CRC; when the input
/// ends right after the CRC digits (many saved captures), the input's end.
pub fn find_end(buf: &[u8]) -> Option<(usize, usize)> {
    let bang = find_bang(buf)?;
    let end = trailer_end(buf, bang).unwrap_or(buf.len());
    Some((bang, end))
}

/// Parses the telegram at the start of `input` (which must start with `/`).
///
/// # Errors
/// [`ErrorKind::UnknownFraming`] when `input` does not start with `/`;
/// [`ErrorKind::Truncated`] when the `!` line or its line end is missing.
/// A CRC mismatch is not an error here: it is reported in [`Telegram::crc`].
pub fn parse(input: &[u8]) -> Result<Telegram<'_>> {
    match input.first() {
        Some(b'/') => {}
        Some(&found) => return Err(DecodeError::new(ErrorKind::UnknownFraming { found }, 0)),
        None => return Err(DecodeError::new(ErrorKind::Empty, 0)),
    }
    let (bang, end) = match find_end(input) {
        Some(found) => found,
        // DSMR 2.2/3.0 captures without "!": complete lines and no version
        // line (1-3:0.2.8, DSMR 4 and later, which always end in "!CRC").
        None if input.ends_with(b"\n") && !contains(input, b"\n1-3:0.2.8(") => {
            (input.len(), input.len())
        }
        None => {
            return Err(DecodeError::new(
                ErrorKind::Truncated { needed: 1 },
                input.len(),
            ))
        }
    };
    let body = input.get(..bang).unwrap_or_default();
    let lf_only = !body.contains(&b'\r');
    // CRC digits after "!": 1 to 4 hex digits in any case (a NUL may follow).
    let trailer = input.get(bang + 1..end).unwrap_or_default();
    let digits = trailer.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let crc = if digits == 0 {
        Crc::Missing
    } else {
        let given = trailer.iter().take(digits.min(4)).fold(0u16, |v, d| {
            (v << 4) | u16::from((*d as char).to_digit(16).unwrap_or(0) as u8)
        });
        let region = input.get(..=bang).unwrap_or_default();
        let computed = crc16(region);
        // An LF-only capture is checked in its CR LF form.
        if computed == given || (lf_only && crc_as_crlf(region) == given) {
            Crc::Ok(given)
        } else {
            Crc::Mismatch { given, computed }
        }
    };

    let header_end = find_byte(body, b'\n').unwrap_or(body.len());
    let header = trim_cr(body.get(1..header_end).unwrap_or_default());
    // Real lines are 12 bytes or more ("0-0:96.13.0()" and a line end), and
    // most carry one group.
    let mut lines: Vec<Line> = Vec::with_capacity(body.len() / 12 + 4);
    let mut groups: Vec<Cow<'_, [u8]>> = Vec::with_capacity(body.len() / 12 + 4);
    let mut unknown = Vec::new();
    // A group left open at a line end continues on the next line.
    let mut open: Option<(Code, usize, Vec<u8>)> = None;
    let mut pos = header_end + 1;
    while pos < bang {
        let nl = body.get(pos..).and_then(|r| find_byte(r, b'\n'));
        let line_end = nl.map_or(bang, |n| pos + n);
        let line = trim_cr(body.get(pos..line_end).unwrap_or_default());
        let offset = pos;
        pos = line_end + 1;
        if let Some((code, at, mut text)) = open.take() {
            text.extend_from_slice(line);
            finish(&mut lines, &mut groups, code, at, text, &mut open);
            continue;
        }
        let Some(&first) = line.first() else {
            continue;
        };
        if first == b'(' {
            // A continuation line: more groups of the previous line (the last
            // one to add groups, so its range ends where the new ones start).
            let added = !lines.is_empty() && split_groups(line, &mut groups, Cow::Borrowed);
            match lines.last_mut() {
                Some(prev) if added => prev.groups.end = groups.len(),
                _ => unknown.push(line),
            }
            continue;
        }
        let Some(paren) = find_byte(line, b'(') else {
            unknown.push(line);
            continue;
        };
        let (code, rest) = line.split_at(paren);
        let Some(code) = Code::parse(code) else {
            unknown.push(line);
            continue;
        };
        let start = groups.len();
        if split_groups(rest, &mut groups, Cow::Borrowed) {
            lines.push(Line {
                code,
                groups: start..groups.len(),
                offset,
            });
        } else if left_open(rest) {
            open = Some((code, offset, rest.to_vec()));
        } else {
            unknown.push(line);
        }
    }
    if let Some((code, at, text)) = open {
        finish(&mut lines, &mut groups, code, at, text, &mut None);
    }
    Ok(Telegram {
        header,
        lines,
        groups,
        unknown,
        crc,
        lf_only,
        len: end,
    })
}

/// Completes a line whose group spanned physical lines (a text that is no
/// groups even then is dropped).
fn finish(
    lines: &mut Vec<Line>,
    groups: &mut Vec<Cow<'_, [u8]>>,
    code: Code,
    offset: usize,
    text: Vec<u8>,
    open: &mut Option<(Code, usize, Vec<u8>)>,
) {
    let start = groups.len();
    if split_groups(&text, groups, |g| Cow::Owned(g.to_vec())) {
        lines.push(Line {
            code,
            groups: start..groups.len(),
            offset,
        });
    } else if left_open(&text) {
        *open = Some((code, offset, text));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &[u8] = b"/ISk5\\2MT382-1000\r\n\r\n1-3:0.2.8(50)\r\n1-0:1.8.1(000001.001*kWh)\r\n0-1:24.2.1(170102161005W)(00000.107*m3)\r\n!";

    #[test]
    fn grammar() {
        let mut t = T.to_vec();
        let crc = crc16(&t);
        t.extend_from_slice(format!("{crc:04X}\r\n").as_bytes());
        let p = parse(&t).unwrap();
        assert_eq!(p.header, b"ISk5\\2MT382-1000");
        assert_eq!(p.crc, Crc::Ok(crc));
        assert_eq!(p.lines.len(), 3);
        assert_eq!(p.lines[1].code.text(), "1-0:1.8.1");
        assert_eq!(&*p.groups_of(&p.lines[2])[1], b"00000.107*m3");
        assert_eq!(p.len, t.len());
        assert!(!p.lf_only);
        // Lower case, unpadded digits.
        let mut lower = T.to_vec();
        lower.extend_from_slice(format!("{crc:x}\r\n").as_bytes());
        assert_eq!(parse(&lower).unwrap().crc, Crc::Ok(crc));
    }

    #[test]
    fn lf_only_is_checked_as_crlf() {
        let crlf_crc = crc16(T);
        let lf: Vec<u8> = T.iter().copied().filter(|&b| b != b'\r').collect();
        let mut t = lf.clone();
        t.extend_from_slice(format!("{crlf_crc:04X}\n").as_bytes());
        let p = parse(&t).unwrap();
        assert!(p.lf_only);
        assert_eq!(p.crc, Crc::Ok(crlf_crc));
    }

    #[test]
    fn continuation_and_unknown_lines() {
        let text = b"/KMP5 ZABF\r\n\r\n0-1:24.3.0(121030140000)(00)(60)(1)(0-1:24.2.1)(m3)\r\n(00124.477)\r\n0-0:96.13.0(3031\r\n3233)\r\ngarbage\r\n!\r\n";
        let p = parse(text).unwrap();
        assert_eq!(p.crc, Crc::Missing);
        assert_eq!(p.groups_of(&p.lines[0]).len(), 7);
        assert_eq!(&*p.groups_of(&p.lines[0])[6], b"00124.477");
        assert_eq!(&*p.groups_of(&p.lines[1])[0], b"30313233");
        assert_eq!(p.unknown, vec![&b"garbage"[..]]);
    }

    #[test]
    fn codes() {
        assert_eq!(Code::parse(b"1-0:1.8.1").unwrap().groups, [1, 0, 1, 8, 1]);
        assert_eq!(
            Code::parse(b"1-0:1.8.0*255").unwrap().groups,
            [1, 0, 1, 8, 0]
        );
        assert!(Code::parse(b"1-0:1.8").is_none());
        assert!(Code::parse(b"1-0:1:8.1").is_none());
        assert!(parse(b"/X\r\n\r\n1-0:1.8.1(1)").is_err());
    }

    /// `Code::parse` as it was first written, group by group, as a reference.
    fn parse_reference(text: &[u8]) -> Option<Code> {
        let mut groups = [0u8; 5];
        let mut i = 0usize;
        let mut current: Option<u16> = None;
        for &b in text {
            match b {
                b'0'..=b'9' => {
                    let v = current.unwrap_or(0) * 10 + u16::from(b - b'0');
                    if v > 255 {
                        return None;
                    }
                    current = Some(v);
                }
                b'-' | b':' | b'.' | b'*' => {
                    let expected = match i {
                        0 => b == b'-',
                        1 => b == b':',
                        2 | 3 => b == b'.',
                        4 => b == b'*' || b == b'.',
                        _ => false,
                    };
                    let v = current.take()?;
                    if i < 5 {
                        groups[i] = v as u8;
                    }
                    if !expected {
                        return None;
                    }
                    i += 1;
                }
                _ => return None,
            }
        }
        let v = current?;
        match i {
            4 => groups[4] = v as u8,
            5 => {}
            _ => return None,
        }
        Some(Code { groups })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(5000))]

        #[test]
        fn codes_parse_as_the_reference(s in "[0-9:.*(a-]{0,16}|[0-9]{1,3}-[0-9]{1,3}:[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,4}([*.][0-9]{1,4})?[(]?[0-9(a]{0,3}") {
            let b = s.as_bytes();
            proptest::prop_assert_eq!(Code::parse(b), parse_reference(b), "{}", s);
        }

        #[test]
        fn find_byte_finds_the_first(hay in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80), needle in proptest::prelude::any::<u8>()) {
            proptest::prop_assert_eq!(find_byte(&hay, needle), hay.iter().position(|&b| b == needle));
        }
    }
}

//! Hex dumps as people paste them: telegram bytes from text.
//!
//! Accepts the forms serial tools and bridges print:
//!
//! * contiguous digits, `684d4d68…` (either case);
//! * pairs separated by spaces, tabs, line breaks, `:`, `/`, `-` or `,`
//!   (`68 4d 4d 68`, libmbus; `68:4d:4d:68`; `68-4D-4D-68`), in any mix;
//! * `0x`/`0X` prefixes, `0x68, 0x4d` or `0x684d4d68`;
//! * otb-iot's serial-over-MQTT status messages, `ok:68/4d/…/16/xx`, several
//!   of them in order (their bytes joined): otb-iot sends at most 25 bytes a
//!   message and ends the last one with `xx`, "the buffer is empty" (otb-iot
//!   `docs/source/serial_over_mqtt.rst`).
//!
//! Every group of digits between separators must have an even number of
//! digits. Anything else is an error whose offset is the *character* position
//! (Unicode code point, as Python counts) of the offending character or group.

use crate::error::{DecodeError, ErrorKind};
use crate::hex::nibble;

/// otb-iot's status message prefix.
const OK_PREFIX: &[u8; 3] = b"ok:";
/// otb-iot's "buffer empty" marker, last in a status message.
const END_MARKER: &[u8; 2] = b"xx";

/// Whether `c` separates groups of digits.
pub fn is_separator(c: u8) -> bool {
    c.is_ascii_whitespace() || matches!(c, b':' | b'/' | b'-' | b',')
}

/// Whether `text[at..]` starts with `pattern`, ASCII case ignored.
fn starts_with_at(text: &[u8], at: usize, pattern: &[u8]) -> bool {
    text.get(at..at + pattern.len())
        .is_some_and(|s| s.eq_ignore_ascii_case(pattern))
}

/// The first index at or after `at` that is not a separator.
fn skip_separators(text: &[u8], mut at: usize) -> usize {
    while text.get(at).copied().is_some_and(is_separator) {
        at += 1;
    }
    at
}

/// An error of `kind` at byte index `at` of `text`, its offset turned into a
/// character offset.
fn error(text: &str, at: usize, kind: ErrorKind) -> DecodeError {
    let chars = text.get(..at).map_or(at, |s| s.chars().count());
    DecodeError::new(kind, chars)
}

/// The character starting at byte index `at` (for error messages).
fn char_at(text: &str, at: usize) -> char {
    text.get(at..)
        .and_then(|s| s.chars().next())
        .unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// The bytes of a hex dump in any of the forms of the module documentation.
///
/// # Errors
/// [`ErrorKind::InvalidHexCharacter`] at the first character that is neither a
/// hex digit, a separator, a `0x` prefix, `ok:` nor a final `xx` of an `ok:`
/// message; [`ErrorKind::OddHexDigits`] at a group with an odd number of
/// digits. Offsets count characters.
pub fn parse(text: &str) -> Result<Vec<u8>, DecodeError> {
    let s = text.as_bytes();
    let mut out = Vec::with_capacity(s.len() / 2);
    // Inside an otb-iot status message (its `xx` end marker is allowed).
    let mut in_message = false;
    let mut at = skip_separators(s, 0);
    while at < s.len() {
        if starts_with_at(s, at, OK_PREFIX) {
            in_message = true;
            at = skip_separators(s, at + OK_PREFIX.len());
            continue;
        }
        if in_message && starts_with_at(s, at, END_MARKER) {
            // Only the last group of a message: then the end or the next `ok:`.
            let next = skip_separators(s, at + END_MARKER.len());
            if next == s.len() || starts_with_at(s, next, OK_PREFIX) {
                in_message = false;
                at = next;
                continue;
            }
        }
        let prefixed = s.get(at) == Some(&b'0')
            && matches!(s.get(at + 1), Some(b'x' | b'X'))
            && s.get(at + 2).copied().and_then(nibble).is_some();
        let start = if prefixed { at + 2 } else { at };
        let mut end = start;
        while let Some(n) = s.get(end).copied().and_then(nibble) {
            if (end - start) % 2 == 1 {
                let high = s.get(end - 1).copied().and_then(nibble).unwrap_or(0);
                out.push((high << 4) | n);
            }
            end += 1;
        }
        if let Some(&c) = s.get(end) {
            // Messages pasted without a line break between them: `…/14ok:04/…`.
            if !is_separator(c) && !starts_with_at(s, end, OK_PREFIX) {
                return Err(error(
                    text,
                    end,
                    ErrorKind::InvalidHexCharacter {
                        found: char_at(text, end),
                    },
                ));
            }
        }
        let count = end - start;
        if count % 2 == 1 {
            return Err(error(text, start, ErrorKind::OddHexDigits { count }));
        }
        at = skip_separators(s, end);
    }
    Ok(out)
}

/// How [`format`] writes bytes (used by tests and documentation examples).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `684d4d68`.
    Plain,
    /// Upper-case pairs joined by the separator: `68 4D 4D 68` with `' '`.
    Separated(char),
    /// `0x68, 0x4d` (`0X` upper-case when the flag is set).
    Prefixed(bool),
    /// 16 pairs a line, space-separated, lines ended by CR LF.
    Lines,
    /// otb-iot status messages: `ok:68/4d/…` with 25 bytes each, one a line,
    /// the last one ended by `/xx`.
    Otb,
}

/// `bytes` written in `style`.
pub fn format(bytes: &[u8], style: Style) -> String {
    let pairs = |upper: bool| -> Vec<String> {
        bytes
            .iter()
            .map(|b| {
                if upper {
                    std::format!("{b:02X}")
                } else {
                    std::format!("{b:02x}")
                }
            })
            .collect()
    };
    match style {
        Style::Plain => pairs(false).concat(),
        Style::Separated(sep) => pairs(true).join(&sep.to_string()),
        Style::Prefixed(upper) => {
            let x = if upper { "0X" } else { "0x" };
            pairs(false)
                .iter()
                .map(|p| std::format!("{x}{p}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
        Style::Lines => pairs(false)
            .chunks(16)
            .map(|line| line.join(" ") + "\r\n")
            .collect(),
        Style::Otb => {
            let mut lines: Vec<String> = pairs(false)
                .chunks(25)
                .map(|m| std::format!("ok:{}", m.join("/")))
                .collect();
            match lines.last_mut() {
                Some(last) => last.push_str("/xx"),
                None => lines.push("ok:xx".to_owned()),
            }
            lines.join("\n")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kind_at(text: &str) -> (ErrorKind, usize) {
        let e = parse(text).unwrap_err();
        (e.kind, e.offset)
    }

    #[test]
    fn every_separator_form() {
        let want = vec![0x68, 0x4d, 0x4d, 0x68, 0x08, 0x01];
        for text in [
            "684d4d680801",
            "684D4D680801",
            "68 4d 4d 68 08 01",
            "68:4d:4d:68:08:01",
            "68/4d/4d/68/08/01",
            "68-4d-4d-68-08-01",
            "68,4d,4d,68,08,01",
            "0x68, 0x4d, 0x4d, 0x68, 0x08, 0x01",
            "0X68 0X4D 0X4D 0X68 0X08 0X01",
            "0x684d4d680801",
            "  68\t4d\r\n4d 68\n0801\n",
            "ok:68/4d/4d/68/08/01",
            "ok:68/4d/4d\nok:68/08/01/xx",
            "ok:68/4d/4d/xx\nok:68/08/01/xx\n",
            "OK:684d4d680801",
        ] {
            assert_eq!(parse(text), Ok(want.clone()), "{text:?}");
        }
        assert_eq!(parse(""), Ok(vec![]));
        assert_eq!(parse("ok:xx"), Ok(vec![]));
    }

    #[test]
    fn errors_name_the_character() {
        assert_eq!(
            kind_at("68 4g"),
            (ErrorKind::InvalidHexCharacter { found: 'g' }, 4)
        );
        assert_eq!(kind_at("68 4 d"), (ErrorKind::OddHexDigits { count: 1 }, 3));
        assert_eq!(kind_at("684"), (ErrorKind::OddHexDigits { count: 3 }, 0));
        assert_eq!(
            kind_at("0x"),
            (ErrorKind::InvalidHexCharacter { found: 'x' }, 1)
        );
        // Offsets count characters, not UTF-8 bytes.
        assert_eq!(
            kind_at("ä 68 zz"),
            (ErrorKind::InvalidHexCharacter { found: 'ä' }, 0)
        );
        assert_eq!(
            kind_at("68 ä"),
            (ErrorKind::InvalidHexCharacter { found: 'ä' }, 3)
        );
        assert_eq!(
            kind_at("€€ 6"),
            (ErrorKind::InvalidHexCharacter { found: '€' }, 0)
        );
        assert_eq!(kind_at("68 € 6").1, 3);
        // `xx` ends an `ok:` message only, and only as its last group.
        assert_eq!(kind_at("68 xx").1, 3);
        assert_eq!(kind_at("ok:01/xx/02").1, 6);
        assert_eq!(parse("ok:01/xxok:02"), Ok(vec![1, 2]));
        assert_eq!(parse("ok:01/02ok:03"), Ok(vec![1, 2, 3]));
        assert_eq!(kind_at("ok:01/xx02").1, 6);
        let e = parse("68 4g").unwrap_err();
        assert_eq!(
            e.to_string(),
            "not hexadecimal text: invalid character 'g' at character position 4"
        );
        assert_eq!(
            parse("684").unwrap_err().to_string(),
            "not hexadecimal text: a group of 3 hex digits (an odd number) at character position 0"
        );
    }

    #[test]
    fn otb_iot_status_messages_of_the_documentation() {
        // otb-iot docs/source/serial_over_mqtt.rst.
        assert_eq!(parse("ok:01/02/03/04/xx"), Ok(vec![1, 2, 3, 4]));
        let text = include_str!("../tests/data/mbus/otb_iot_cf_echo_ii_status_messages.txt");
        let bytes = parse(text).unwrap();
        assert_eq!(bytes.len(), 83);
        assert_eq!(bytes[..4], [0x68, 0x4d, 0x4d, 0x68]);
        assert_eq!(bytes[81..], [0xff, 0x16]);
    }

    fn styles() -> Vec<Style> {
        vec![
            Style::Plain,
            Style::Separated(' '),
            Style::Separated(':'),
            Style::Separated('/'),
            Style::Separated('-'),
            Style::Separated(','),
            Style::Separated('\t'),
            Style::Separated('\n'),
            Style::Prefixed(false),
            Style::Prefixed(true),
            Style::Lines,
            Style::Otb,
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn every_style_parses_back(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            for style in styles() {
                let text = format(&bytes, style);
                prop_assert_eq!(parse(&text), Ok(bytes.clone()), "{:?}: {:?}", style, text);
            }
        }

        #[test]
        fn arbitrary_text_never_panics(text in any::<String>()) {
            if let Err(e) = parse(&text) {
                prop_assert!(e.offset <= text.chars().count());
            }
        }

        #[test]
        fn near_misses_never_panic(text in "[0-9a-fA-FxXok: /,\\-\t\r\n€]{0,40}") {
            match parse(&text) {
                Ok(bytes) => prop_assert!(bytes.len() * 2 <= text.len()),
                Err(e) => prop_assert!(e.offset < text.chars().count().max(1)),
            }
        }
    }
}

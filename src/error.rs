//! The one error type of the decoders: what went wrong and at which byte.
//!
//! Every decoder returns [`DecodeError`], a [`ErrorKind`] plus the absolute byte
//! offset into the bytes the caller passed in. Kinds carry their evidence
//! (expected and computed checksums, the byte found, …) so a message can say
//! exactly what was wrong. Messages are lower case and never contain key
//! material: no kind has a field that could hold a key.

use core::fmt;

/// Result alias used throughout the crate.
pub type Result<T> = core::result::Result<T, DecodeError>;

/// The class of an error, which decides the Python exception it becomes.
///
/// `Frame` → `mbuspico.FrameError`, `Checksum` → `mbuspico.ChecksumError`,
/// `Record` → `mbuspico.RecordError`, `Apdu` → `mbuspico.ApduError`,
/// `Decryption` → `mbuspico.DecryptionError`, `Hex` → `mbuspico.HexError`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// Link-layer envelope: start, length, stop byte, truncation, segments.
    Frame,
    /// A frame's checksum does not match its contents.
    Checksum,
    /// M-Bus data header or data records (EN 13757-3): DIF, VIF, data fields.
    Record,
    /// The (decrypted) application data: APDU tags, A-XDR encoding, date-time.
    Apdu,
    /// Missing or wrong key, authentication tag mismatch, unsupported security.
    Decryption,
    /// Hex text that is no hex dump ([`crate::hexdump`]); the offset counts characters.
    Hex,
}

/// What was wrong, with the evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input is empty.
    Empty,
    /// The input ended early: at least `needed` more bytes were expected.
    Truncated {
        /// How many bytes were missing at least.
        needed: usize,
    },
    /// The first byte does not start any framing this decoder knows.
    UnknownFraming {
        /// The byte found.
        found: u8,
    },
    /// An M-Bus long frame does not start `68 L L 68`.
    InvalidStart {
        /// The byte found where `0x68` was expected.
        found: u8,
    },
    /// The two L-fields of an M-Bus long frame differ.
    LengthMismatch {
        /// First L-field.
        first: u8,
        /// Second L-field.
        second: u8,
    },
    /// The stop byte `0x16` is missing.
    InvalidStop {
        /// The byte found where `0x16` was expected.
        found: u8,
    },
    /// The M-Bus checksum (8-bit sum of C-field to last data byte) does not match.
    Checksum {
        /// The checksum byte in the frame.
        expected: u8,
        /// The sum computed over the frame.
        computed: u8,
    },
    /// A DSMR telegram's CRC-16 does not match (DSMR 5.0.2 §6.2).
    Crc16 {
        /// The CRC in the telegram.
        given: u16,
        /// The CRC computed over `/` … `!`.
        computed: u16,
    },
    /// The CI-field is not one of the DLMS transport values 0x00–0x1F.
    NotDlmsTransport {
        /// The CI-field found.
        ci: u8,
    },
    /// A DLMS transport segment arrived out of order.
    SegmentOutOfOrder {
        /// The sequence number expected next.
        expected: u8,
        /// The sequence number found.
        found: u8,
    },
    /// The frames ended before the segment with the last-segment bit.
    MissingSegment {
        /// The sequence number of the segment that is missing.
        expected: u8,
    },
    /// Bytes follow the telegram.
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// An APDU tag this decoder does not handle.
    UnknownApduTag {
        /// The tag found.
        tag: u8,
    },
    /// An unsupported BER or A-XDR length form.
    InvalidLength {
        /// The first length byte.
        found: u8,
    },
    /// A length field announces more bytes than there are.
    LengthOverrun {
        /// Bytes announced.
        declared: usize,
        /// Bytes present.
        available: usize,
    },
    /// The system title is not 8 bytes long.
    InvalidSystemTitle {
        /// Its length.
        len: usize,
    },
    /// An A-XDR type tag this decoder does not know.
    UnknownDataType {
        /// The tag found.
        tag: u8,
    },
    /// A-XDR structures and arrays nest deeper than the decoder allows.
    NestingTooDeep {
        /// The limit.
        limit: usize,
    },
    /// A date-time field is not 0 (absent) or 12 bytes long.
    InvalidDateTimeLength {
        /// Its length.
        len: usize,
    },
    /// The APDU has bytes after its last element.
    TrailingApduBytes {
        /// How many.
        count: usize,
    },
    /// The telegram is encrypted and the decoder has no key.
    MissingKey,
    /// The telegram carries an authentication tag and the decoder has no authentication key.
    MissingAuthKey,
    /// The GCM authentication tag does not match: wrong key, wrong authentication key or corrupt data.
    AuthenticationFailed,
    /// Without a tag, decrypted bytes that are not a data-notification mean a wrong key.
    ImplausiblePlaintext {
        /// What the plaintext parser found.
        reason: Box<ErrorKind>,
        /// Where in the plaintext.
        plaintext_offset: usize,
    },
    /// A security control byte this decoder cannot handle.
    UnsupportedSecurity {
        /// The security control byte.
        security_control: u8,
    },
    /// An M-Bus CI-field this decoder does not handle.
    UnsupportedCi {
        /// The CI-field.
        ci: u8,
    },
    /// The M-Bus variable data header is cut short.
    HeaderTooShort {
        /// Bytes present after the CI-field.
        len: usize,
    },
    /// The M-Bus fixed data structure is not 16 bytes.
    FixedDataLength {
        /// Bytes present after the CI-field.
        len: usize,
    },
    /// An M-Bus data record ends early.
    PrematureEnd {
        /// Where: "DIF", "VIF", "variable length VIF" or "data".
        part: &'static str,
    },
    /// More than 10 DIFE or VIFE.
    TooManyExtensions {
        /// "DIFE" or "VIFE".
        part: &'static str,
    },
    /// A plain-text VIF longer than 128 characters.
    PlainTextTooLong {
        /// The length byte.
        len: usize,
    },
    /// An HDLC frame does not start or end with the flag `0x7E`.
    InvalidHdlcFlag {
        /// The byte found where `0x7E` was expected.
        found: u8,
    },
    /// The HDLC frame format field is not type 3 (`0xA` in the upper four bits).
    InvalidHdlcFormat {
        /// The first byte of the frame format field.
        found: u8,
    },
    /// An HDLC address is not 1, 2 or 4 bytes long (its last byte has the LSB set).
    InvalidHdlcAddress {
        /// Its length; 5 means no byte with the LSB set among the first 4.
        len: usize,
    },
    /// The HDLC frame length field is too small for the frame's header and FCS.
    HdlcLengthTooShort {
        /// The length field.
        length: usize,
        /// The smallest length this header allows.
        minimum: usize,
    },
    /// An HDLC header check sequence (HCS) or frame check sequence (FCS), CRC-16/X.25, does not match.
    HdlcCrc {
        /// "HCS" or "FCS".
        field: &'static str,
        /// The CRC in the frame.
        given: u16,
        /// The CRC computed over the frame.
        computed: u16,
    },
    /// The first HDLC information field does not start with the LLC header `E6 E7 00` (or `E6 E6 00`).
    InvalidLlc {
        /// The first (up to 3) bytes of the information field.
        found: Vec<u8>,
    },
    /// A general-block-transfer block does not carry the next block number.
    GbtBlockOutOfOrder {
        /// The block number expected next (blocks count from 1).
        expected: u16,
        /// The block number found.
        found: u16,
    },
    /// A general-block-transfer block announces more block data than its APDU holds.
    GbtBlockOverrun {
        /// Bytes announced.
        declared: usize,
        /// Bytes present.
        available: usize,
    },
    /// The frames ended before the general-block-transfer block with the last-block bit.
    GbtIncomplete {
        /// The block number that is missing.
        expected: u16,
    },
    /// The telegram carries no authentication tag although this meter's
    /// telegrams must (an authentication key was given, or the profile's meter
    /// tags every telegram): a tag stripped on the way is refused.
    MissingTag {
        /// The security control byte found.
        security_control: u8,
    },
    /// The data-notification holds numbers but none under an OBIS code, and
    /// they fit none of the known positional layouts or an object list.
    UnsupportedLayout,
    /// The telegram is not framed the way the selected meter profile sends.
    ProfileFraming {
        /// The profile's name.
        profile: &'static str,
        /// The framing it expects (`"M-Bus (0x68)"`, `"HDLC (0x7e)"`, …).
        expected: &'static str,
        /// The first byte found.
        found: u8,
    },
    /// The data-notification's layout is not the one of the selected meter profile.
    ProfileLayout {
        /// The profile's name.
        profile: &'static str,
        /// The layout it expects.
        expected: &'static str,
        /// The layout found.
        found: &'static str,
    },
    /// Hex text holds a character that is no hex digit, separator or prefix
    /// ([`crate::hexdump`]); the offset is its character position.
    InvalidHexCharacter {
        /// The character found.
        found: char,
    },
    /// A group of hex digits between separators has an odd number of digits
    /// ([`crate::hexdump`]); the offset is the group's character position.
    OddHexDigits {
        /// How many digits the group has.
        count: usize,
    },
}

impl ErrorKind {
    /// The class of this error (decides the Python exception).
    pub fn category(&self) -> Category {
        use ErrorKind::*;
        match self {
            Checksum { .. } | Crc16 { .. } | HdlcCrc { .. } => Category::Checksum,
            Empty
            | Truncated { .. }
            | UnknownFraming { .. }
            | ProfileFraming { .. }
            | InvalidStart { .. }
            | LengthMismatch { .. }
            | InvalidStop { .. }
            | NotDlmsTransport { .. }
            | SegmentOutOfOrder { .. }
            | MissingSegment { .. }
            | TrailingBytes { .. }
            | InvalidHdlcFlag { .. }
            | InvalidHdlcFormat { .. }
            | InvalidHdlcAddress { .. }
            | HdlcLengthTooShort { .. }
            | InvalidLlc { .. }
            | GbtIncomplete { .. } => Category::Frame,
            UnknownApduTag { .. }
            | InvalidLength { .. }
            | LengthOverrun { .. }
            | InvalidSystemTitle { .. }
            | UnknownDataType { .. }
            | NestingTooDeep { .. }
            | InvalidDateTimeLength { .. }
            | TrailingApduBytes { .. }
            | GbtBlockOutOfOrder { .. }
            | GbtBlockOverrun { .. }
            | UnsupportedLayout
            | ProfileLayout { .. } => Category::Apdu,
            MissingKey
            | MissingAuthKey
            | MissingTag { .. }
            | AuthenticationFailed
            | ImplausiblePlaintext { .. }
            | UnsupportedSecurity { .. } => Category::Decryption,
            UnsupportedCi { .. }
            | HeaderTooShort { .. }
            | FixedDataLength { .. }
            | PrematureEnd { .. }
            | TooManyExtensions { .. }
            | PlainTextTooLong { .. } => Category::Record,
            InvalidHexCharacter { .. } | OddHexDigits { .. } => Category::Hex,
        }
    }

    /// A short stable identifier, exposed to Python as `.kind`.
    pub fn name(&self) -> &'static str {
        use ErrorKind::*;
        match self {
            Empty => "empty",
            Truncated { .. } => "truncated",
            UnknownFraming { .. } => "unknown_framing",
            InvalidStart { .. } => "invalid_start",
            LengthMismatch { .. } => "length_mismatch",
            InvalidStop { .. } => "invalid_stop",
            Checksum { .. } => "checksum",
            Crc16 { .. } => "crc16",
            NotDlmsTransport { .. } => "not_dlms_transport",
            SegmentOutOfOrder { .. } => "segment_out_of_order",
            MissingSegment { .. } => "missing_segment",
            TrailingBytes { .. } => "trailing_bytes",
            UnknownApduTag { .. } => "unknown_apdu_tag",
            InvalidLength { .. } => "invalid_length",
            LengthOverrun { .. } => "length_overrun",
            InvalidSystemTitle { .. } => "invalid_system_title",
            UnknownDataType { .. } => "unknown_data_type",
            NestingTooDeep { .. } => "nesting_too_deep",
            InvalidDateTimeLength { .. } => "invalid_date_time_length",
            TrailingApduBytes { .. } => "trailing_apdu_bytes",
            MissingKey => "missing_key",
            MissingAuthKey => "missing_auth_key",
            MissingTag { .. } => "missing_tag",
            AuthenticationFailed => "authentication_failed",
            ImplausiblePlaintext { .. } => "implausible_plaintext",
            UnsupportedSecurity { .. } => "unsupported_security",
            UnsupportedCi { .. } => "unsupported_ci",
            HeaderTooShort { .. } => "header_too_short",
            FixedDataLength { .. } => "fixed_data_length",
            PrematureEnd { .. } => "premature_end",
            TooManyExtensions { .. } => "too_many_extensions",
            PlainTextTooLong { .. } => "plain_text_too_long",
            InvalidHdlcFlag { .. } => "invalid_hdlc_flag",
            InvalidHdlcFormat { .. } => "invalid_hdlc_format",
            InvalidHdlcAddress { .. } => "invalid_hdlc_address",
            HdlcLengthTooShort { .. } => "hdlc_length_too_short",
            HdlcCrc { .. } => "hdlc_crc",
            InvalidLlc { .. } => "invalid_llc",
            GbtBlockOutOfOrder { .. } => "gbt_block_out_of_order",
            GbtBlockOverrun { .. } => "gbt_block_overrun",
            GbtIncomplete { .. } => "gbt_incomplete",
            UnsupportedLayout => "unsupported_layout",
            ProfileFraming { .. } => "profile_framing",
            ProfileLayout { .. } => "profile_layout",
            InvalidHexCharacter { .. } => "invalid_hex",
            OddHexDigits { .. } => "odd_hex_digits",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ErrorKind::*;
        match self {
            Empty => write!(f, "empty input"),
            Truncated { needed } => write!(f, "input ends early: {needed} more byte(s) needed"),
            UnknownFraming { found } => write!(
                f,
                "unknown framing: 0x{found:02x} starts neither an M-Bus long frame (0x68), an HDLC frame (0x7e) nor a DLMS APDU (0xdb, 0x0f)"
            ),
            InvalidStart { found } => {
                write!(f, "invalid M-Bus long frame start: found 0x{found:02x}, expected 0x68")
            }
            LengthMismatch { first, second } => write!(
                f,
                "M-Bus L-fields differ: 0x{first:02x} and 0x{second:02x}"
            ),
            InvalidStop { found } => {
                write!(f, "invalid M-Bus stop byte: found 0x{found:02x}, expected 0x16")
            }
            Checksum { expected, computed } => write!(
                f,
                "M-Bus checksum mismatch: frame says 0x{expected:02x}, computed 0x{computed:02x}"
            ),
            Crc16 { given, computed } => write!(
                f,
                "DSMR telegram CRC mismatch: telegram says {given:04X}, computed {computed:04X}"
            ),
            NotDlmsTransport { ci } => write!(
                f,
                "CI-field 0x{ci:02x} is not a DLMS transport segment (0x00-0x1f)"
            ),
            SegmentOutOfOrder { expected, found } => write!(
                f,
                "DLMS transport segment out of order: expected sequence {expected}, found {found}"
            ),
            MissingSegment { expected } => write!(
                f,
                "DLMS transport segment {expected} is missing: no segment with the last-segment bit"
            ),
            TrailingBytes { count } => write!(f, "{count} byte(s) after the end of the telegram"),
            UnknownApduTag { tag } => write!(f, "unknown APDU tag 0x{tag:02x}"),
            InvalidLength { found } => write!(f, "invalid length form 0x{found:02x}"),
            LengthOverrun {
                declared,
                available,
            } => write!(
                f,
                "length field announces {declared} byte(s), only {available} present"
            ),
            InvalidSystemTitle { len } => {
                write!(f, "system title is {len} byte(s) long, expected 8")
            }
            UnknownDataType { tag } => write!(f, "unknown A-XDR data type 0x{tag:02x}"),
            NestingTooDeep { limit } => {
                write!(f, "A-XDR structures nest deeper than {limit} levels")
            }
            InvalidDateTimeLength { len } => write!(
                f,
                "date-time is {len} byte(s) long, expected 0 (absent) or 12"
            ),
            TrailingApduBytes { count } => {
                write!(f, "{count} byte(s) after the end of the APDU")
            }
            MissingKey => write!(
                f,
                "telegram is encrypted: a key (the meter's 16-byte global unicast encryption key) is needed"
            ),
            MissingAuthKey => write!(
                f,
                "telegram carries an authentication tag (security control 0x30): an authentication key is needed"
            ),
            MissingTag { security_control } => write!(
                f,
                "telegram carries no authentication tag (security control 0x{security_control:02x}) \
                 but this meter's telegrams must: refused as possibly stripped \
                 (verify_tag=False accepts it)"
            ),
            AuthenticationFailed => write!(
                f,
                "authentication tag mismatch: wrong key, wrong authentication key or corrupt telegram"
            ),
            ImplausiblePlaintext {
                reason,
                plaintext_offset,
            } => write!(
                f,
                "decrypted data is not a valid data-notification (wrong key?): {reason} at plaintext byte {plaintext_offset}"
            ),
            UnsupportedSecurity { security_control } => write!(
                f,
                "unsupported security control byte 0x{security_control:02x}"
            ),
            UnsupportedCi { ci } => write!(f, "unsupported M-Bus CI-field 0x{ci:02x}"),
            HeaderTooShort { len } => write!(
                f,
                "M-Bus variable data header too short: {len} byte(s) after the CI-field"
            ),
            FixedDataLength { len } => write!(
                f,
                "M-Bus fixed data structure is {len} byte(s) long, expected 16"
            ),
            PrematureEnd { part } => write!(f, "premature end of M-Bus record at {part}"),
            TooManyExtensions { part } => write!(f, "more than 10 {part} in an M-Bus record"),
            PlainTextTooLong { len } => write!(
                f,
                "M-Bus plain-text VIF of {len} characters, at most 128 allowed"
            ),
            InvalidHdlcFlag { found } => {
                write!(f, "invalid HDLC flag: found 0x{found:02x}, expected 0x7e")
            }
            InvalidHdlcFormat { found } => write!(
                f,
                "HDLC frame format 0x{found:02x} is not type 3 (0xa in the upper four bits)"
            ),
            InvalidHdlcAddress { len } if *len > 4 => write!(
                f,
                "HDLC address longer than 4 bytes (no byte with the LSB set), only 1, 2 or 4 allowed"
            ),
            InvalidHdlcAddress { len } => write!(
                f,
                "HDLC address of {len} byte(s), only 1, 2 or 4 allowed"
            ),
            HdlcLengthTooShort { length, minimum } => write!(
                f,
                "HDLC frame length {length} is too small: its header and FCS need at least {minimum}"
            ),
            HdlcCrc {
                field,
                given,
                computed,
            } => write!(
                f,
                "HDLC {field} mismatch: frame says 0x{given:04x}, computed 0x{computed:04x}"
            ),
            InvalidLlc { found } => {
                write!(f, "HDLC information field starts with")?;
                if found.is_empty() {
                    write!(f, " nothing")?;
                }
                for b in found {
                    write!(f, " {b:02x}")?;
                }
                write!(f, ", expected the LLC header e6 e7 00 (or e6 e6 00)")
            }
            GbtBlockOutOfOrder { expected, found } => write!(
                f,
                "general block transfer block out of order: expected block {expected}, found {found}"
            ),
            GbtBlockOverrun {
                declared,
                available,
            } => write!(
                f,
                "general block transfer block announces {declared} byte(s) of data, {available} present"
            ),
            GbtIncomplete { expected } => write!(
                f,
                "general block transfer incomplete: the frames end before block {expected} (no block with the last-block bit)"
            ),
            UnsupportedLayout => write!(
                f,
                "the data-notification's values carry no OBIS codes and fit none of the \
                 known positional layouts (Wiener Netze, Netz Burgenland) nor an object list"
            ),
            ProfileFraming {
                profile,
                expected,
                found,
            } => write!(
                f,
                "meter profile {profile:?} sends {expected} frames, but the telegram starts with 0x{found:02x}"
            ),
            ProfileLayout {
                profile,
                expected,
                found,
            } => write!(
                f,
                "meter profile {profile:?} sends the {expected} layout, but the data-notification has the {found} layout"
            ),
            InvalidHexCharacter { found } => {
                write!(f, "not hexadecimal text: invalid character {found:?}")
            }
            OddHexDigits { count } => write!(
                f,
                "not hexadecimal text: a group of {count} hex digits (an odd number)"
            ),
        }
    }
}

/// A decoding failure: what was wrong ([`ErrorKind`]) and where (absolute byte offset
/// into the caller's input; for [`Category::Hex`], the character offset into the text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// What was wrong.
    pub kind: ErrorKind,
    /// Byte offset into the caller's input where the problem was found.
    pub offset: usize,
}

impl DecodeError {
    /// A new error of `kind` at `offset`.
    pub fn new(kind: ErrorKind, offset: usize) -> Self {
        DecodeError { kind, offset }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = if self.kind.category() == Category::Hex {
            "character position"
        } else {
            "byte"
        };
        write!(f, "{} at {unit} {}", self.kind, self.offset)
    }
}

impl std::error::Error for DecodeError {}

//! general-glo-ciphering APDU (tag 0xDB; IEC 62056-5-3 §9.5, DLMS UA Blue Book
//! "Security context"):
//!
//! ```text
//! DB | 08 | system title (8) | BER length | security control (1) | frame counter (4) | ciphertext [| tag (12)]
//! ```
//! The BER length counts security control, frame counter, ciphertext and tag.

use crate::cursor::Cursor;
use crate::error::{DecodeError, ErrorKind, Result};

use super::cipher::{self, Key, TAG_LEN};

/// The general-glo-ciphering APDU tag.
pub const TAG: u8 = 0xDB;

/// Security control byte (Blue Book "security header"): bits 3..0 security suite,
/// bit 4 authentication, bit 5 encryption, bit 6 key set, bit 7 compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecurityControl(pub u8);

impl SecurityControl {
    /// Security suite number (0 and 1 both mean AES-GCM-128 here).
    pub fn suite(self) -> u8 {
        self.0 & 0x0F
    }
    /// Authentication: a GCM tag follows the ciphertext.
    pub fn authenticated(self) -> bool {
        self.0 & 0x10 != 0
    }
    /// Encryption.
    pub fn encrypted(self) -> bool {
        self.0 & 0x20 != 0
    }
    /// Broadcast key set (bit 6).
    pub fn broadcast_key(self) -> bool {
        self.0 & 0x40 != 0
    }
    /// Compression (bit 7).
    pub fn compressed(self) -> bool {
        self.0 & 0x80 != 0
    }
}

/// The parsed header of a general-glo-ciphering APDU; ranges index the APDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GloCiphered {
    /// System title: the meter's manufacturer FLAG id (3 letters) and serial.
    pub system_title: [u8; 8],
    /// Security control byte.
    pub security_control: SecurityControl,
    /// Frame counter (invocation counter).
    pub frame_counter: u32,
    /// Offset of the first ciphertext byte in the APDU.
    pub ciphertext_start: usize,
    /// Offset one past the last ciphertext byte in the APDU.
    pub ciphertext_end: usize,
    /// The authentication tag, when security control bit 4 is set.
    pub tag: Option<[u8; TAG_LEN]>,
}

/// Encrypts `plaintext` into a general-glo-ciphering APDU (the emit side of
/// [`parse`]): AES-CTR without tag, or GCM with a 12-byte tag over
/// AAD = security control ‖ `auth_key` when security control bit 4 is set.
pub fn emit(
    system_title: &[u8; 8],
    security_control: u8,
    frame_counter: u32,
    key: &Key,
    auth_key: Option<&Key>,
    plaintext: &[u8],
) -> Vec<u8> {
    let sc = SecurityControl(security_control);
    let iv = cipher::iv(system_title, frame_counter);
    let mut body = plaintext.to_vec();
    let tag = if sc.authenticated() {
        let mut aad = vec![security_control];
        aad.extend_from_slice(auth_key.map(Key::as_bytes).unwrap_or(&[0; 16]));
        Some(cipher::encrypt_tagged(key, &iv, &aad, &mut body))
    } else {
        // CTR is its own inverse.
        cipher::decrypt_untagged(key, &iv, &mut body);
        None
    };
    let len = 5 + body.len() + tag.map_or(0, |t| t.len());
    let mut out = Vec::with_capacity(len + 14);
    out.extend_from_slice(&[TAG, 8]);
    out.extend_from_slice(system_title);
    match len {
        0..=0x7f => out.push(len as u8),
        0x80..=0xff => out.extend_from_slice(&[0x81, len as u8]),
        _ => {
            out.push(0x82);
            out.extend_from_slice(&(len.min(0xffff) as u16).to_be_bytes());
        }
    }
    out.push(security_control);
    out.extend_from_slice(&frame_counter.to_be_bytes());
    out.extend_from_slice(&body);
    if let Some(tag) = tag {
        out.extend_from_slice(&tag);
    }
    out
}

/// Parses the header of a general-glo-ciphering APDU (offsets relative to `apdu`).
///
/// # Errors
/// [`ErrorKind::UnknownApduTag`], [`ErrorKind::InvalidSystemTitle`],
/// [`ErrorKind::InvalidLength`], [`ErrorKind::LengthOverrun`],
/// [`ErrorKind::TrailingApduBytes`], [`ErrorKind::Truncated`],
/// [`ErrorKind::UnsupportedSecurity`] for compression, unknown suites and
/// unencrypted variants.
pub fn parse(apdu: &[u8]) -> Result<GloCiphered> {
    let mut cur = Cursor::new(apdu, 0);
    let tag = cur.u8()?;
    if tag != TAG {
        return Err(DecodeError::new(ErrorKind::UnknownApduTag { tag }, 0));
    }
    let at = cur.offset();
    let title_len = cur.ber_length()?;
    if title_len != 8 {
        return Err(DecodeError::new(
            ErrorKind::InvalidSystemTitle { len: title_len },
            at,
        ));
    }
    let system_title = cur.array::<8>()?;
    let at = cur.offset();
    let len = cur.ber_length()?;
    if len > cur.remaining() {
        return Err(DecodeError::new(
            ErrorKind::LengthOverrun {
                declared: len,
                available: cur.remaining(),
            },
            at,
        ));
    }
    if len < cur.remaining() {
        return Err(DecodeError::new(
            ErrorKind::TrailingApduBytes {
                count: cur.remaining() - len,
            },
            cur.offset() + len,
        ));
    }
    let at = cur.offset();
    let security_control = SecurityControl(cur.u8()?);
    if security_control.compressed()
        || security_control.suite() > 1
        || !security_control.encrypted()
    {
        return Err(DecodeError::new(
            ErrorKind::UnsupportedSecurity {
                security_control: security_control.0,
            },
            at,
        ));
    }
    let frame_counter = cur.u32_be()?;
    let ciphertext_start = cur.position();
    let (ciphertext_end, tag) = if security_control.authenticated() {
        let end = apdu
            .len()
            .checked_sub(TAG_LEN)
            .filter(|e| *e >= ciphertext_start);
        let Some(end) = end else {
            return Err(cur.error(ErrorKind::Truncated {
                needed: TAG_LEN - cur.remaining(),
            }));
        };
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(apdu.get(end..).unwrap_or(&[0; TAG_LEN]));
        (end, Some(tag))
    } else {
        (apdu.len(), None)
    };
    Ok(GloCiphered {
        system_title,
        security_control,
        frame_counter,
        ciphertext_start,
        ciphertext_end,
        tag,
    })
}

//! DLMS/COSEM push as the Austrian smart meters send it on their customer interface.
//!
//! Layers, outside in (sources in each module; byte layouts in `shared/notes/dlms.md`):
//! 1. [`transport`]: M-Bus long frames (EN 13757-2) carrying DLMS transport segments
//!    (IEC 62056-7-6), reassembled into one APDU; or [`hdlc`]: HDLC type 3 frames
//!    (IEC 62056-46) carrying it, possibly as general block transfer blocks ([`gbt`]);
//! 2. [`security`]: the general-glo-ciphering APDU (IEC 62056-5-3, Blue Book);
//! 3. [`cipher`]: AES-128-GCM with or without tag;
//! 4. [`notification`] and [`axdr`]: the data-notification and its A-XDR data;
//! 5. [`reading`]: the values by OBIS code and MBusPico's field names.
//!
//! [`decode`] runs all of them on one telegram.

pub mod axdr;
pub mod cipher;
pub mod datetime;
pub mod gbt;
pub mod hdlc;
pub mod notification;
pub mod obis;
pub mod offsets;
pub mod push;
pub mod reading;
pub mod security;
pub mod transport;

use std::borrow::Cow;

use crate::error::{DecodeError, ErrorKind, Result};
pub use cipher::Key;
use offsets::OffsetMap;
pub use reading::Reading;

/// The keys a meter's telegrams are decrypted with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys {
    /// Global unicast encryption key (GUEK), 16 bytes.
    pub key: Option<Key>,
    /// Global authentication key (GAK), needed when telegrams carry a GCM tag.
    pub auth_key: Option<Key>,
    /// Decrypt telegrams that carry a GCM tag without verifying it (and without
    /// an authentication key). Off by default: only for meters whose operator
    /// does not hand out the authentication key. Such readings are unauthenticated:
    /// a wrong key is then caught only by the plaintext failing to parse.
    pub skip_tag_check: bool,
    /// Refuse telegrams without a GCM tag (unless `skip_tag_check`): set when
    /// the meter is known to tag every telegram, so that a tag stripped and the
    /// security control byte rewritten on the wire cannot pass as an untagged
    /// telegram (whose CTR ciphertext can be altered bit by bit).
    pub require_tag: bool,
}

/// Decodes one DLMS push telegram into a [`Reading`].
///
/// `input` is one of:
/// * M-Bus long frames carrying DLMS transport segments (starts with `0x68`),
///   e.g. the 282-byte Netz NÖ push;
/// * HDLC type 3 frames carrying the APDU after the LLC header (starts with `0x7E`),
///   e.g. the Wiener Netze and Netz Burgenland pushes; a general block transfer
///   (one block per HDLC frame, Landis+Gyr E450/E570) is reassembled by [`gbt`];
/// * a bare general-glo-ciphering APDU (starts with `0xDB`);
/// * an unencrypted data-notification (starts with `0x0F`).
///
/// # Errors
/// A [`DecodeError`] whose offset is the byte of `input` where the problem was found:
/// framing and checksum errors, APDU and A-XDR errors, [`ErrorKind::MissingKey`],
/// [`ErrorKind::MissingAuthKey`], [`ErrorKind::AuthenticationFailed`],
/// [`ErrorKind::ImplausiblePlaintext`] (a wrong key on a telegram without tag),
/// [`ErrorKind::TrailingBytes`] when anything follows the telegram,
/// [`ErrorKind::UnsupportedLayout`] for an HDLC push whose numbers carry no OBIS
/// codes and fit no known layout.
pub fn decode(input: &[u8], keys: &Keys) -> Result<Reading> {
    decode_as::<dyn Expected>(input, keys, None)
}

/// What a caller expects of a telegram beyond decoding at all: a meter profile
/// (`crate::profile::Profile`) expects its meter's framing and layout.
pub trait Expected {
    /// Refuses a telegram framed otherwise (`input` is the whole telegram).
    ///
    /// # Errors
    /// [`ErrorKind::ProfileFraming`] at byte 0.
    fn check_framing(&self, input: &[u8]) -> Result<()>;

    /// Refuses a data-notification laid out otherwise (`body_at`: where the
    /// APDU starts in the telegram).
    ///
    /// # Errors
    /// [`ErrorKind::ProfileLayout`] at `body_at`.
    fn check_layout(&self, found: reading::Layout, body_at: usize) -> Result<()>;
}

/// [`decode`] for the meter of `profile`: the telegram must also be framed and
/// laid out the way that meter sends it.
///
/// # Errors
/// As [`decode`], and [`ErrorKind::ProfileFraming`] (at byte 0) or
/// [`ErrorKind::ProfileLayout`] (where the APDU starts) when it is not.
pub fn decode_as<P: Expected + ?Sized>(
    input: &[u8],
    keys: &Keys,
    profile: Option<&P>,
) -> Result<Reading> {
    if let Some(p) = profile {
        p.check_framing(input)?;
    }
    let (apdu, map) = unframe(input)?;
    let apdu_at = map.to_input(0);
    let reading = decode_apdu(apdu, &map, keys)?;
    if let Some(p) = profile {
        p.check_layout(reading.layout, apdu_at)?;
    }
    if input.first() == Some(&hdlc::FLAG) {
        // The HDLC meters we know push positional lists (dlms.md §2.4).
        return labelled(reading, apdu_at);
    }
    Ok(reading)
}

/// The data-notification APDU of a telegram, decrypted: what the
/// general-glo-ciphering APDU carries (DLMS Green Book §9.3.5), or the APDU
/// itself when the meter sends it in the clear. Same input and checks as
/// [`decode`] (tag verified where there is one; without a tag the plaintext
/// must parse as a data-notification, the only sign of a wrong key).
///
/// # Errors
/// As [`decode`].
pub fn decrypt_apdu(input: &[u8], keys: &Keys) -> Result<Vec<u8>> {
    let (apdu, map) = unframe(input)?;
    if apdu.first() == Some(&notification::TAG) {
        notification::parse(&apdu).map_err(|e| DecodeError::new(e.kind, map.to_input(e.offset)))?;
        return Ok(apdu.into_owned());
    }
    let decrypted = decrypt(apdu, &map, keys)?;
    let start = decrypted.header.ciphertext_start;
    if let Err(e) = notification::parse(decrypted.plaintext()) {
        let kind = if decrypted.authenticated {
            e.kind
        } else {
            ErrorKind::ImplausiblePlaintext {
                reason: Box::new(e.kind),
                plaintext_offset: e.offset,
            }
        };
        return Err(DecodeError::new(kind, map.to_input(start + e.offset)));
    }
    Ok(decrypted.plaintext().to_vec())
}

/// The APDU of a telegram (segments of M-Bus or HDLC frames reassembled, or the
/// input itself when it starts with an APDU tag) and where its bytes came from.
fn unframe(input: &[u8]) -> Result<(Cow<'_, [u8]>, OffsetMap)> {
    let first = *input
        .first()
        .ok_or_else(|| DecodeError::new(ErrorKind::Empty, 0))?;
    let (apdu, map): (Cow<'_, [u8]>, OffsetMap) = match first {
        crate::mbus::frame::START => whole(input, transport::reassemble(input)?)?,
        hdlc::FLAG => {
            let r = hdlc::reassemble(input)?;
            if r.apdu.first() == Some(&hdlc::GENERAL_BLOCK_TRANSFER) {
                whole(input, gbt::reassemble(input, r)?)?
            } else {
                whole(input, r)?
            }
        }
        security::TAG | notification::TAG => {
            (Cow::Borrowed(input), OffsetMap::identity(0, input.len()))
        }
        found => {
            return Err(DecodeError::new(ErrorKind::UnknownFraming { found }, 0));
        }
    };
    Ok((apdu, map))
}

/// The reassembled APDU, unless bytes follow the frames.
fn whole(input: &[u8], r: transport::Reassembled) -> Result<(Cow<'_, [u8]>, OffsetMap)> {
    if r.consumed < input.len() {
        return Err(DecodeError::new(
            ErrorKind::TrailingBytes {
                count: input.len() - r.consumed,
            },
            r.consumed,
        ));
    }
    Ok((Cow::Owned(r.apdu), r.map))
}

/// A decrypted general-glo-ciphering APDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decrypted {
    /// The APDU header (system title, security control, frame counter).
    pub header: security::GloCiphered,
    /// The APDU with its ciphertext replaced by the plaintext.
    pub apdu: Vec<u8>,
    /// Whether a GCM tag was verified.
    pub authenticated: bool,
}

impl Decrypted {
    /// The plaintext.
    pub fn plaintext(&self) -> &[u8] {
        self.apdu
            .get(self.header.ciphertext_start..self.header.ciphertext_end)
            .unwrap_or_default()
    }
}

/// Verifies and decrypts a general-glo-ciphering APDU (tag checked when the
/// security control byte says so); offsets in errors map to the input via `map`.
///
/// # Errors
/// APDU header errors, [`ErrorKind::MissingKey`], [`ErrorKind::MissingAuthKey`],
/// [`ErrorKind::AuthenticationFailed`].
pub fn decrypt(apdu: Cow<'_, [u8]>, map: &OffsetMap, keys: &Keys) -> Result<Decrypted> {
    let at = |e: DecodeError| DecodeError::new(e.kind, map.to_input(e.offset));
    let header = security::parse(&apdu).map_err(at)?;
    let key = keys
        .key
        .as_ref()
        .ok_or_else(|| DecodeError::new(ErrorKind::MissingKey, map.to_input(0)))?;
    let iv = cipher::iv(&header.system_title, header.frame_counter);
    let ct_at = map.to_input(header.ciphertext_start);
    let mut apdu = apdu.into_owned();
    let plaintext = apdu
        .get_mut(header.ciphertext_start..header.ciphertext_end)
        .unwrap_or_default();
    let sc = header.security_control.0;
    match &header.tag {
        Some(_) if keys.skip_tag_check => cipher::decrypt_untagged(key, &iv, plaintext),
        Some(tag) => {
            let auth_key = keys
                .auth_key
                .as_ref()
                .ok_or_else(|| DecodeError::new(ErrorKind::MissingAuthKey, ct_at))?;
            let mut aad = [0u8; 17];
            let (first, rest) = aad.split_at_mut(1);
            first.copy_from_slice(&[sc]);
            rest.copy_from_slice(auth_key.as_bytes());
            cipher::decrypt_tagged(key, &iv, &aad, plaintext, tag)
                .map_err(|kind| DecodeError::new(kind, map.to_input(header.ciphertext_end)))?;
        }
        None if keys.require_tag && !keys.skip_tag_check => {
            let sc_at = map.to_input(header.ciphertext_start.saturating_sub(5));
            return Err(DecodeError::new(
                ErrorKind::MissingTag {
                    security_control: sc,
                },
                sc_at,
            ));
        }
        None => cipher::decrypt_untagged(key, &iv, plaintext),
    }
    let authenticated = header.tag.is_some() && !keys.skip_tag_check;
    Ok(Decrypted {
        header,
        apdu,
        authenticated,
    })
}

/// Decodes an APDU whose bytes came from the input as `map` says.
pub fn decode_apdu(apdu: Cow<'_, [u8]>, map: &OffsetMap, keys: &Keys) -> Result<Reading> {
    let at = |e: DecodeError| DecodeError::new(e.kind, map.to_input(e.offset));
    match apdu.first() {
        Some(&notification::TAG) => {
            let n = notification::parse(&apdu).map_err(at)?;
            Ok(reading::build(&n.body, n.date_time.as_ref(), None, None))
        }
        _ => {
            let decrypted = decrypt(apdu, map, keys)?;
            let header = &decrypted.header;
            let to_input = |pt_offset: usize| map.to_input(header.ciphertext_start + pt_offset);
            let n = match notification::parse(decrypted.plaintext()) {
                Ok(n) => n,
                // Authenticated plaintext that does not parse is an APDU error…
                Err(e) if decrypted.authenticated => {
                    return Err(DecodeError::new(e.kind, to_input(e.offset)))
                }
                // …without a tag it is the only sign of a wrong key.
                Err(e) => {
                    return Err(DecodeError::new(
                        ErrorKind::ImplausiblePlaintext {
                            reason: Box::new(e.kind),
                            plaintext_offset: e.offset,
                        },
                        to_input(e.offset),
                    ))
                }
            };
            Ok(reading::build(
                &n.body,
                n.date_time.as_ref(),
                Some(header.system_title),
                Some(header.frame_counter),
            ))
        }
    }
}

/// The reading, unless none of its numbers came under an OBIS code and it fits
/// no known positional layout: a reading of nothing but its clock and meter
/// number would look like a meter reporting zeros.
fn labelled(reading: Reading, body_at: usize) -> Result<Reading> {
    if reading.layout == reading::Layout::Unlabelled {
        Err(DecodeError::new(ErrorKind::UnsupportedLayout, body_at))
    } else {
        Ok(reading)
    }
}

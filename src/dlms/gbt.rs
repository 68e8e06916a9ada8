//! General block transfer (GBT): a long APDU sent as numbered blocks.
//!
//! Source: DLMS Green Book / IEC 62056-5-3, general-block-transfer APDU
//! (`shared/notes/dlms.md`, "GBT"), as the Landis+Gyr E450/E570 push it over HDLC:
//!
//! ```text
//! E0 | block-control | block-number (u16) | block-number-ack (u16) | length | block data
//! ```
//! * block-control: bit 7 last block, bit 6 streaming, bits 5..0 window size;
//! * block numbers count from 1; the length uses the A-XDR (BER-style) length encoding;
//! * the block data of blocks 1..=last, concatenated, are the inner APDU (on the push
//!   interfaces a general-glo-ciphering APDU, tag 0xDB).
//!
//! On the wire (vectors `sdc_lg_e570_encrypted`, `klagenfurt_lg_e450_gbt_zero_key`,
//! `amsreader_em_ct623_lg_e450_steiermark_nokey`) every block is its own HDLC frame
//! without the segmentation bit; only the first information field starts with the
//! LLC header `E6 E7 00`, the others start directly with `E0`. Blocks are read from
//! the HDLC APDUs in turn (several blocks in one HDLC APDU are read one after the
//! other) until the block with the last-block bit. The block-number-ack and the
//! window are not checked: a push has no acknowledgements.

use super::hdlc;
use super::offsets::OffsetMap;
use super::transport::Reassembled;
use crate::cursor::Cursor;
use crate::error::{DecodeError, ErrorKind, Result};

/// APDU tag of general-block-transfer.
pub const TAG: u8 = 0xE0;
/// Block-control bit: this is the last block.
pub const LAST_BLOCK: u8 = 0x80;
/// Block-control bit: streaming (more blocks follow without acknowledgement).
pub const STREAMING: u8 = 0x40;
/// Block-control bits holding the window size.
pub const WINDOW: u8 = 0x3F;

/// One GBT block, borrowed from the APDU it was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block<'a> {
    /// The block-control byte.
    pub control: u8,
    /// The block number (from 1).
    pub number: u16,
    /// The block-number-ack.
    pub ack: u16,
    /// The block data.
    pub data: &'a [u8],
    /// Offset of `data[0]` in the APDU.
    pub data_offset: usize,
    /// Offset just after the block in the APDU.
    pub end: usize,
}

impl Block<'_> {
    /// Whether the last-block bit is set.
    pub fn last(&self) -> bool {
        self.control & LAST_BLOCK != 0
    }
}

/// Parses the GBT block starting at `apdu[at]`. Offsets in errors are offsets in `apdu`.
///
/// # Errors
/// [`ErrorKind::UnknownApduTag`] when `apdu[at]` is not `0xE0`;
/// [`ErrorKind::Truncated`] for a short header; [`ErrorKind::InvalidLength`];
/// [`ErrorKind::GbtBlockOverrun`] (at the length field) when the length exceeds the APDU.
pub fn parse_block(apdu: &[u8], at: usize) -> Result<Block<'_>> {
    let rest = apdu.get(at..).unwrap_or_default();
    let mut cur = Cursor::new(rest, at);
    let tag = cur.u8()?;
    if tag != TAG {
        return Err(DecodeError::new(ErrorKind::UnknownApduTag { tag }, at));
    }
    let control = cur.u8()?;
    let number = cur.u16_be()?;
    let ack = cur.u16_be()?;
    let length_at = cur.offset();
    let len = cur.ber_length()?;
    if len > cur.remaining() {
        return Err(DecodeError::new(
            ErrorKind::GbtBlockOverrun {
                declared: len,
                available: cur.remaining(),
            },
            length_at,
        ));
    }
    let data_offset = cur.offset();
    let data = cur.take(len)?;
    Ok(Block {
        control,
        number,
        ack,
        data,
        data_offset,
        end: cur.offset(),
    })
}

/// Length of the BER encoding of `len` (1 byte up to 0x7F, then `81 xx`, `82 xx xx`).
fn ber_length_size(len: usize) -> usize {
    match len {
        0..=0x7F => 1,
        0x80..=0xFF => 2,
        _ => 3,
    }
}

/// Writes the BER length `len` (at most 0xFFFF; blocks are never longer).
fn push_ber_length(out: &mut Vec<u8>, len: usize) {
    match len {
        0..=0x7F => out.push(len as u8),
        0x80..=0xFF => out.extend_from_slice(&[0x81, len as u8]),
        _ => {
            out.push(0x82);
            out.extend_from_slice(&(len.min(0xFFFF) as u16).to_be_bytes());
        }
    }
}

/// Sends `apdu` as a general block transfer the way the Landis+Gyr E450 pushes
/// it (the inverse of [`reassemble`], for the simulator and tests): blocks
/// numbered from 1, block-control [`STREAMING`] (`0x40`) and
/// `LAST_BLOCK | STREAMING` (`0xC0`) on the last, block-number-ack 0, each block
/// in its own unsegmented HDLC frame whose information field is at most
/// `max_info` bytes; only the first starts with the LLC header `E6 E7 00`.
///
/// With `max_info` = 129, as in vector `klagenfurt_lg_e450_gbt_zero_key`, the
/// blocks carry 119 bytes, then 122 each. `max_info` is clamped so that every
/// block carries at least one byte and every frame fits the 11-bit HDLC length.
/// An empty `apdu` is one empty last block. Block numbers wrap after 65535
/// blocks (an APDU of that size cannot be pushed).
pub fn emit(
    apdu: &[u8],
    destination: &[u8],
    source: &[u8],
    control: u8,
    max_info: usize,
) -> Vec<u8> {
    // HDLC header (format, addresses, control), HCS and FCS around the information field.
    let overhead = 2 + destination.len() + source.len() + 1 + 4;
    let max_info = max_info.min(hdlc::MAX_LENGTH.saturating_sub(overhead));
    let mut out = Vec::with_capacity(apdu.len() + apdu.len() / 64 + 64);
    let mut rest = apdu;
    let mut number: u16 = 1;
    loop {
        let llc = if number == 1 { hdlc::LLC.len() } else { 0 };
        // Tag, control, number, ack: 6 bytes, then the length field and the data.
        let room = max_info.saturating_sub(llc + 6);
        let mut take = room.saturating_sub(1);
        while take > 0 && ber_length_size(take) + take > room {
            take -= 1;
        }
        let (data, after) = rest.split_at(take.max(1).min(rest.len()));
        let last = after.is_empty();
        let mut info = Vec::with_capacity(llc + 9 + data.len());
        if number == 1 {
            info.extend_from_slice(&hdlc::LLC);
        }
        info.extend_from_slice(&[
            TAG,
            if last {
                LAST_BLOCK | STREAMING
            } else {
                STREAMING
            },
        ]);
        info.extend_from_slice(&number.to_be_bytes());
        info.extend_from_slice(&0u16.to_be_bytes());
        push_ber_length(&mut info, data.len());
        info.extend_from_slice(data);
        hdlc::push_frame(&mut out, &info, destination, source, control, false);
        if last {
            return out;
        }
        rest = after;
        number = number.wrapping_add(1);
    }
}

/// Reassembles the inner APDU of a general block transfer whose first HDLC APDU
/// (starting with `0xE0`) is `first`, reading further HDLC frames of `input` from
/// `first.consumed` on as needed. The result's map points into `input`;
/// `consumed` is where the frame with the last block ends and `segments` the
/// number of blocks.
///
/// # Errors
/// [`parse_block`] errors; [`ErrorKind::GbtBlockOutOfOrder`] (at the block number)
/// unless the blocks are numbered 1, 2, 3, …; [`ErrorKind::GbtIncomplete`] (at the
/// end of the input) when the frames end before the last block;
/// [`ErrorKind::TrailingApduBytes`] after the last block in its HDLC APDU; any
/// [`hdlc::reassemble_continuation`] error of the frames that follow.
pub fn reassemble(input: &[u8], first: Reassembled) -> Result<Reassembled> {
    let mut apdu = Vec::with_capacity(first.apdu.len());
    let mut map = OffsetMap::default();
    let mut expected: u16 = 1;
    let mut blocks = 0usize;
    let mut carrier = first;
    loop {
        let at = |e: DecodeError| DecodeError::new(e.kind, carrier.map.to_input(e.offset));
        let mut pos = 0usize;
        while pos < carrier.apdu.len() || pos == 0 {
            let block = parse_block(&carrier.apdu, pos).map_err(at)?;
            if block.number != expected {
                return Err(DecodeError::new(
                    ErrorKind::GbtBlockOutOfOrder {
                        expected,
                        found: block.number,
                    },
                    carrier.map.to_input(pos + 2),
                ));
            }
            map.push_from(
                apdu.len(),
                &carrier.map,
                block.data_offset,
                block.data.len(),
            );
            apdu.extend_from_slice(block.data);
            blocks += 1;
            pos = block.end;
            if block.last() {
                if let Some(count) = carrier.apdu.len().checked_sub(pos).filter(|&c| c > 0) {
                    return Err(DecodeError::new(
                        ErrorKind::TrailingApduBytes { count },
                        carrier.map.to_input(pos),
                    ));
                }
                if apdu.is_empty() {
                    // An empty inner APDU: errors after this point the end of the last block.
                    map.push(0, carrier.map.to_input(pos), 0);
                }
                return Ok(Reassembled {
                    apdu,
                    map,
                    consumed: carrier.consumed,
                    segments: blocks,
                });
            }
            expected = expected.wrapping_add(1);
        }
        if carrier.consumed >= input.len() {
            return Err(DecodeError::new(
                ErrorKind::GbtIncomplete { expected },
                input.len(),
            ));
        }
        carrier = hdlc::reassemble_continuation(input, carrier.consumed)?;
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::dlms::{decrypt_apdu, security, Key, Keys};

    /// Splits `wire` into its HDLC frames.
    fn frames(wire: &[u8]) -> Vec<hdlc::HdlcFrame<'_>> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < wire.len() {
            let f = hdlc::HdlcFrame::parse(wire, pos).unwrap();
            pos += f.frame_len;
            out.push(f);
        }
        out
    }

    fn round_trip(apdu: &[u8], max_info: usize) -> Reassembled {
        let wire = emit(apdu, &[0xCE, 0xFF], &[0x03], hdlc::CONTROL_UI, max_info);
        let first = hdlc::reassemble(&wire).unwrap();
        assert_eq!(first.apdu.first(), Some(&TAG));
        let r = reassemble(&wire, first).unwrap();
        assert_eq!(r.apdu, apdu);
        assert_eq!(r.consumed, wire.len());
        // Every APDU byte maps back to the same byte on the wire.
        for (i, b) in apdu.iter().enumerate() {
            assert_eq!(wire[r.map.to_input(i)], *b, "byte {i}");
        }
        r
    }

    #[test]
    fn emit_blocks_like_the_klagenfurt_e450() {
        // 466-byte glo APDU as in `klagenfurt_lg_e450_gbt_zero_key`: 119 + 122 + 122 + 103.
        let apdu: Vec<u8> = (0..466u32).map(|i| (i * 7 % 251) as u8).collect();
        let wire = emit(&apdu, &[0xCE, 0xFF], &[0x03], hdlc::CONTROL_UI, 129);
        let fs = frames(&wire);
        let sizes: Vec<usize> = fs.iter().map(|f| f.info.len()).collect();
        assert_eq!(sizes, [129, 129, 129, 7 + 103]);
        // The real vector's first two frame headers, byte for byte.
        assert_eq!(
            wire[..19],
            hex("7EA08BCEFF0313EEE1E6E700E0400001000077")[..]
        );
        let second = fs[1].start;
        assert_eq!(
            wire[second..second + 16],
            hex("7EA08BCEFF0313EEE1E040000200007A")[..]
        );
        let last = fs[3].start;
        assert_eq!(
            wire[last..last + 16],
            hex("7EA078CEFF03138463E0C00004000067")[..]
        );
        assert!(fs.iter().all(|f| !f.segmented && f.control == 0x13));
        let r = round_trip(&apdu, 129);
        assert_eq!(r.segments, 4);
    }

    #[test]
    fn emit_round_trips_every_size() {
        for len in [0, 1, 2, 118, 119, 120, 241, 242, 243, 500, 1500] {
            let apdu: Vec<u8> = (0..len).map(|i| (i % 256) as u8).collect();
            for max_info in [0, 11, 12, 129, 140, 300, 5000] {
                round_trip(&apdu, max_info);
            }
        }
    }

    #[test]
    fn long_blocks_use_the_ber_length() {
        let apdu = vec![0xAB; 400];
        let wire = emit(&apdu, &[0xCE, 0xFF], &[0x03], hdlc::CONTROL_UI, 200);
        let fs = frames(&wire);
        assert!(fs.iter().all(|f| f.info.len() <= 200));
        // E6 E7 00 E0 40 0001 0000 81 BD: 3 + 6 + 2 header bytes, 189 data bytes.
        assert_eq!(
            fs[0].info[..11],
            [0xE6, 0xE7, 0, 0xE0, 0x40, 0, 1, 0, 0, 0x81, 189]
        );
        assert_eq!(fs[0].info.len(), 200);
        // Above 255 bytes: 82 hi lo.
        let wire = emit(&apdu, &[0xCE, 0xFF], &[0x03], hdlc::CONTROL_UI, 300);
        let first = frames(&wire)[0].info.to_vec();
        assert_eq!(first[9..12], [0x82, 0x01, 0x20]);
        assert_eq!(first.len(), 300);
        round_trip(&apdu, 200);
        round_trip(&apdu, 300);
    }

    #[test]
    fn emitted_glo_apdu_decrypts_through_decrypt_apdu() {
        let key = Key::from_hex("000102030405060708090A0B0C0D0E0F").unwrap();
        let auth = Key::from_hex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF").unwrap();
        // 0F, invoke id, no date-time, a 300-byte octet-string body.
        let mut plaintext = vec![0x0F, 0, 0, 0, 1, 0, 0x09, 0x82, 0x01, 0x2C];
        plaintext.extend((0..300u32).map(|i| i as u8));
        let title = *b"LGZg\x01\x02\x03\x04";
        let apdu = security::emit(&title, 0x30, 77, &key, Some(&auth), &plaintext);
        let wire = emit(&apdu, &[0xCE, 0xFF], &[0x03], hdlc::CONTROL_UI, 129);
        assert_eq!(frames(&wire).len(), apdu.len().div_ceil(122));
        let keys = Keys {
            key: Some(key.clone()),
            auth_key: Some(auth),
            ..Keys::default()
        };
        assert_eq!(decrypt_apdu(&wire, &keys).unwrap(), plaintext);
        let wrong = Keys {
            key: Some(key),
            auth_key: Some(Key::from_hex("00000000000000000000000000000000").unwrap()),
            ..Keys::default()
        };
        assert!(decrypt_apdu(&wire, &wrong).is_err());
    }

    fn hex(s: &str) -> Vec<u8> {
        crate::hex::decode(s).unwrap()
    }
}

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

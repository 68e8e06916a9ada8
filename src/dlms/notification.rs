//! xDLMS data-notification APDU (IEC 62056-5-3 §9.5, tag 0x0F):
//!
//! ```text
//! 0F | long-invoke-id-and-priority (4) | date-time (00 = absent, or 0C + 12 bytes) | notification-body (A-XDR Data)
//! ```

use super::axdr::{self, Tree};
use super::datetime::DateTime;
use crate::cursor::Cursor;
use crate::error::{DecodeError, ErrorKind, Result};

/// The data-notification APDU tag.
pub const TAG: u8 = 0x0F;

/// A parsed data-notification; the body borrows from the plaintext.
#[derive(Debug, Clone, PartialEq)]
pub struct DataNotification<'a> {
    /// long-invoke-id-and-priority.
    pub long_invoke_id: u32,
    /// The optional notification time.
    pub date_time: Option<DateTime>,
    /// The notification body.
    pub body: Tree<'a>,
}

/// Writes a data-notification: tag, long-invoke-id-and-priority, the date-time
/// (or `00` when absent), then the already encoded `body`.
pub fn emit(long_invoke_id: u32, date_time: Option<&DateTime>, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(18 + body.len());
    out.push(TAG);
    out.extend_from_slice(&long_invoke_id.to_be_bytes());
    match date_time {
        Some(dt) => {
            out.push(12);
            out.extend_from_slice(&dt.to_bytes());
        }
        None => out.push(0),
    }
    out.extend_from_slice(body);
    out
}

/// Parses a whole data-notification APDU; offsets in errors are relative to `apdu`.
///
/// # Errors
/// [`ErrorKind::UnknownApduTag`] when `apdu` does not start with 0x0F,
/// [`ErrorKind::InvalidDateTimeLength`], any A-XDR error,
/// [`ErrorKind::TrailingApduBytes`] when bytes follow the body.
pub fn parse(apdu: &[u8]) -> Result<DataNotification<'_>> {
    let mut cur = Cursor::new(apdu, 0);
    let tag = cur.u8()?;
    if tag != TAG {
        return Err(DecodeError::new(ErrorKind::UnknownApduTag { tag }, 0));
    }
    let long_invoke_id = cur.u32_be()?;
    let at = cur.offset();
    let date_time = match cur.u8()? {
        0 => None,
        12 => Some(DateTime::from_bytes(&cur.array()?)),
        len => {
            return Err(DecodeError::new(
                ErrorKind::InvalidDateTimeLength { len: len.into() },
                at,
            ))
        }
    };
    let body = axdr::parse(&mut cur)?;
    if cur.remaining() > 0 {
        return Err(cur.error(ErrorKind::TrailingApduBytes {
            count: cur.remaining(),
        }));
    }
    Ok(DataNotification {
        long_invoke_id,
        date_time,
        body,
    })
}

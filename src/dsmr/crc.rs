//! CRC-16/ARC of DSMR P1 telegrams (DSMR 5.0.2 §6.2; DSMR 4.2.2 §5.2).
//!
//! Polynomial x¹⁶ + x¹⁵ + x² + 1 (0x8005) processed least significant bit first
//! (reflected 0xA001), initial value 0, no final XOR, over every byte from `/` up
//! to and including `!`. Check value: CRC("123456789") = 0xBB3D.

// `i` runs 0..256 over a 256-entry array; slice `get_mut` is not const.
#[allow(clippy::indexing_slicing)]
const fn table() -> [u16; 256] {
    let mut t = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u16;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xA001
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static TABLE: [u16; 256] = table();

/// CRC-16/ARC of `bytes`.
pub fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |crc, &b| {
        let i = usize::from((crc ^ u16::from(b)) & 0xFF);
        (crc >> 8) ^ TABLE.get(i).copied().unwrap_or(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value() {
        assert_eq!(crc16(b"123456789"), 0xBB3D);
        assert_eq!(crc16(b""), 0);
    }
}

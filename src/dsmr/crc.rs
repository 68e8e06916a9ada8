//! CRC-16/ARC of DSMR P1 telegrams (DSMR 5.0.2 §6.2; DSMR 4.2.2 §5.2).
//!
//! Polynomial x¹⁶ + x¹⁵ + x² + 1 (0x8005) processed least significant bit first
//! (reflected 0xA001), initial value 0, no final XOR, over every byte from `/` up
//! to and including `!`. Check value: CRC("123456789") = 0xBB3D.

/// The `crc` crate's CRC-16/ARC (its catalogue entry has exactly these
/// parameters), with 16 tables: a P1 telegram is checked at several bytes per
/// cycle instead of one table step per byte.
const ARC: crc::Crc<u16, crc::Table<16>> = crc::Crc::<u16, crc::Table<16>>::new(&crc::CRC_16_ARC);

/// CRC-16/ARC of `bytes`.
pub fn crc16(bytes: &[u8]) -> u16 {
    ARC.checksum(bytes)
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

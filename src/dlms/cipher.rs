//! AES-128-GCM decryption of general-glo-ciphering APDUs (DLMS UA Blue Book,
//! IEC 62056-5-3 §5.3.4; NIST SP 800-38D).
//!
//! * IV (96 bits) = system title (8 bytes) ‖ frame counter (4 bytes, big-endian).
//! * Security control bit 4 set: the last 12 bytes are the truncated GCM tag, the
//!   additional authenticated data is security control ‖ authentication key, and
//!   the tag is verified before any plaintext is returned.
//! * Bit 4 clear (the Austrian M-Bus push, 0x20 and 0x21): no tag on the wire. GCM
//!   encryption is then plain AES-CTR starting at counter block `IV ‖ 00000002`
//!   (inc32 of J0), which is what is computed here.
//!
//! The AES and GCM code is RustCrypto's (`aes`, `aes-gcm`, `ctr`); only the DLMS
//! parameters are ours.

use aes::Aes128;
use aes_gcm::aead::consts::U12;
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::AesGcm;
use core::fmt;
use ctr::cipher::{InnerIvInit, StreamCipher};

use crate::error::ErrorKind;

/// Length of the truncated GCM authentication tag used by DLMS.
pub const TAG_LEN: usize = 12;

/// A 16-byte AES-128 key (global unicast encryption key or authentication key).
///
/// Holds the key's AES round keys and GCM hash key, computed once when the key
/// is made, so that each decryption starts at once.
///
/// Its `Debug` output is `Key(<redacted>)`; it has no `Display`, and nothing in
/// this crate formats its bytes.
#[derive(Clone)]
pub struct Key {
    bytes: [u8; 16],
    aes: Aes128,
    gcm: Aes128Gcm12,
}

impl Key {
    /// Wraps 16 key bytes (and expands them for AES and GCM).
    pub fn new(bytes: [u8; 16]) -> Self {
        let aes = Aes128::new(&bytes.into());
        let gcm = Aes128Gcm12::from(aes.clone());
        Key { bytes, aes, gcm }
    }

    /// A key from a slice; `None` unless it is exactly 16 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 16]>::try_from(bytes).ok().map(Key::new)
    }

    /// A key from 32 hexadecimal digits (whitespace ignored); `None` otherwise.
    pub fn from_hex(text: &str) -> Option<Self> {
        let bytes = crate::hex::decode(text).ok()?;
        Self::from_slice(&bytes)
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.bytes
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for Key {}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

type Aes128Gcm12 = AesGcm<Aes128, U12, U12>;
type Aes128Ctr = ctr::Ctr32BE<Aes128>;

/// The GCM initialisation vector: system title ‖ frame counter.
pub fn iv(system_title: &[u8; 8], frame_counter: u32) -> [u8; 12] {
    let mut iv = [0u8; 12];
    let (st, fc) = iv.split_at_mut(8);
    st.copy_from_slice(system_title);
    fc.copy_from_slice(&frame_counter.to_be_bytes());
    iv
}

/// Decrypts `data` in place without a tag: AES-CTR from counter block `iv ‖ 00000002`.
pub fn decrypt_untagged(key: &Key, iv: &[u8; 12], data: &mut [u8]) {
    let mut block = [0u8; 16];
    let (head, counter) = block.split_at_mut(12);
    head.copy_from_slice(iv);
    counter.copy_from_slice(&2u32.to_be_bytes());
    let core = ctr::CtrCore::inner_iv_init(key.aes.clone(), (&block).into());
    let mut cipher = Aes128Ctr::from_core(core);
    cipher.apply_keystream(data);
}

/// Verifies the 12-byte `tag` over `aad` and `data` and decrypts `data` in place.
///
/// # Errors
/// [`ErrorKind::AuthenticationFailed`] when the tag does not match; `data` is then
/// left unspecified and must not be used.
pub fn decrypt_tagged(
    key: &Key,
    iv: &[u8; 12],
    aad: &[u8],
    data: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Result<(), ErrorKind> {
    key.gcm
        .decrypt_in_place_detached(GenericArray::from_slice(iv), aad, data, tag.into())
        .map_err(|_| ErrorKind::AuthenticationFailed)
}

/// Encrypts `data` in place and returns the 12-byte tag (for tests and the simulator).
pub fn encrypt_tagged(key: &Key, iv: &[u8; 12], aad: &[u8], data: &mut [u8]) -> [u8; TAG_LEN] {
    let mut out = [0u8; TAG_LEN];
    if let Ok(tag) = key
        .gcm
        .encrypt_in_place_detached(GenericArray::from_slice(iv), aad, data)
    {
        out.copy_from_slice(&tag);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::hex::decode as h;

    fn key(s: &str) -> Key {
        Key::from_hex(s).unwrap()
    }

    #[test]
    fn key_is_redacted() {
        let k = key("36C66639E48A8CA4D6BC8B282A793BBB");
        assert_eq!(format!("{k:?}"), "Key(<redacted>)");
        assert!(Key::from_hex("36C6").is_none());
        assert!(Key::from_hex("zz").is_none());
    }

    /// GCM spec test cases 3 and 4 (McGrew & Viega, "The Galois/Counter Mode of
    /// Operation", AES-128; also in NIST's GCM validation suite), with the tag
    /// truncated to the 12 bytes DLMS uses.
    #[test]
    fn nist_gcm_test_cases_3_and_4() {
        let k = key("feffe9928665731c6d6a8f9467308308");
        let iv: [u8; 12] = h("cafebabefacedbaddecaf888").unwrap().try_into().unwrap();
        let pt = h(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
                    1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
        )
        .unwrap();
        let ct = h(
            "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e\
                    21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
        )
        .unwrap();
        // Test case 3: no AAD.
        let mut buf = pt.clone();
        let tag = encrypt_tagged(&k, &iv, &[], &mut buf);
        assert_eq!(buf, ct);
        assert_eq!(tag.to_vec(), h("4d5c2af327cd64a62cf35abd").unwrap());
        decrypt_tagged(&k, &iv, &[], &mut buf, &tag).unwrap();
        assert_eq!(buf, pt);
        // The untagged path is the same keystream.
        let mut buf = ct.clone();
        decrypt_untagged(&k, &iv, &mut buf);
        assert_eq!(buf, pt);
        // Test case 4: 60-byte plaintext, 20-byte AAD.
        let aad = h("feedfacedeadbeeffeedfacedeadbeefabaddad2").unwrap();
        let mut buf = ct[..60].to_vec();
        let tag: [u8; 12] = h("5bc94fbc3221a5db94fae95a").unwrap().try_into().unwrap();
        decrypt_tagged(&k, &iv, &aad, &mut buf, &tag).unwrap();
        assert_eq!(buf, pt[..60]);
        // A flipped bit anywhere fails authentication.
        let mut buf = ct[..60].to_vec();
        buf[7] ^= 1;
        assert_eq!(
            decrypt_tagged(&k, &iv, &aad, &mut buf, &tag),
            Err(ErrorKind::AuthenticationFailed)
        );
    }

    /// GCM spec test case 2: zero key, zero IV, one zero block.
    #[test]
    fn nist_gcm_test_case_2() {
        let k = Key::new([0; 16]);
        let mut buf = [0u8; 16];
        let tag = encrypt_tagged(&k, &[0; 12], &[], &mut buf);
        assert_eq!(buf.to_vec(), h("0388dace60b6a392f328c2b971b2fe78").unwrap());
        assert_eq!(tag.to_vec(), h("ab6e47d42cec13bdf53a67b2").unwrap());
    }
}

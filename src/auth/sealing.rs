//! The data key (`DATA_KEY_FILE`) and what it seals: each purpose gets its
//! own subkey (HKDF-SHA256, the purpose as `info`), and a sealed value is
//! XChaCha20-Poly1305 under it with a random nonce, base64url; a tagged
//! value is HMAC-SHA256 under it, hex. RustCrypto's `hkdf`,
//! `chacha20poly1305` and `hmac` do the work.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::Secret;

/// Seals and opens values of one purpose.
/// The data key's purposes, each a subkey of its own.
pub const TOTP_SECRET_SEALING: &[u8] = b"authgraph totp secret v1";
pub const RECOVERY_CODE_TAGS: &[u8] = b"authgraph recovery code v1";
pub const OUTBOX_TOKEN_SEALING: &[u8] = b"authgraph outbox token v1";
/// The subkey of the data key's check value, used for nothing else.
const KEY_CHECK: &[u8] = b"authgraph data key check v1";

/// The data key's check value: a MAC of a fixed label under a subkey used
/// for nothing else, so it tells whether two servers hold the same key and
/// nothing about the key.
pub fn check_value(data_key: &Secret) -> String {
    Tagger::new(data_key, KEY_CHECK).tag(b"the data key of this database")
}

pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

#[derive(Debug, thiserror::Error)]
#[error("a sealed value did not open: tampered, or sealed under another data key")]
pub struct Unsealable;

impl Sealer {
    /// The sealer of `purpose` (e.g. `b"authgraph outbox token v1"`) under `data_key`.
    pub fn new(data_key: &Secret, purpose: &[u8]) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(&subkey(data_key, purpose).into()),
        }
    }

    pub fn seal(&self, plain: &[u8]) -> Result<String, Unsealable> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self.cipher.encrypt(&nonce, plain).map_err(|_| Unsealable)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    pub fn open(&self, sealed: &str) -> Result<Vec<u8>, Unsealable> {
        let bytes = URL_SAFE_NO_PAD.decode(sealed).map_err(|_| Unsealable)?;
        if bytes.len() < 24 {
            return Err(Unsealable);
        }
        let (nonce, body) = bytes.split_at(24);
        let nonce: [u8; 24] = nonce.try_into().map_err(|_| Unsealable)?;
        self.cipher
            .decrypt(&XNonce::from(nonce), body)
            .map_err(|_| Unsealable)
    }
}

/// The data key's subkey for `purpose`.
fn subkey(data_key: &Secret, purpose: &[u8]) -> [u8; 32] {
    let mut subkey = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's limit (255 * 32): this can't fail.
    let _ = Hkdf::<Sha256>::new(None, data_key.expose()).expand(purpose, &mut subkey);
    subkey
}

/// MACs values of one purpose: what is kept of a value that must be
/// recognised, never recovered (recovery codes).
pub struct Tagger {
    key: [u8; 32],
}

impl Tagger {
    pub fn new(data_key: &Secret, purpose: &[u8]) -> Self {
        Self {
            key: subkey(data_key, purpose),
        }
    }

    /// HMAC-SHA256 of `value`, hex.
    pub fn tag(&self, value: &[u8]) -> String {
        // HMAC takes a key of any length: this can't fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(value);
        hex::encode(mac.finalize().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_under_their_key_and_purpose() {
        let key = Secret::from(vec![7u8; 32]);
        let sealer = Sealer::new(&key, b"one");
        let sealed = sealer.seal(b"a token").unwrap();
        assert!(!sealed.contains("a token"));
        assert_eq!(sealer.open(&sealed).unwrap(), b"a token");
        assert_ne!(
            sealer.seal(b"a token").unwrap(),
            sealed,
            "a new nonce each time"
        );
        assert!(
            Sealer::new(&key, b"two").open(&sealed).is_err(),
            "another purpose"
        );
        assert!(
            Sealer::new(&Secret::from(vec![8u8; 32]), b"one")
                .open(&sealed)
                .is_err()
        );
        let mut tampered = sealed.into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(
            sealer
                .open(std::str::from_utf8(&tampered).unwrap())
                .is_err()
        );
    }
}

//! API keys: `ag_` + 8 characters of `[a-z0-9]` (the prefix, shown in
//! lists) + `_` + 43 base62 characters (256 bits), stored only as a
//! SHA-256 hash. Sent as `Authorization: Token <key>` or `Bearer <key>`.

use rand::SeedableRng;
use rand::distr::{Alphanumeric, SampleString};
use rand::rngs::StdRng;
use sha2::{Digest, Sha256};

const START: &str = "ag_";
const PREFIX_LEN: usize = 8;
/// 62^43 > 2^256.
const SECRET_LEN: usize = 43;
const PREFIX_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
/// The whole key's length.
pub const LEN: usize = START.len() + PREFIX_LEN + 1 + SECRET_LEN;

/// A new key: shown once, then only its hash and prefix are kept.
pub struct NewKey {
    pub key: String,
    pub prefix: String,
    pub hash: String,
}

impl NewKey {
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut rng = StdRng::try_from_os_rng()?;
        let prefix: String = (0..PREFIX_LEN)
            .map(|_| {
                let i = rand::Rng::random_range(&mut rng, 0..PREFIX_ALPHABET.len());
                char::from(PREFIX_ALPHABET[i])
            })
            .collect();
        let secret = Alphanumeric.sample_string(&mut rng, SECRET_LEN);
        let key = format!("{START}{prefix}_{secret}");
        Ok(Self {
            hash: hash(&key),
            key,
            prefix,
        })
    }
}

/// Is `text` shaped like a key? Only then is it looked up.
pub fn looks_like_key(text: &str) -> bool {
    let Some(rest) = text.strip_prefix(START) else {
        return false;
    };
    let bytes = rest.as_bytes();
    bytes.len() == PREFIX_LEN + 1 + SECRET_LEN
        && bytes[..PREFIX_LEN]
            .iter()
            .all(|b| PREFIX_ALPHABET.contains(b))
        && bytes[PREFIX_LEN] == b'_'
        && bytes[PREFIX_LEN + 1..]
            .iter()
            .all(u8::is_ascii_alphanumeric)
}

/// Does `text` start like a key (so it is never taken for a JWT)?
pub fn is_key_scheme(text: &str) -> bool {
    text.starts_with(START)
}

/// The stored form of a key: SHA-256, hex.
pub fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_has_the_documented_shape() {
        let new = NewKey::generate().unwrap();
        assert_eq!(new.key.len(), LEN);
        assert!(new.key.starts_with(&format!("ag_{}_", new.prefix)));
        assert!(looks_like_key(&new.key), "{}", new.key);
        assert_eq!(new.hash, hash(&new.key));
        assert_eq!(new.hash.len(), 64);
        let other = NewKey::generate().unwrap();
        assert_ne!(new.key, other.key);
    }

    #[test]
    fn keys_use_every_character_of_their_alphabets() {
        let (mut prefix, mut secret) = (Vec::new(), Vec::new());
        for _ in 0..200 {
            let new = NewKey::generate().unwrap();
            prefix.extend(new.prefix.bytes());
            secret.extend(new.key[LEN - SECRET_LEN..].bytes());
        }
        prefix.sort_unstable();
        prefix.dedup();
        secret.sort_unstable();
        secret.dedup();
        assert_eq!(prefix.len(), 36);
        assert_eq!(secret.len(), 62);
    }

    #[test]
    fn near_misses_are_not_keys() {
        let key = NewKey::generate().unwrap().key;
        let upper = format!("ag_{}{}", key[3..11].to_uppercase(), &key[11..]);
        for bad in [
            "",
            "ag_",
            &key[..LEN - 1],
            &format!("{key}x"),
            &key.replacen("ag_", "ak_", 1),
            &format!("{}-{}", &key[..11], &key[12..]),
            &format!("{}!", &key[..LEN - 1]),
            &upper,
            "eyJhbGciOiJIUzI1NiJ9.e30.x",
        ] {
            if bad != key {
                assert!(!looks_like_key(bad), "{bad}");
            }
        }
    }
}

//! The second factor: TOTP (RFC 6238: SHA-1, 6 digits, 30 s steps, one
//! step of skew) through `totp-rs`, its secret sealed under the data key;
//! recovery codes kept as MACs under it; `mfaToken`s (random, hashed). The
//! QR code of an enrollment is rendered as SVG by `qrcode`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::SeedableRng;
use rand::rngs::StdRng;
use sha2::{Digest, Sha256};
use totp_rs::{Algorithm, TOTP};

use super::sealing::{RECOVERY_CODE_TAGS, Sealer, TOTP_SECRET_SEALING, Tagger, Unsealable};
use crate::secret::Secret;

/// Seconds per time step.
pub const STEP: i64 = 30;
/// Steps of skew either way.
const SKEW: i64 = 1;
/// Recovery codes handed out at a time.
pub const RECOVERY_CODES: usize = 10;
/// Wrong codes an `mfaToken` survives; the next one ends it.
pub const MAX_FAILURES: i32 = 5;
/// 160 bits, as RFC 4226 recommends.
const SECRET_BYTES: usize = 20;
/// The alphabet of recovery codes: base32's, lower-case (no 0, 1, 8, 9).
const RECOVERY_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
/// 16 characters of 32: 80 bits.
const RECOVERY_LEN: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum MfaError {
    #[error("no system randomness: {0}")]
    Random(#[from] getrandom::Error),
    #[error(transparent)]
    Unsealable(#[from] Unsealable),
    #[error("TOTP set-up: {0}")]
    Totp(String),
    #[error("QR code: {0}")]
    Qr(String),
}

/// A new authenticator: what the user's app needs, and what is stored.
pub struct Enrollment {
    /// Base32, for typing in.
    pub secret: String,
    /// `otpauth://totp/...`.
    pub uri: String,
    /// The URI as a QR code.
    pub qr_svg: String,
    /// The secret sealed under the data key.
    pub sealed: String,
}

/// The server's second-factor keys and rules.
pub struct Mfa {
    secrets: Sealer,
    codes: Tagger,
    issuer: String,
    /// Seconds an `mfaToken` lives.
    pub token_ttl: i64,
}

fn totp(secret: Vec<u8>, skew: u8, issuer: &str, account: &str) -> Result<TOTP, MfaError> {
    TOTP::new(
        Algorithm::SHA1,
        6,
        skew,
        STEP as u64,
        secret,
        Some(issuer.to_owned()),
        account.to_owned(),
    )
    .map_err(|err| MfaError::Totp(err.to_string()))
}

impl Mfa {
    pub fn new(data_key: &Secret, issuer: String, token_ttl: i64) -> Self {
        Self {
            secrets: Sealer::new(data_key, TOTP_SECRET_SEALING),
            codes: Tagger::new(data_key, RECOVERY_CODE_TAGS),
            issuer,
            token_ttl,
        }
    }

    /// A new secret for `account` (the username).
    pub fn enroll(&self, account: &str) -> Result<Enrollment, MfaError> {
        let mut secret = vec![0u8; SECRET_BYTES];
        getrandom::fill(&mut secret)?;
        let sealed = self.secrets.seal(&secret)?;
        let totp = totp(secret, SKEW as u8, &self.issuer, account)?;
        let uri = totp.get_url();
        let qr_svg = qrcode::QrCode::new(uri.as_bytes())
            .map_err(|err| MfaError::Qr(err.to_string()))?
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .build();
        Ok(Enrollment {
            secret: totp.get_secret_base32(),
            uri,
            qr_svg,
            sealed,
        })
    }

    /// The time steps, from `now` less the skew to `now` plus it, at which
    /// `code` is the sealed secret's code, newest first. Compared in
    /// constant time (`totp-rs`' `check`).
    pub fn steps_of(&self, sealed: &str, code: &str, now: i64) -> Result<Vec<i64>, MfaError> {
        let code = code.trim();
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(Vec::new());
        }
        let secret = self.secrets.open(sealed)?;
        // Skew 0: each step is checked on its own, to know which matched.
        let totp = totp(secret, 0, &self.issuer, "user")?;
        let current = now.div_euclid(STEP);
        Ok((current - SKEW..=current + SKEW)
            .rev()
            .filter(|step| *step >= 0 && totp.check(code, (*step * STEP) as u64))
            .collect())
    }

    /// Ten new recovery codes, and their MACs (what is stored).
    pub fn recovery_codes(&self) -> Result<Vec<(String, String)>, MfaError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)?;
        let mut rng = StdRng::from_seed(seed);
        Ok((0..RECOVERY_CODES)
            .map(|_| {
                let raw: String = (0..RECOVERY_LEN)
                    .map(|_| {
                        let i = rand::Rng::random_range(&mut rng, 0..RECOVERY_ALPHABET.len());
                        char::from(RECOVERY_ALPHABET[i])
                    })
                    .collect();
                let shown = raw
                    .as_bytes()
                    .chunks(4)
                    .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
                    .collect::<Vec<_>>()
                    .join("-");
                let mac = self.codes.tag(raw.as_bytes());
                (shown, mac)
            })
            .collect())
    }

    /// The MAC of a recovery code as typed (any case, hyphens and spaces
    /// ignored); `None` for what can't be one.
    pub fn recovery_mac(&self, code: &str) -> Option<String> {
        let normal: String = code
            .chars()
            .filter(|c| *c != '-' && !c.is_whitespace())
            .map(|c| c.to_ascii_lowercase())
            .collect();
        (normal.len() == RECOVERY_LEN && normal.bytes().all(|b| RECOVERY_ALPHABET.contains(&b)))
            .then(|| self.codes.tag(normal.as_bytes()))
    }
}

/// A new `mfaToken` (256 random bits, base64url) and its hash.
pub fn new_mfa_token() -> Result<(String, String), getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    let token = URL_SAFE_NO_PAD.encode(bytes);
    Ok((mfa_token_hash(&token), token))
}

/// The stored form of an `mfaToken`.
pub fn mfa_token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mfa() -> Mfa {
        Mfa::new(&Secret::from("k".repeat(32)), "authgraph".into(), 300)
    }

    /// RFC 6238, appendix B: the SHA-1 vectors (8 digits there; the last 6
    /// of each are this implementation's 6-digit codes).
    #[test]
    fn rfc_6238_test_vectors() {
        let secret = b"12345678901234567890".to_vec();
        let vectors = [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ];
        let eight = TOTP::new(Algorithm::SHA1, 8, 0, 30, secret.clone(), None, "t".into()).unwrap();
        let six = totp(secret, 0, "authgraph", "t").unwrap();
        for (time, code) in vectors {
            assert_eq!(eight.generate(time), code, "t = {time}");
            assert_eq!(six.generate(time), code[2..], "t = {time}");
        }
    }

    #[test]
    fn a_code_matches_its_step_and_the_skew_around_it() {
        let mfa = mfa();
        let enrollment = mfa.enroll("alice").unwrap();
        let secret = mfa.secrets.open(&enrollment.sealed).unwrap();
        let plain = totp(secret, 0, "authgraph", "alice").unwrap();
        let now = 1_800_000_015;
        let step = now / STEP;
        for offset in [-1, 0, 1] {
            let code = plain.generate(((step + offset) * STEP) as u64);
            assert_eq!(
                mfa.steps_of(&enrollment.sealed, &code, now)
                    .unwrap()
                    .first(),
                Some(&(step + offset)),
                "offset {offset}"
            );
        }
        for offset in [-2, 2] {
            let code = plain.generate(((step + offset) * STEP) as u64);
            let steps = mfa.steps_of(&enrollment.sealed, &code, now).unwrap();
            assert!(!steps.contains(&(step + offset)), "offset {offset}");
        }
        assert!(
            mfa.steps_of(&enrollment.sealed, "12345", now)
                .unwrap()
                .is_empty()
        );
        assert!(
            mfa.steps_of(&enrollment.sealed, "abcdef", now)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn an_enrollment_shows_the_secret_it_seals() {
        let mfa = mfa();
        let enrollment = mfa.enroll("alice").unwrap();
        assert_eq!(enrollment.secret.len(), 32, "160 bits in base32");
        assert!(
            enrollment
                .uri
                .starts_with("otpauth://totp/authgraph:alice?"),
            "{}",
            enrollment.uri
        );
        assert!(
            enrollment
                .uri
                .contains(&format!("secret={}", enrollment.secret))
        );
        assert!(enrollment.uri.contains("issuer=authgraph"));
        assert!(enrollment.qr_svg.starts_with("<?xml") || enrollment.qr_svg.starts_with("<svg"));
        assert!(!enrollment.sealed.contains(&enrollment.secret));
    }

    #[test]
    fn recovery_codes_are_80_bits_and_recognised_as_typed() {
        let mfa = mfa();
        let codes = mfa.recovery_codes().unwrap();
        assert_eq!(codes.len(), 10);
        for (code, mac) in &codes {
            assert_eq!(code.len(), 19, "{code}");
            assert_eq!(mfa.recovery_mac(code).as_deref(), Some(mac.as_str()));
            let typed = code.replace('-', " ").to_uppercase();
            assert_eq!(mfa.recovery_mac(&typed).as_deref(), Some(mac.as_str()));
        }
        assert!(mfa.recovery_mac("123456").is_none());
        assert!(mfa.recovery_mac("abcd-efgh-ijkl-mno1").is_none());
        let other = Mfa::new(&Secret::from("z".repeat(32)), "authgraph".into(), 300);
        assert_ne!(
            other.recovery_mac(&codes[0].0),
            Some(codes[0].1.clone()),
            "keyed"
        );
    }
}

//! Tokens, keys and sessions: what signs and checks tokens, their lives,
//! the server-held data key, and how long a sign-in counts as fresh.

use std::path::PathBuf;

use clap::Args;

use super::key_file::{load_or_create, load_or_create_secret};
use super::{ConfigError, MAX_TTL, PublicUrl};
use crate::secret::Secret;

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Tokens and keys")]
pub struct TokenSettings {
    /// HS256 key, at least 32 bytes. Unset: a random key kept in JWT_SECRET_FILE.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true, global = true)]
    pub jwt_secret: Option<Secret>,

    /// Where the generated key is kept (created once, mode 0600) when JWT_SECRET is unset.
    #[arg(
        long,
        env = "JWT_SECRET_FILE",
        hide_env_values = true,
        default_value = "authgraph.secret",
        global = true
    )]
    pub jwt_secret_file: PathBuf,

    /// `HS256`, `EdDSA` (Ed25519), `ES256` (P-256) or `RS256` for access tokens.
    #[arg(long, env = "JWT_ALGORITHM", hide_env_values = true, value_enum, ignore_case = true, default_value_t = JwtAlgorithm::Hs256, global = true)]
    pub jwt_algorithm: JwtAlgorithm,

    /// Asymmetric algorithms: the PKCS#8 PEM private key access tokens are
    /// signed with; created once (mode 0600) when absent.
    #[arg(
        long,
        env = "JWT_SIGNING_KEY_FILE",
        hide_env_values = true,
        default_value = "authgraph.signing.pem",
        global = true
    )]
    pub jwt_signing_key_file: PathBuf,

    /// Comma-separated PEM files (public or private) of other keys whose
    /// access tokens are accepted and which are published: for rotation.
    #[arg(
        long,
        env = "JWT_VERIFY_KEY_FILES",
        hide_env_values = true,
        value_delimiter = ',',
        global = true
    )]
    pub jwt_verify_key_files: Vec<String>,

    /// The `iss` claim, required on every token presented. Default: none;
    /// with an asymmetric algorithm, PUBLIC_URL.
    #[arg(long, env = "JWT_ISSUER", hide_env_values = true, global = true)]
    pub jwt_issuer: Option<String>,

    /// The `aud` claim of access tokens, required on every access token
    /// presented. Default: none; with an asymmetric algorithm, `authgraph`.
    #[arg(long, env = "JWT_AUDIENCE", hide_env_values = true, global = true)]
    pub jwt_audience: Option<String>,

    /// `standard`, or `hasura`: access tokens also carry Hasura's claims
    /// (`https://hasura.io/jwt/claims`).
    #[arg(long, env = "JWT_CLAIMS", hide_env_values = true, value_enum, default_value_t = ClaimsProfile::Standard, global = true)]
    pub jwt_claims: ClaimsProfile,

    /// Access token lifetime, seconds.
    #[arg(long, env = "ACCESS_TOKEN_TTL", hide_env_values = true, default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..=MAX_TTL), global = true)]
    pub access_token_ttl: u64,

    /// Refresh token lifetime, seconds.
    #[arg(long, env = "REFRESH_TOKEN_TTL", hide_env_values = true, default_value_t = 604_800, value_parser = clap::value_parser!(u64).range(1..=MAX_TTL), global = true)]
    pub refresh_token_ttl: u64,

    /// Seconds of clock skew accepted on `exp`.
    #[arg(long, env = "JWT_LEEWAY", hide_env_values = true, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=3600), global = true)]
    pub jwt_leeway: u64,

    /// Seconds after a session's sign-in during which it counts as a fresh
    /// proof for sensitive fields (API keys, MFA, granting ADMIN) without the
    /// password again; a refresh never renews it. 0: only the password does.
    #[arg(long, env = "REAUTH_WINDOW", hide_env_values = true, default_value_t = 300, value_parser = clap::value_parser!(u64).range(0..=3600), global = true)]
    pub reauth_window: u64,

    /// The 256-bit key (created once, mode 0600) whose subkeys seal what the
    /// server keeps secret (TOTP secrets, mail tokens waiting in the outbox)
    /// and MAC recovery codes. Every server of one database needs the same
    /// file. Back it up as carefully as the database, but not inside its
    /// backups.
    #[arg(
        long,
        env = "DATA_KEY_FILE",
        hide_env_values = true,
        default_value = "authgraph.data.key",
        global = true
    )]
    pub data_key_file: PathBuf,
}

/// What access tokens are signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 under JWT_SECRET: only authgraph can verify.
    #[value(name = "HS256")]
    Hs256,
    /// Ed25519.
    #[value(name = "EdDSA")]
    EdDsa,
    /// ECDSA on P-256 with SHA-256.
    #[value(name = "ES256")]
    Es256,
    /// RSA PKCS#1 v1.5 with SHA-256 (2048-bit keys when generated).
    #[value(name = "RS256")]
    Rs256,
}

impl JwtAlgorithm {
    /// Does a published key verify its tokens (anything but HS256)?
    pub fn is_asymmetric(self) -> bool {
        self != Self::Hs256
    }

    /// As in a JWT header's `alg`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::EdDsa => "EdDSA",
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
        }
    }
}

/// Which extra claims access tokens carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClaimsProfile {
    /// `sub`, `sid`, `iat`, `exp`, `jti`, `typ`, `role` (and `iss`, `aud`,
    /// `email_verified` where their settings say).
    Standard,
    /// Also `https://hasura.io/jwt/claims`, for Hasura.
    Hasura,
}

impl TokenSettings {
    /// JWT_SECRET, checked for length, when it is set. Pure: run it before
    /// anything slow, so a bad key is reported at once.
    pub fn explicit_jwt_key(&self) -> Result<Option<Secret>, ConfigError> {
        match &self.jwt_secret {
            Some(secret) if secret.expose().len() < Secret::MIN_LEN => Err(ConfigError::new(
                "JWT_SECRET",
                format!(
                    "must be at least {} bytes, got {}",
                    Secret::MIN_LEN,
                    secret.expose().len()
                ),
            )),
            other => Ok(other.clone()),
        }
    }

    /// The HS256 key: JWT_SECRET if set, else the one kept in JWT_SECRET_FILE,
    /// created on first start.
    pub fn jwt_key(&self) -> Result<Secret, ConfigError> {
        match self.explicit_jwt_key()? {
            Some(secret) => Ok(secret),
            None => load_or_create_secret(&self.jwt_secret_file),
        }
    }

    /// The `iss` claim: JWT_ISSUER, else (asymmetric) `public_url`, else none.
    pub fn issuer(&self, public_url: &PublicUrl) -> Option<String> {
        match self.jwt_issuer.as_deref().map(str::trim) {
            Some(issuer) if !issuer.is_empty() => Some(issuer.to_owned()),
            _ if self.jwt_algorithm.is_asymmetric() => Some(public_url.issuer()),
            _ => None,
        }
    }

    /// The `aud` claim of access tokens: JWT_AUDIENCE, else (asymmetric)
    /// `authgraph`, else none.
    pub fn audience(&self) -> Option<String> {
        match self.jwt_audience.as_deref().map(str::trim) {
            Some(audience) if !audience.is_empty() => Some(audience.to_owned()),
            _ if self.jwt_algorithm.is_asymmetric() => Some("authgraph".to_owned()),
            _ => None,
        }
    }

    /// JWT_VERIFY_KEY_FILES, empty entries left out.
    pub fn verify_key_files(&self) -> Vec<&std::path::Path> {
        self.jwt_verify_key_files
            .iter()
            .map(|path| path.trim())
            .filter(|path| !path.is_empty())
            .map(std::path::Path::new)
            .collect()
    }

    /// The signing key's PEM: JWT_SIGNING_KEY_FILE, created by `generate`
    /// (once, atomically, mode 0600) when absent.
    pub fn signing_key_pem(
        &self,
        generate: impl FnOnce() -> Result<String, String>,
    ) -> Result<String, ConfigError> {
        load_or_create(
            &self.jwt_signing_key_file,
            "JWT_SIGNING_KEY_FILE",
            "signing key",
            generate,
        )
    }

    /// `DATA_KEY_FILE`'s 256-bit key, created once when absent.
    pub fn data_key(&self) -> Result<Secret, ConfigError> {
        let content = load_or_create(&self.data_key_file, "DATA_KEY_FILE", "data key", || {
            let mut key = [0u8; 32];
            getrandom::fill(&mut key)
                .map_err(|err| format!("no system randomness to create a key: {err}"))?;
            Ok(format!("{}\n", hex::encode(key)))
        })?;
        let key = hex::decode(content.trim())
            .ok()
            .filter(|key| key.len() == 32)
            .ok_or_else(|| {
                ConfigError::new(
                    "DATA_KEY_FILE",
                    format!(
                        "{} does not hold 64 hex digits (256 bits)",
                        self.data_key_file.display()
                    ),
                )
            })?;
        Ok(Secret::from(key))
    }
}

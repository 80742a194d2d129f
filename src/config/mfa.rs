//! The second factor: how long a login waits for it, and what authenticator
//! apps show.

use clap::Args;

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Multi-factor authentication")]
pub struct MfaSettings {
    /// Seconds an `mfaToken` (a login waiting for its second factor) lives.
    #[arg(long, env = "MFA_TOKEN_TTL", hide_env_values = true, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400), global = true)]
    pub mfa_token_ttl: u64,

    /// The issuer authenticator apps show beside the account.
    #[arg(long, env = "TOTP_ISSUER", hide_env_values = true, default_value = "authgraph", value_parser = parse_totp_issuer, global = true)]
    pub totp_issuer: String,
}

/// `TOTP_ISSUER`: shown in authenticator apps, and part of the `otpauth`
/// label, which a colon would split.
fn parse_totp_issuer(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.contains(':') || value.chars().any(char::is_control) {
        return Err("must not contain a colon or control characters".into());
    }
    if value.chars().count() > 64 {
        return Err("must be at most 64 characters".into());
    }
    Ok(value.to_owned())
}

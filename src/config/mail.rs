//! Mail for account recovery: the server, the sender, the links' lives and
//! whether an address must be verified.

use clap::Args;

use super::{ConfigError, MAX_TTL};
use crate::secret::Secret;

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Mail")]
pub struct MailSettings {
    /// Mail for account recovery: `smtp://user:pass@host:587` (STARTTLS;
    /// plain only to a server on this machine) or `smtps://...` (TLS).
    /// Empty: mail off.
    #[arg(long, env = "SMTP_URL", hide_env_values = true, global = true)]
    pub smtp_url: Option<Secret>,

    /// The sender of authgraph's mail.
    #[arg(
        long,
        env = "MAIL_FROM",
        hide_env_values = true,
        default_value = "authgraph <no-reply@localhost>",
        global = true
    )]
    pub mail_from: String,

    /// `optional`, or `required`: an unverified account can do almost
    /// nothing until its address is verified (needs SMTP_URL).
    #[arg(long, env = "EMAIL_VERIFICATION", hide_env_values = true, value_enum, default_value_t = EmailVerification::Optional, global = true)]
    pub email_verification: EmailVerification,

    /// Seconds a password reset link works.
    #[arg(long, env = "PASSWORD_RESET_TTL", hide_env_values = true, default_value_t = 1800, value_parser = clap::value_parser!(u64).range(1..=MAX_TTL), global = true)]
    pub password_reset_ttl: u64,

    /// Seconds an email verification link works.
    #[arg(long, env = "EMAIL_VERIFICATION_TTL", hide_env_values = true, default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(1..=MAX_TTL), global = true)]
    pub email_verification_ttl: u64,
}

/// `EMAIL_VERIFICATION`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EmailVerification {
    Optional,
    Required,
}

impl MailSettings {
    /// Mail settings that can't work together end the start.
    pub fn check(&self) -> Result<(), ConfigError> {
        let smtp = self
            .smtp_url
            .as_ref()
            .map(|url| String::from_utf8_lossy(url.expose()).trim().to_owned())
            .filter(|url| !url.is_empty());
        if let Some(smtp) = &smtp {
            let fits = url::Url::parse(smtp).is_ok_and(|url| {
                matches!(url.scheme(), "smtp" | "smtps") && url.host_str().is_some()
            });
            if !fits {
                // The URL is not shown: it may hold a password.
                return Err(ConfigError::new(
                    "SMTP_URL",
                    "expected smtp://user:pass@host:587 (STARTTLS) or smtps://user:pass@host:465 (TLS)",
                ));
            }
        }
        if self.email_verification == EmailVerification::Required && smtp.is_none() {
            return Err(ConfigError::new(
                "EMAIL_VERIFICATION",
                "`required` needs SMTP_URL: without mail no address can be verified",
            ));
        }
        Ok(())
    }

    /// `EMAIL_VERIFICATION=required`.
    pub fn verified_only(&self) -> bool {
        self.email_verification == EmailVerification::Required
    }
}

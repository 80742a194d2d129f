//! Mail for account recovery: the tokens (random, hashed, sealed), the
//! templates (`assets/mail/`, plain text and HTML), and the worker that
//! sends the outbox through lettre with retries and backoff.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use entity::mail_token::Purpose;
use entity::outbox;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::client::Tls;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use crate::auth::sealing::{OUTBOX_TOKEN_SEALING, Sealer};
use crate::config::{ConfigError, PublicUrl, Settings};
use crate::error::chain;
use crate::secret::Secret;
use crate::store::{QueuedMail, Store};

/// The longest one delivery may take, connection to the server's last
/// answer: a send still going then is given up (and retried later).
const SEND_DEADLINE: Duration = Duration::from_secs(20);
/// How long a worker holds the one mail it claimed before another worker
/// (of this server or another) may take it: [`SEND_DEADLINE`] and 10 s for
/// marking it and for clocks that differ, so a claim never lapses while
/// its mail is being sent. A worker that dies lets its mail go this late.
const LEASE: i64 = SEND_DEADLINE.as_secs() as i64 + 10;
/// How often the worker looks for due mail besides being woken.
const POLL: Duration = Duration::from_secs(2);
/// The longest wait between two attempts at one mail.
const MAX_BACKOFF: i64 = 300;
/// How long one SMTP command may take to answer.
const SMTP_TIMEOUT: Duration = Duration::from_secs(15);

/// A new mail token: the token (for the link) and its hash (for the store).
pub struct MailToken {
    pub token: String,
    pub hash: String,
}

impl MailToken {
    /// 256 random bits, base64url.
    pub fn new() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        let token = URL_SAFE_NO_PAD.encode(bytes);
        Ok(Self {
            hash: Self::hash(&token),
            token,
        })
    }

    /// The stored form of a token.
    pub fn hash(token: &str) -> String {
        hex::encode(Sha256::digest(token.as_bytes()))
    }
}

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    public_url: PublicUrl,
    sealer: Sealer,
    reset_ttl: i64,
    verify_ttl: i64,
    wake: Notify,
}

#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("the sealed token did not open (was DATA_KEY_FILE changed?)")]
    Unsealable,
    #[error("the mail could not be built: {0}")]
    Build(String),
    #[error("SMTP: {0}")]
    Smtp(String),
}

impl Mailer {
    /// The mailer of `SMTP_URL`, or `None` when mail is off.
    pub fn new(settings: &Settings, data_key: &Secret) -> Result<Option<Self>, ConfigError> {
        let Some(url) = settings
            .mail
            .smtp_url
            .as_ref()
            .map(|url| String::from_utf8_lossy(url.expose()).trim().to_owned())
            .filter(|url| !url.is_empty())
        else {
            return Ok(None);
        };
        let bad = |why: &str| ConfigError::new("SMTP_URL", why.to_owned());
        let parsed = url::Url::parse(&url)
            .map_err(|_| bad("expected smtp://user:pass@host:587 or smtps://user:pass@host:465"))?;
        let host = parsed
            .host_str()
            .ok_or_else(|| bad("has no host"))?
            .to_owned();
        let loopback = host == "localhost"
            || host
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        let mut builder = match parsed.scheme() {
            "smtps" => AsyncSmtpTransport::<Tokio1Executor>::relay(&host)
                .map_err(|err| bad(&format!("TLS set-up failed: {err}")))?,
            "smtp" => {
                let tls = lettre::transport::smtp::client::TlsParameters::new(host.clone())
                    .map_err(|err| bad(&format!("TLS set-up failed: {err}")))?;
                // STARTTLS, required; a server on this machine (a local
                // catch-all in development) may also answer without it.
                let tls = if loopback {
                    Tls::Opportunistic(tls)
                } else {
                    Tls::Required(tls)
                };
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host)
                    .port(587)
                    .tls(tls)
            }
            _ => {
                return Err(bad(
                    "the scheme must be smtp:// (STARTTLS) or smtps:// (TLS)",
                ));
            }
        };
        if let Some(port) = parsed.port() {
            builder = builder.port(port);
        }
        if !parsed.username().is_empty() {
            let user = percent_decode(parsed.username());
            let pass = percent_decode(parsed.password().unwrap_or(""));
            builder = builder.credentials(
                lettre::transport::smtp::authentication::Credentials::new(user, pass),
            );
        }
        let from: Mailbox = settings.mail.mail_from.parse().map_err(|_| {
            ConfigError::new(
                "MAIL_FROM",
                "expected an address, e.g. authgraph <no-reply@example.com>",
            )
        })?;
        Ok(Some(Self {
            transport: builder.timeout(Some(SMTP_TIMEOUT)).build(),
            from,
            public_url: settings.edge.public_url.clone(),
            sealer: Sealer::new(data_key, OUTBOX_TOKEN_SEALING),
            reset_ttl: i64::try_from(settings.mail.password_reset_ttl).unwrap_or(1800),
            verify_ttl: i64::try_from(settings.mail.email_verification_ttl).unwrap_or(86_400),
            wake: Notify::new(),
        }))
    }

    /// How long a token of `purpose` works, seconds.
    pub fn ttl(&self, purpose: Purpose) -> i64 {
        match purpose {
            Purpose::PasswordReset => self.reset_ttl,
            Purpose::EmailVerification => self.verify_ttl,
        }
    }

    /// A mail of `purpose` to `recipient` with a new token, ready to queue.
    pub fn prepare(
        &self,
        purpose: Purpose,
        user_id: uuid::Uuid,
        recipient: &str,
        username: &str,
        now: i64,
    ) -> Result<QueuedMail, String> {
        let token = MailToken::new().map_err(|err| format!("no system randomness: {err}"))?;
        let sealed_token = self
            .sealer
            .seal(token.token.as_bytes())
            .map_err(|err| err.to_string())?;
        Ok(QueuedMail {
            user_id,
            purpose,
            token_hash: token.hash,
            expires_at: now + self.ttl(purpose),
            recipient: recipient.to_owned(),
            username: username.to_owned(),
            sealed_token,
        })
    }

    /// Tells the worker a mail is waiting.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Sends the outbox until the process ends: due mails are claimed one
    /// at a time, sent within [`SEND_DEADLINE`] and marked sent, so no claim
    /// lapses while its mail is on the way (a batch would hold its last
    /// mails past their lease, and another server would send them again). A
    /// failure is retried later, each wait twice the last (up to five
    /// minutes).
    pub async fn run(self: Arc<Self>, store: Store) {
        loop {
            let now = chrono::Utc::now().timestamp();
            let claimed = match store.claim_mails(now, LEASE, 1).await {
                Ok(rows) => rows,
                Err(err) => {
                    tracing::warn!(error = %chain(&err), "the outbox could not be read; will retry");
                    Vec::new()
                }
            };
            let busy = !claimed.is_empty();
            for row in claimed {
                self.deliver(&store, row).await;
            }
            if busy {
                continue;
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    async fn deliver(&self, store: &Store, row: outbox::Model) {
        let id = row.id;
        let attempts = row.attempts;
        let outcome = tokio::time::timeout(SEND_DEADLINE, self.send(&row))
            .await
            .unwrap_or_else(|_| Err(SendError::Smtp("the delivery took too long".into())));
        let now = chrono::Utc::now().timestamp();
        let marked = match outcome {
            Ok(()) => {
                tracing::info!(mail = %id, kind = ?row.kind, "mail sent");
                store.mail_sent(id, now).await
            }
            // Sealed under another data key: another server (with the key
            // every server should share) may open it; dropped only once its
            // token has expired anyway.
            Err(SendError::Unsealable) if now > row.created_at + self.ttl(row.kind) => {
                tracing::error!(mail = %id, "{}; its link has expired: the mail is dropped", SendError::Unsealable);
                store.mail_sent(id, now).await
            }
            Err(SendError::Unsealable) => {
                tracing::error!(
                    mail = %id,
                    "{}; left for a server with the right key (every server needs the same DATA_KEY_FILE)",
                    SendError::Unsealable
                );
                store.mail_failed(id, now + MAX_BACKOFF.min(30)).await
            }
            Err(err) => {
                let wait = 2_i64
                    .saturating_pow(u32::try_from(attempts).unwrap_or(31))
                    .min(MAX_BACKOFF);
                tracing::warn!(mail = %id, attempts, retry_in = wait, error = %err, "mail not sent; will retry");
                store.mail_failed(id, now + wait).await
            }
        };
        if let Err(err) = marked {
            tracing::warn!(mail = %id, error = %chain(&err), "the outbox row could not be updated");
        }
    }

    async fn send(&self, row: &outbox::Model) -> Result<(), SendError> {
        let sealed = row.sealed_token.as_deref().ok_or(SendError::Unsealable)?;
        let token = self
            .sealer
            .open(sealed)
            .map_err(|_| SendError::Unsealable)?;
        let token = String::from_utf8(token).map_err(|_| SendError::Unsealable)?;
        let (path, subject, text, html) = match row.kind {
            Purpose::PasswordReset => (
                "reset-password",
                "Reset your password",
                include_str!("../../assets/mail/reset-password.txt"),
                include_str!("../../assets/mail/reset-password.html"),
            ),
            Purpose::EmailVerification => (
                "verify-email",
                "Confirm your address",
                include_str!("../../assets/mail/verify-email.txt"),
                include_str!("../../assets/mail/verify-email.html"),
            ),
        };
        // Built from PUBLIC_URL alone, the token in the fragment.
        let link = format!("{}#token={token}", self.public_url.join(path));
        let ttl = self.ttl(row.kind);
        let fill = |template: &str, escape: bool| {
            let value = |text: &str| {
                if escape {
                    html_escape::encode_double_quoted_attribute(text).into_owned()
                } else {
                    text.to_owned()
                }
            };
            template
                .replace("{{username}}", &value(&row.username))
                .replace("{{link}}", &value(&link))
                .replace("{{minutes}}", &(ttl / 60).to_string())
                .replace("{{hours}}", &(ttl / 3600).to_string())
        };
        let to: Mailbox = row
            .recipient
            .parse()
            .map_err(|err: lettre::address::AddressError| SendError::Build(err.to_string()))?;
        // A fresh Message-ID (mail filters frown on none) under PUBLIC_URL's
        // host: the machine's own name is nobody's business.
        let id_host = self.public_url.url().host_str().unwrap_or("localhost");
        let message = Message::builder()
            .message_id(Some(format!(
                "<{}@{id_host}>",
                uuid::Uuid::new_v4().simple()
            )))
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .multipart(MultiPart::alternative_plain_html(
                fill(text, false),
                fill(html, true),
            ))
            .map_err(|err| SendError::Build(err.to_string()))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|err| SendError::Smtp(err.to_string()))
    }
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

//! Security events (API.md, "Security events"): what happened, to whom, by
//! whom and from where. A kind is one variant of [`Kind`] with its `detail`
//! fields; the store writes each event in the transaction of the change it
//! records (`store/events.rs`), and [`Recorded::log`] writes its log line
//! once that transaction has committed.
//!
//! Nothing secret goes in: no password, token, key, code, secret or hash of
//! one, and never the identifier typed at a failed login.

use std::net::IpAddr;

use serde::Serialize;
use uuid::Uuid;

/// The first factor, then `+` and the second when one was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Method {
    #[serde(rename = "password")]
    Password,
    #[serde(rename = "password+totp")]
    PasswordTotp,
    #[serde(rename = "password+recovery_code")]
    PasswordRecoveryCode,
}

/// Why a sign-in was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginRefusal {
    WrongPassword,
    UnknownAccount,
    EmailNotVerified,
    Throttled,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    Logout,
    LogoutAll,
    SessionRevoked,
    PasswordChanged,
    PasswordReset,
    /// A used refresh token came back: the session's tokens may be stolen.
    RefreshReused,
    MfaChanged,
}

/// Why an API key was revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyRevocation {
    Revoked,
    PasswordReset,
}

/// What happened: the kind's name and its `detail`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "detail")]
pub enum Kind {
    #[serde(rename = "user.signed_up")]
    SignedUp {},
    #[serde(rename = "login.succeeded")]
    LoginSucceeded { method: Method },
    /// The first factor was right; the session waits for the second.
    #[serde(rename = "login.mfa_challenged")]
    LoginMfaChallenged { method: Method },
    #[serde(rename = "login.failed")]
    LoginFailed {
        method: Method,
        reason: LoginRefusal,
    },
    /// A wrong password given again for a sensitive field.
    #[serde(rename = "reauth.failed")]
    ReauthFailed { operation: String },
    /// A wrong second-factor code.
    #[serde(rename = "mfa.failed")]
    MfaFailed { operation: String },
    #[serde(rename = "session.ended")]
    SessionEnded { reason: EndReason },
    #[serde(rename = "password.changed", rename_all = "camelCase")]
    PasswordChanged { sessions_ended: u64 },
    #[serde(rename = "password.reset", rename_all = "camelCase")]
    PasswordReset {
        sessions_ended: u64,
        api_keys_revoked: u64,
    },
    #[serde(rename = "email.verified")]
    EmailVerified {},
    #[serde(rename = "mfa.enabled")]
    MfaEnabled {},
    #[serde(rename = "mfa.disabled")]
    MfaDisabled {},
    #[serde(rename = "mfa.recovery_codes_regenerated")]
    RecoveryCodesRegenerated {},
    #[serde(rename = "mfa.recovery_code_used")]
    RecoveryCodeUsed { remaining: u64 },
    #[serde(rename = "api_key.created", rename_all = "camelCase")]
    ApiKeyCreated {
        key_id: Uuid,
        name: String,
        prefix: String,
        /// RFC 3339, as the API's `DateTime`.
        expires_at: String,
    },
    #[serde(rename = "api_key.first_used", rename_all = "camelCase")]
    ApiKeyFirstUsed { key_id: Uuid },
    #[serde(rename = "api_key.revoked", rename_all = "camelCase")]
    ApiKeyRevoked { key_id: Uuid, reason: KeyRevocation },
    #[serde(rename = "user.role_changed")]
    RoleChanged {
        from: &'static str,
        to: &'static str,
    },
    /// A `FORBIDDEN` answer; `operation` is the root field.
    #[serde(rename = "access.denied")]
    AccessDenied { operation: String },
}

/// Every kind API.md names, those later features write included: what a
/// filter may ask for.
pub const KINDS: &[&str] = &[
    "user.signed_up",
    "login.succeeded",
    "login.mfa_challenged",
    "login.failed",
    "reauth.failed",
    "mfa.failed",
    "session.ended",
    "password.changed",
    "password.reset",
    "email.verified",
    "mfa.enabled",
    "mfa.disabled",
    "mfa.recovery_codes_regenerated",
    "mfa.recovery_code_used",
    "api_key.created",
    "api_key.first_used",
    "api_key.revoked",
    "user.role_changed",
    "access.denied",
    "identity.linked",
    "identity.unlinked",
    "passkey.registered",
    "passkey.renamed",
    "passkey.deleted",
    "passkey.clone_suspected",
    "webhook.created",
    "webhook.updated",
    "webhook.deleted",
    "webhook.secret_rotated",
    "webhook.disabled",
    "user.disabled",
    "user.enabled",
];

impl Kind {
    /// Is this a refusal (outcome `FAILURE`)?
    pub fn failed(&self) -> bool {
        matches!(
            self,
            Self::LoginFailed { .. }
                | Self::ReauthFailed { .. }
                | Self::MfaFailed { .. }
                | Self::AccessDenied { .. }
                | Self::SessionEnded {
                    reason: EndReason::RefreshReused
                }
        )
    }

    /// The kind's name and its `detail` as JSON text.
    pub fn name_and_detail(&self) -> (String, String) {
        let tagged = serde_json::to_value(self).unwrap_or_default();
        let name = tagged["kind"].as_str().unwrap_or_default().to_owned();
        let detail = match tagged.get("detail") {
            Some(detail) if detail.is_object() => detail.to_string(),
            _ => "{}".to_owned(),
        };
        (name, detail)
    }
}

/// Who acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorKind {
    /// The account, for its own actions.
    User,
    /// An ADMIN acting on another account.
    Admin,
    /// A request an API key authenticated.
    ApiKey,
    /// Housekeeping, the delivery worker, the command line.
    System,
    /// Failed sign-ins and reuse detection.
    Anonymous,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "USER",
            Self::Admin => "ADMIN",
            Self::ApiKey => "API_KEY",
            Self::System => "SYSTEM",
            Self::Anonymous => "ANONYMOUS",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    pub kind: ActorKind,
    /// USER and ADMIN: a user id; API_KEY: the key's id; else none.
    pub id: Option<Uuid>,
}

impl Actor {
    pub const ANONYMOUS: Self = Self {
        kind: ActorKind::Anonymous,
        id: None,
    };
    pub const SYSTEM: Self = Self {
        kind: ActorKind::System,
        id: None,
    };

    pub fn user(id: Uuid) -> Self {
        Self {
            kind: ActorKind::User,
            id: Some(id),
        }
    }

    pub fn admin(id: Uuid) -> Self {
        Self {
            kind: ActorKind::Admin,
            id: Some(id),
        }
    }

    pub fn api_key(id: Uuid) -> Self {
        Self {
            kind: ActorKind::ApiKey,
            id: Some(id),
        }
    }
}

/// Where a request came from: the client IP (API.md's rules), its user
/// agent (cut at 256 characters by the HTTP layer) and its request id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Source {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub request_id: Option<std::sync::Arc<str>>,
}

/// An event to write: its kind, the account concerned, the session, who acted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: Kind,
    pub user_id: Option<Uuid>,
    pub session_id: Option<Uuid>,
    pub actor: Actor,
}

impl Event {
    /// `kind`, of account `user_id`, by `actor`.
    pub fn new(kind: Kind, user_id: Option<Uuid>, actor: Actor) -> Self {
        Self {
            kind,
            user_id,
            session_id: None,
            actor,
        }
    }

    /// The account's own action.
    pub fn by_user(kind: Kind, user_id: Uuid) -> Self {
        Self::new(kind, Some(user_id), Actor::user(user_id))
    }

    pub fn in_session(mut self, session_id: Option<Uuid>) -> Self {
        self.session_id = session_id;
        self
    }
}

/// An event as written: what its log line says once its transaction
/// committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub id: Uuid,
    pub position: i64,
    pub kind: String,
    pub failed: bool,
    pub user_id: Option<Uuid>,
    pub session_id: Option<Uuid>,
    pub actor: Actor,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub detail: String,
}

/// Events written in a transaction, to log once it committed. Dropping it
/// unlogged (a rollback) logs nothing.
#[must_use = "log the events once their transaction committed"]
#[derive(Debug, Default)]
pub struct Written(pub Vec<Recorded>);

impl Written {
    pub fn log(self) {
        for event in &self.0 {
            event.log();
        }
    }

    pub fn and(mut self, other: Written) -> Self {
        self.0.extend(other.0);
        self
    }
}

impl Recorded {
    /// The event's one log line, at `info`, target `authgraph::security`.
    pub fn log(&self) {
        tracing::info!(
            target: "authgraph::security",
            event_id = %self.id,
            kind = %self.kind,
            outcome = if self.failed { "FAILURE" } else { "SUCCESS" },
            user_id = self.user_id.map(tracing::field::display),
            session_id = self.session_id.map(tracing::field::display),
            actor_kind = self.actor.kind.as_str(),
            actor_id = self.actor.id.map(tracing::field::display),
            ip = self.ip.as_deref(),
            user_agent = self.user_agent.as_deref(),
            request_id = self.request_id.as_deref(),
            detail = %self.detail,
            "security event"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_named_as_api_md_pins_them_with_camel_case_detail() {
        let key_id = Uuid::nil();
        let (name, detail) = Kind::PasswordReset {
            sessions_ended: 2,
            api_keys_revoked: 1,
        }
        .name_and_detail();
        assert_eq!(name, "password.reset");
        // serde_json keeps object keys sorted.
        assert_eq!(detail, r#"{"apiKeysRevoked":1,"sessionsEnded":2}"#);
        let (name, detail) = Kind::SignedUp {}.name_and_detail();
        assert_eq!((name.as_str(), detail.as_str()), ("user.signed_up", "{}"));
        let (_, detail) = Kind::LoginFailed {
            method: Method::PasswordRecoveryCode,
            reason: LoginRefusal::UnknownAccount,
        }
        .name_and_detail();
        assert_eq!(
            detail,
            r#"{"method":"password+recovery_code","reason":"unknown_account"}"#
        );
        let (_, detail) = Kind::ApiKeyRevoked {
            key_id,
            reason: KeyRevocation::PasswordReset,
        }
        .name_and_detail();
        assert_eq!(
            detail,
            format!(r#"{{"keyId":"{key_id}","reason":"password_reset"}}"#)
        );
    }

    #[test]
    fn every_kind_written_is_a_kind_a_filter_knows() {
        let key_id = Uuid::nil();
        let all = [
            Kind::SignedUp {},
            Kind::LoginSucceeded {
                method: Method::Password,
            },
            Kind::LoginMfaChallenged {
                method: Method::Password,
            },
            Kind::LoginFailed {
                method: Method::Password,
                reason: LoginRefusal::Throttled,
            },
            Kind::ReauthFailed {
                operation: "x".into(),
            },
            Kind::MfaFailed {
                operation: "x".into(),
            },
            Kind::SessionEnded {
                reason: EndReason::Logout,
            },
            Kind::PasswordChanged { sessions_ended: 0 },
            Kind::PasswordReset {
                sessions_ended: 0,
                api_keys_revoked: 0,
            },
            Kind::EmailVerified {},
            Kind::MfaEnabled {},
            Kind::MfaDisabled {},
            Kind::RecoveryCodesRegenerated {},
            Kind::RecoveryCodeUsed { remaining: 9 },
            Kind::ApiKeyCreated {
                key_id,
                name: "n".into(),
                prefix: "p".into(),
                expires_at: "t".into(),
            },
            Kind::ApiKeyFirstUsed { key_id },
            Kind::ApiKeyRevoked {
                key_id,
                reason: KeyRevocation::Revoked,
            },
            Kind::RoleChanged {
                from: "USER",
                to: "ADMIN",
            },
            Kind::AccessDenied {
                operation: "users".into(),
            },
        ];
        for kind in all {
            let (name, detail) = kind.name_and_detail();
            assert!(KINDS.contains(&name.as_str()), "{name}");
            assert!(detail.starts_with('{'), "{name}: {detail}");
        }
        assert!(
            Kind::SessionEnded {
                reason: EndReason::RefreshReused
            }
            .failed()
        );
        assert!(
            !Kind::SessionEnded {
                reason: EndReason::Logout
            }
            .failed()
        );
    }
}

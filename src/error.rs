//! The one error type of the GraphQL layer, and its one mapping to
//! `errors[].extensions.code` (API.md, "Errors"). The layers below have
//! their own (`AuthError`, `DbErr`, ...), converted here once.
//!
//! `AppError` deliberately does not implement `Display`: async-graphql turns any
//! `Display` error into a message verbatim, and this way the only road from an
//! `AppError` to a response is the `From` impl below.

use std::error::Error as StdError;

use async_graphql::ErrorExtensions;

use crate::auth::AuthFailure;
use crate::auth::bearer::AuthError;
use crate::domain::{COMMON_PASSWORD, CONTAINS_IDENTITY, InvalidInput};

/// Every `errors[].extensions.code` authgraph answers: the README's Errors
/// table lists each (a test holds it to that). Use these, never a literal.
pub mod code {
    pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";
    pub const CONFLICT: &str = "CONFLICT";
    pub const INVALID_CREDENTIALS: &str = "INVALID_CREDENTIALS";
    pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
    pub const FORBIDDEN: &str = "FORBIDDEN";
    pub const EMAIL_NOT_VERIFIED: &str = "EMAIL_NOT_VERIFIED";
    pub const MFA_REQUIRED: &str = "MFA_REQUIRED";
    pub const FEATURE_DISABLED: &str = "FEATURE_DISABLED";
    pub const TOO_MANY_REQUESTS: &str = "TOO_MANY_REQUESTS";
    pub const INTERNAL_SERVER_ERROR: &str = "INTERNAL_SERVER_ERROR";
    pub const GRAPHQL_PARSE_FAILED: &str = "GRAPHQL_PARSE_FAILED";
    pub const GRAPHQL_VALIDATION_FAILED: &str = "GRAPHQL_VALIDATION_FAILED";
    pub const BAD_REQUEST: &str = "BAD_REQUEST";
    pub const PERSISTED_QUERY_NOT_FOUND: &str = "PERSISTED_QUERY_NOT_FOUND";
}

/// The `reason` of [`AppError::ReauthenticationRequired`].
pub const REAUTHENTICATION_REQUIRED: &str = "reauthentication_required";

/// The codes, in the README's order.
pub const CODES: &[&str] = &[
    code::BAD_USER_INPUT,
    code::CONFLICT,
    code::INVALID_CREDENTIALS,
    code::UNAUTHENTICATED,
    code::FORBIDDEN,
    code::EMAIL_NOT_VERIFIED,
    code::MFA_REQUIRED,
    code::FEATURE_DISABLED,
    code::TOO_MANY_REQUESTS,
    code::INTERNAL_SERVER_ERROR,
    code::GRAPHQL_PARSE_FAILED,
    code::GRAPHQL_VALIDATION_FAILED,
    code::BAD_REQUEST,
    code::PERSISTED_QUERY_NOT_FOUND,
];

/// Every `extensions.reason`: an authentication failure's
/// (`AuthFailure::as_str`), a fresh proof's, a new password's.
pub const REASONS: &[&str] = &[
    AuthFailure::Missing.as_str(),
    AuthFailure::Invalid.as_str(),
    AuthFailure::Expired.as_str(),
    AuthFailure::Revoked.as_str(),
    AuthFailure::Rotated.as_str(),
    REAUTHENTICATION_REQUIRED,
    COMMON_PASSWORD,
    CONTAINS_IDENTITY,
];

#[derive(Debug)]
pub enum AppError {
    BadUserInput(InvalidInput),
    Conflict {
        field: &'static str,
    },
    InvalidCredentials,
    /// `INVALID_CREDENTIALS` for a signed-in caller's password given again
    /// (a sensitive field, `changePassword`): no username was typed.
    WrongPassword,
    /// `INVALID_CREDENTIALS` for a wrong (or used) second-factor code.
    InvalidCode,
    /// `INVALID_CREDENTIALS`: MFA is on and no code came with the password.
    CodeRequired,
    Unauthenticated(AuthFailure),
    /// `UNAUTHENTICATED` for an API key: the same reasons, told as a key's
    /// (a key's holder has no login to repeat).
    KeyRefused(AuthFailure),
    Forbidden,
    /// `FORBIDDEN`, saying why (a cap, or what an API key may not do).
    ForbiddenWith(&'static str),
    /// `FORBIDDEN` with `reason: "reauthentication_required"`: a sensitive
    /// field without the password, in a session signed in too long ago.
    ReauthenticationRequired,
    /// The password was right; the login waits for a second factor.
    MfaRequired {
        mfa_token: String,
    },
    /// `EMAIL_VERIFICATION=required` and the caller's address is not verified.
    EmailNotVerified,
    /// A feature that is off in this server's settings (mail without SMTP_URL).
    FeatureDisabled(&'static str),
    TooManyRequests {
        retry_after: u64,
    },
    /// Anything unexpected. The cause is logged, never shown.
    Internal(Box<dyn StdError + Send + Sync>),
}

impl AppError {
    pub fn internal(err: impl StdError + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(err))
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::BadUserInput(_) => code::BAD_USER_INPUT,
            Self::Conflict { .. } => code::CONFLICT,
            Self::InvalidCredentials
            | Self::WrongPassword
            | Self::InvalidCode
            | Self::CodeRequired => code::INVALID_CREDENTIALS,
            Self::Unauthenticated(_) | Self::KeyRefused(_) => code::UNAUTHENTICATED,
            Self::Forbidden | Self::ForbiddenWith(_) | Self::ReauthenticationRequired => {
                code::FORBIDDEN
            }
            Self::EmailNotVerified => code::EMAIL_NOT_VERIFIED,
            Self::MfaRequired { .. } => code::MFA_REQUIRED,
            Self::FeatureDisabled(_) => code::FEATURE_DISABLED,
            Self::TooManyRequests { .. } => code::TOO_MANY_REQUESTS,
            Self::Internal(_) => code::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<InvalidInput> for AppError {
    fn from(err: InvalidInput) -> Self {
        Self::BadUserInput(err)
    }
}

impl From<AuthFailure> for AppError {
    fn from(reason: AuthFailure) -> Self {
        Self::Unauthenticated(reason)
    }
}

impl From<AuthError> for AppError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Refused(reason) => Self::Unauthenticated(reason),
            AuthError::Db(err) => Self::internal(err),
        }
    }
}

impl From<sea_orm::DbErr> for AppError {
    fn from(err: sea_orm::DbErr) -> Self {
        Self::internal(err)
    }
}

/// The cause chain of an error on one line, for the log.
pub fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    let mut last = text.clone();
    while let Some(cause) = source {
        let next = cause.to_string();
        // Wrappers often repeat their source's text; say it once.
        if !last.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        last = next;
        source = cause.source();
    }
    text
}

impl From<AppError> for async_graphql::Error {
    fn from(err: AppError) -> Self {
        let code = err.code();
        let error = match err {
            AppError::BadUserInput(input) => {
                async_graphql::Error::new(format!("{} {}", input.field, input.message)).extend_with(
                    |_, e| {
                        e.set("field", input.field);
                        if let Some(reason) = input.reason {
                            e.set("reason", reason);
                        }
                    },
                )
            }
            AppError::Conflict { field } => {
                async_graphql::Error::new(format!("This {field} is already taken"))
                    .extend_with(|_, e| e.set("field", field))
            }
            AppError::InvalidCredentials => {
                async_graphql::Error::new("Invalid username, email or password")
            }
            AppError::WrongPassword => {
                async_graphql::Error::new("That is not your password: try again")
            }
            AppError::InvalidCode => {
                async_graphql::Error::new("The code is not valid, or was used already")
            }
            AppError::CodeRequired => async_graphql::Error::new(
                "MFA is on for this account: give a code from your authenticator app (or a \
                 recovery code) with the password",
            ),
            AppError::Unauthenticated(reason) => async_graphql::Error::new(reason.message())
                .extend_with(|_, e| e.set("reason", reason.as_str())),
            AppError::KeyRefused(reason) => async_graphql::Error::new(match reason {
                AuthFailure::Revoked => "This API key was revoked: make a new one",
                AuthFailure::Expired => "This API key has expired: make a new one",
                _ => "This is not a valid API key",
            })
            .extend_with(|_, e| e.set("reason", reason.as_str())),
            AppError::Forbidden => async_graphql::Error::new("You are not allowed to do this"),
            AppError::ForbiddenWith(why) => async_graphql::Error::new(why),
            AppError::ReauthenticationRequired => async_graphql::Error::new(
                "This needs a fresh proof: give your password again (and a code with MFA on), \
                 or sign in again",
            )
            .extend_with(|_, e| e.set("reason", REAUTHENTICATION_REQUIRED)),
            AppError::MfaRequired { mfa_token } => async_graphql::Error::new(
                "A second factor is needed: call verifyMfa with this mfaToken and a code",
            )
            .extend_with(|_, e| e.set("mfaToken", mfa_token)),
            AppError::EmailNotVerified => async_graphql::Error::new(
                "Verify your email address first: follow the link mailed to it",
            ),
            AppError::FeatureDisabled(what) => async_graphql::Error::new(what),
            AppError::TooManyRequests { retry_after } => async_graphql::Error::new(format!(
                "Too many attempts: try again in {retry_after} second{}",
                if retry_after == 1 { "" } else { "s" }
            ))
            .extend_with(|_, e| e.set("retryAfter", retry_after)),
            AppError::Internal(cause) => {
                tracing::error!(error = %chain(cause.as_ref()), "internal error");
                async_graphql::Error::new("Internal server error")
            }
        };
        error.extend_with(|_, e| e.set("code", code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extensions(err: AppError) -> serde_json::Value {
        let server = async_graphql::Error::from(err).into_server_error(Default::default());
        serde_json::to_value(&server).unwrap()
    }

    #[test]
    fn every_variant_carries_its_code_and_extras() {
        let v = extensions(AppError::BadUserInput(InvalidInput::new("email", "is bad")));
        assert_eq!(v["extensions"]["code"], "BAD_USER_INPUT");
        assert_eq!(v["extensions"]["field"], "email");
        let v = extensions(AppError::Unauthenticated(AuthFailure::Expired));
        assert_eq!(v["extensions"]["code"], "UNAUTHENTICATED");
        assert_eq!(v["extensions"]["reason"], "expired");
        let v = extensions(AppError::TooManyRequests { retry_after: 3 });
        assert_eq!(v["extensions"]["retryAfter"], 3);
        assert!(v["message"].as_str().unwrap().ends_with("in 3 seconds"));
        let v = extensions(AppError::TooManyRequests { retry_after: 1 });
        assert!(
            v["message"].as_str().unwrap().ends_with("in 1 second"),
            "{v}"
        );
        let v = extensions(AppError::ReauthenticationRequired);
        assert_eq!(v["extensions"]["code"], "FORBIDDEN");
        assert_eq!(v["extensions"]["reason"], "reauthentication_required");
        let v = extensions(AppError::Conflict { field: "username" });
        assert_eq!(v["extensions"]["field"], "username");
    }

    #[test]
    fn every_code_and_reason_answered_is_listed() {
        let variants = [
            AppError::BadUserInput(InvalidInput::new("x", "y")),
            AppError::Conflict { field: "x" },
            AppError::InvalidCredentials,
            AppError::WrongPassword,
            AppError::InvalidCode,
            AppError::CodeRequired,
            AppError::Unauthenticated(AuthFailure::Missing),
            AppError::KeyRefused(AuthFailure::Revoked),
            AppError::Forbidden,
            AppError::ForbiddenWith("x"),
            AppError::ReauthenticationRequired,
            AppError::MfaRequired {
                mfa_token: "t".into(),
            },
            AppError::EmailNotVerified,
            AppError::FeatureDisabled("x"),
            AppError::TooManyRequests { retry_after: 1 },
            AppError::internal(std::io::Error::other("x")),
        ];
        for err in variants {
            let code = err.code();
            assert!(CODES.contains(&code), "{code}");
            let v = extensions(err);
            if let Some(reason) = v["extensions"]["reason"].as_str() {
                assert!(REASONS.contains(&reason), "{reason}");
            }
        }
        for failure in [
            AuthFailure::Missing,
            AuthFailure::MissingRefresh,
            AuthFailure::Invalid,
            AuthFailure::Expired,
            AuthFailure::Revoked,
            AuthFailure::Rotated,
        ] {
            assert!(REASONS.contains(&failure.as_str()), "{failure:?}");
        }
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let cause = std::io::Error::other("SELECT password_hash FROM users failed");
        let v = extensions(AppError::internal(cause));
        assert_eq!(v["extensions"]["code"], "INTERNAL_SERVER_ERROR");
        assert!(!v["message"].as_str().unwrap().contains("SELECT"));
    }
}

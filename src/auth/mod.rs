//! Tokens, passwords and who is asking. Nothing here knows GraphQL: the
//! context, guards and error codes are `graphql`'s.

pub mod api_key;
pub mod bearer;
pub mod jwt;
pub mod keys;
pub mod mfa;
pub mod password;
pub mod sealing;

/// Why a token was refused: `extensions.reason` of `UNAUTHENTICATED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    Missing,
    /// `missing` too, where a refresh token was expected: neither an
    /// argument nor the cookie.
    MissingRefresh,
    Invalid,
    Expired,
    Revoked,
    /// A refresh token rotated moments ago by another request (a second tab
    /// sharing the cookie): nothing ended, retry with the newer cookie.
    Rotated,
}

impl AuthFailure {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Missing | Self::MissingRefresh => "missing",
            Self::Invalid => "invalid",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::Rotated => "rotated",
        }
    }

    /// What the client is told.
    pub fn message(self) -> &'static str {
        match self {
            Self::Missing => {
                "Authentication required: send an access token as 'Authorization: Bearer <token>'"
            }
            Self::Invalid => "The token is not valid",
            Self::Expired => "The token has expired",
            Self::MissingRefresh => {
                "No refresh token: pass `refreshToken`, or send the refresh cookie (cookie mode)"
            }
            Self::Revoked => "The token has been revoked: log in again",
            Self::Rotated => {
                "This refresh token was just rotated by another request: retry, the newer one is in the cookie"
            }
        }
    }
}

//! Tokens, passwords and who is asking. Nothing here knows GraphQL: the
//! context, guards and error codes are `graphql`'s.

pub mod bearer;
pub mod jwt;
pub mod password;

/// Why a token was refused: `extensions.reason` of `UNAUTHENTICATED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    Missing,
    Invalid,
    Expired,
    Revoked,
}

impl AuthFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Invalid => "invalid",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
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
            Self::Revoked => "The token has been revoked: log in again",
        }
    }
}

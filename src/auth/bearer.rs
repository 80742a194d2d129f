//! From the `Authorization` header to a `Requester`: the token decoded, then
//! the blacklist and the user row read in one round trip.

use entity::user;
use sea_orm::DbErr;

use super::AuthFailure;
use super::jwt::{Claims, TokenType, Tokens};
use crate::store::Store;

/// What the `Authorization` header said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    Missing,
    /// Present, but not `Bearer <token>` (or more than one header).
    Malformed,
    Bearer(String),
}

impl Credentials {
    /// Parses an `Authorization` header value: `Bearer <token>`, scheme in any case.
    pub fn from_header(value: Option<&[u8]>) -> Self {
        let Some(value) = value else {
            return Self::Missing;
        };
        let Ok(value) = std::str::from_utf8(value) else {
            return Self::Malformed;
        };
        match value.trim().split_once(' ') {
            Some((scheme, token))
                if scheme.eq_ignore_ascii_case("bearer")
                    && !token.trim().is_empty()
                    && !token.trim().contains(char::is_whitespace) =>
            {
                Self::Bearer(token.trim().to_owned())
            }
            _ => Self::Malformed,
        }
    }
}

/// The authenticated caller of an operation.
#[derive(Debug)]
pub struct Requester {
    pub user: user::Profile,
    pub claims: Claims,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The token is not good: `UNAUTHENTICATED` with this reason.
    #[error("refused: {}", .0.as_str())]
    Refused(AuthFailure),
    #[error(transparent)]
    Db(#[from] DbErr),
}

impl From<AuthFailure> for AuthError {
    fn from(reason: AuthFailure) -> Self {
        Self::Refused(reason)
    }
}

pub async fn authenticate(
    tokens: &Tokens,
    store: &Store,
    credentials: &Credentials,
) -> Result<Requester, AuthError> {
    let token = match credentials {
        Credentials::Missing => return Err(AuthFailure::Missing.into()),
        Credentials::Malformed => return Err(AuthFailure::Invalid.into()),
        Credentials::Bearer(token) => token,
    };
    let claims = tokens.decode(token, TokenType::Access)?;
    match store
        .user_unless_revoked(claims.sub, claims.sid, claims.jti)
        .await?
    {
        Some(user) => Ok(Requester { user, claims }),
        // Rare path: tell a revoked token from a user that is gone.
        None if store.is_revoked(claims.sid, claims.jti).await? => Err(AuthFailure::Revoked.into()),
        None => Err(AuthFailure::Invalid.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_in_any_case() {
        for header in ["Bearer abc", "bearer abc", "BEARER abc", "  Bearer   abc "] {
            assert_eq!(
                Credentials::from_header(Some(header.as_bytes())),
                Credentials::Bearer("abc".into()),
                "{header:?}"
            );
        }
    }

    #[test]
    fn anything_else_present_is_malformed() {
        for header in [
            "",
            "Bearer",
            "Bearer ",
            "Basic abc",
            "Bearer a b",
            "abc",
            "Token abc",
        ] {
            assert_eq!(
                Credentials::from_header(Some(header.as_bytes())),
                Credentials::Malformed,
                "{header:?}"
            );
        }
        assert_eq!(
            Credentials::from_header(Some(b"Bearer \xff\xfe")),
            Credentials::Malformed
        );
    }

    #[test]
    fn absent_is_missing() {
        assert_eq!(Credentials::from_header(None), Credentials::Missing);
    }
}

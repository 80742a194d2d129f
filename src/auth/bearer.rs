//! From the `Authorization` header to a `Requester`: an access token
//! decoded, then the blacklist and the user row read in one round trip; or
//! an API key's hash and its user read in one round trip.

use entity::user;
use sea_orm::DbErr;
use uuid::Uuid;

use super::AuthFailure;
use super::api_key;
use super::jwt::{Claims, TokenType, Tokens};
use crate::events::Source;
use crate::store::{LAST_USED_EVERY, Store};

/// What the `Authorization` header said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    Missing,
    /// Present, but neither `Bearer <token>` nor `Token <key>` (or more
    /// than one header).
    Malformed,
    Bearer(String),
    /// `Token <key>`, or `Bearer <key>` (`ag_...`): an API key.
    ApiKey(String),
}

impl Credentials {
    /// Parses an `Authorization` header value: `Bearer <token>`, or an API
    /// key as `Token <key>` (Django REST framework's scheme) or
    /// `Bearer <key>`; schemes in any case. `Token <jwt>` is malformed, and
    /// so is a token that is not printable ASCII: a JWT is base64url and
    /// dots, a key base62 and `_`. Bytes, not chars: this runs on every
    /// request, and a token is a few hundred of them.
    pub fn from_header(value: Option<&[u8]>) -> Self {
        let Some(value) = value else {
            return Self::Missing;
        };
        let value = value.trim_ascii();
        let Some(space) = value.iter().position(|&b| b == b' ') else {
            return Self::Malformed;
        };
        let (scheme, token) = (&value[..space], value[space + 1..].trim_ascii());
        if token.is_empty() || !token.iter().all(u8::is_ascii_graphic) {
            return Self::Malformed;
        }
        // ASCII, so this can't fail.
        let Ok(token) = std::str::from_utf8(token) else {
            return Self::Malformed;
        };
        let key = api_key::is_key_scheme(token);
        if scheme.eq_ignore_ascii_case(b"bearer") {
            if key {
                Self::ApiKey(token.to_owned())
            } else {
                Self::Bearer(token.to_owned())
            }
        } else if scheme.eq_ignore_ascii_case(b"token") && key {
            Self::ApiKey(token.to_owned())
        } else {
            Self::Malformed
        }
    }
}

/// How the caller proved who they are.
#[derive(Debug)]
pub enum Via {
    /// An access token of a session.
    Token(Claims),
    /// An API key (its id).
    ApiKey(Uuid),
}

/// The authenticated caller of an operation.
#[derive(Debug)]
pub struct Requester {
    pub user: user::Profile,
    pub via: Via,
}

impl Requester {
    /// The session of the access token; `None` with an API key.
    pub fn sid(&self) -> Option<Uuid> {
        match &self.via {
            Via::Token(claims) => Some(claims.sid),
            Via::ApiKey(_) => None,
        }
    }

    /// The API key used; `None` with an access token.
    pub fn api_key(&self) -> Option<Uuid> {
        match &self.via {
            Via::ApiKey(id) => Some(*id),
            Via::Token(_) => None,
        }
    }
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

/// The caller `credentials` name, at `now` (Unix seconds).
pub async fn authenticate(
    tokens: &Tokens,
    store: &Store,
    credentials: &Credentials,
    now: i64,
    source: &Source,
) -> Result<Requester, AuthError> {
    let token = match credentials {
        Credentials::Missing => return Err(AuthFailure::Missing.into()),
        Credentials::Malformed => return Err(AuthFailure::Invalid.into()),
        Credentials::ApiKey(key) => return by_api_key(store, key, now, source).await,
        Credentials::Bearer(token) => token,
    };
    let claims = tokens.decode(token, TokenType::Access)?;
    match store
        .user_unless_revoked(claims.sub, claims.sid, claims.jti)
        .await?
    {
        Some(user) => Ok(Requester {
            user,
            via: Via::Token(claims),
        }),
        // Rare path: tell a revoked token from a user that is gone.
        None if store.is_revoked(claims.sid, claims.jti).await? => Err(AuthFailure::Revoked.into()),
        None => Err(AuthFailure::Invalid.into()),
    }
}

/// Is `key` live at `now`? `Ok` with its holder, or why not.
pub fn check_key(holder: &crate::store::KeyHolder, now: i64) -> Result<(), AuthFailure> {
    if holder.revoked_at.is_some() {
        Err(AuthFailure::Revoked)
    } else if holder.expires_at <= now {
        Err(AuthFailure::Expired)
    } else {
        Ok(())
    }
}

async fn by_api_key(
    store: &Store,
    key: &str,
    now: i64,
    source: &Source,
) -> Result<Requester, AuthError> {
    // Only a key-shaped text is looked up; anything else starting `ag_` is
    // refused like a made-up key.
    if !api_key::looks_like_key(key) {
        return Err(AuthFailure::Invalid.into());
    }
    let holder = store
        .key_holder(&api_key::hash(key))
        .await?
        .ok_or(AuthFailure::Invalid)?;
    check_key(&holder, now)?;
    if holder
        .last_used_at
        .is_none_or(|last| now - last >= LAST_USED_EVERY)
    {
        // Off the request's path: the answer does not wait for the write,
        // and a failed write only loses a timestamp. The first use is
        // recorded (`api_key.first_used`) with where it came from.
        let (store, id, user_id) = (store.clone(), holder.key_id, holder.user.id);
        let first = holder.last_used_at.is_none().then(|| source.clone());
        tokio::spawn(async move {
            let noted = match first {
                Some(source) => {
                    let at = chrono::Utc::now();
                    store.first_use_of_api_key(user_id, id, &source, at).await
                }
                None => store.touch_api_key(id, now).await,
            };
            if let Err(err) = noted {
                tracing::warn!(error = %err, "could not note an API key's use");
            }
        });
    }
    Ok(Requester {
        user: holder.user,
        via: Via::ApiKey(holder.key_id),
    })
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
            "Token eyJhbGciOiJIUzI1NiJ9.e30.x",
            "Basic ag_abcdefgh_x",
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
        // Not printable ASCII: no JWT and no key is.
        for header in [
            "Bearer abc\u{a0}def",
            "Bearer abcé",
            "Bearer a\u{2003}b",
            "Bearer a\tb",
        ] {
            assert_eq!(
                Credentials::from_header(Some(header.as_bytes())),
                Credentials::Malformed,
                "{header:?}"
            );
        }
    }

    #[test]
    fn keys_come_with_either_scheme() {
        for header in ["Token ag_x", "token ag_x", "Bearer ag_x", " BEARER  ag_x "] {
            assert_eq!(
                Credentials::from_header(Some(header.as_bytes())),
                Credentials::ApiKey("ag_x".into()),
                "{header:?}"
            );
        }
    }

    #[test]
    fn absent_is_missing() {
        assert_eq!(Credentials::from_header(None), Credentials::Missing);
    }
}

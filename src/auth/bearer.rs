//! From the `Authorization` header to a `Requester`, once per operation.

use std::net::IpAddr;
use std::sync::Arc;

use async_graphql::{Context, Guard};
use entity::user;
use tokio::sync::Mutex;

use super::jwt::{Claims, TokenType};
use crate::error::{AppError, AuthFailure};
use crate::state::AppState;

/// What the `Authorization` header said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    Missing,
    /// Present, but not `Bearer <token>`.
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

type Outcome = Result<Arc<Requester>, AuthFailure>;

/// Per-operation data the HTTP handler puts into the GraphQL context.
pub struct RequestMeta {
    pub credentials: Credentials,
    pub client_ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    /// The authentication result, computed on first use.
    outcome: Mutex<Option<Outcome>>,
}

impl RequestMeta {
    pub fn new(
        credentials: Credentials,
        client_ip: Option<IpAddr>,
        user_agent: Option<String>,
    ) -> Self {
        Self {
            credentials,
            client_ip,
            user_agent,
            outcome: Mutex::new(None),
        }
    }
}

/// What resolvers ask of their context.
pub(crate) trait ContextExt {
    fn state(&self) -> &AppState;
    fn meta(&self) -> &RequestMeta;
    /// The caller, authenticated on first use (token decoded, blacklist and
    /// user row read in one round trip), then remembered for the operation.
    async fn requester(&self) -> Result<Arc<Requester>, AppError>;
    /// Forgets the remembered caller: after a revocation the next field checks again.
    async fn forget_requester(&self);
}

impl ContextExt for Context<'_> {
    fn state(&self) -> &AppState {
        self.data_unchecked::<std::sync::Arc<AppState>>()
    }

    fn meta(&self) -> &RequestMeta {
        self.data_unchecked::<RequestMeta>()
    }

    async fn requester(&self) -> Result<Arc<Requester>, AppError> {
        let meta = self.meta();
        let mut slot = meta.outcome.lock().await;
        if let Some(outcome) = slot.as_ref() {
            return outcome.clone().map_err(AppError::from);
        }
        let outcome = match authenticate(self.state(), &meta.credentials).await {
            Ok(requester) => Ok(Arc::new(requester)),
            Err(AppError::Unauthenticated(reason)) => Err(reason),
            // Not remembered: a database hiccup should not stick to the operation.
            Err(other) => return Err(other),
        };
        *slot = Some(outcome.clone());
        outcome.map_err(AppError::from)
    }

    async fn forget_requester(&self) {
        *self.meta().outcome.lock().await = None;
    }
}

pub async fn authenticate(
    state: &AppState,
    credentials: &Credentials,
) -> Result<Requester, AppError> {
    let token = match credentials {
        Credentials::Missing => return Err(AuthFailure::Missing.into()),
        Credentials::Malformed => return Err(AuthFailure::Invalid.into()),
        Credentials::Bearer(token) => token,
    };
    let claims = state.tokens.decode(token, TokenType::Access)?;
    match state
        .store
        .user_unless_revoked(claims.sub, claims.sid, claims.jti)
        .await?
    {
        Some(user) => Ok(Requester { user, claims }),
        // Rare path: tell a revoked token from a user that is gone.
        None if state.store.is_revoked(claims.sid, claims.jti).await? => {
            Err(AuthFailure::Revoked.into())
        }
        None => Err(AuthFailure::Invalid.into()),
    }
}

/// Guard for fields that need an access token.
pub struct Authenticated;

impl Guard for Authenticated {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        ctx.requester().await.map(|_| ()).map_err(Into::into)
    }
}

/// Guard for fields only an ADMIN may use: `FORBIDDEN` for anyone else. The
/// role comes from the user row read with the token check, so a role change
/// takes effect on the next request.
pub struct AdminOnly;

impl Guard for AdminOnly {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        let requester = ctx.requester().await?;
        if requester.user.role == user::Role::Admin {
            Ok(())
        } else {
            Err(AppError::Forbidden.into())
        }
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

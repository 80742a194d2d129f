//! What resolvers ask of their context: the shared state, the request's
//! meta, the authenticated caller (once per operation), the rate limit and
//! the clock; and the guards protected fields carry.

use std::net::IpAddr;
use std::sync::Arc;

use async_graphql::{Context, Guard};
use entity::user;
use tokio::sync::Mutex;
use uuid::Uuid;

use super::cookie;
use super::types::AuthPayload;
use crate::auth::AuthFailure;
use crate::auth::bearer::{AuthError, Credentials, Requester, authenticate};
use crate::auth::jwt::{Subject, TokenPair, TokenType};
use crate::error::AppError;
use crate::state::AppState;
use crate::store::{Attempt, throttle_key};

type Outcome = Result<Arc<Requester>, AuthFailure>;

/// Per-operation data the HTTP handler puts into the GraphQL context.
pub struct RequestMeta {
    pub credentials: Credentials,
    pub client_ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    /// The refresh cookie's token, in cookie mode: `refreshToken` and
    /// `logout` take it when their argument is null. It authenticates
    /// nothing else, and a request an API key authenticates has none: a
    /// key's caller is a program, never the browser the cookie belongs to.
    pub refresh_cookie: Option<String>,
    /// The authentication result, computed on first use.
    outcome: Mutex<Option<Outcome>>,
}

impl RequestMeta {
    pub fn new(
        credentials: Credentials,
        client_ip: Option<IpAddr>,
        user_agent: Option<String>,
        refresh_cookie: Option<String>,
    ) -> Self {
        let refresh_cookie = match credentials {
            Credentials::ApiKey(_) => None,
            _ => refresh_cookie,
        };
        Self {
            credentials,
            client_ip,
            user_agent,
            refresh_cookie,
            outcome: Mutex::new(None),
        }
    }
}

pub(crate) trait ContextExt {
    fn state(&self) -> &AppState;
    fn meta(&self) -> &RequestMeta;
    /// The caller, authenticated on first use (token decoded, blacklist and
    /// user row read in one round trip), then remembered for the operation.
    /// Under `EMAIL_VERIFICATION=required`, `EMAIL_NOT_VERIFIED` for an
    /// unverified account: what every field but the four
    /// [`SignedIn`] ones asks.
    async fn requester(&self) -> Result<Arc<Requester>, AppError>;
    /// The caller, verified or not (see [`SignedIn`]).
    async fn signed_in(&self) -> Result<Arc<Requester>, AppError>;
    /// Forgets the remembered caller: after a revocation the next field checks again.
    async fn forget_requester(&self);
    /// Counts one password-checking attempt against the caller's IP.
    fn rate_limit(&self) -> Result<(), AppError>;
    /// Counts a password check against the account `identifier` names (as
    /// typed), before the check: `TOO_MANY_REQUESTS` past
    /// `LOGIN_FAILURES_PER_HOUR`. Returns the key to pass to
    /// [`Self::check_passed`] when the password proves right.
    async fn throttle(&self, identifier: &str) -> Result<Option<String>, AppError>;
    /// The check counted under `key` passed: it was no failure.
    async fn check_passed(&self, key: Option<String>) -> Result<(), AppError>;
    /// The payload handing out `pair`: in cookie mode the refresh token goes
    /// into the cookie (set on the response) and not into the body.
    fn hand_out(&self, pair: TokenPair, user: user::Profile) -> AuthPayload;
    /// Starts a session of `user`, whose password (and second factor)
    /// checked out, and hands out its tokens: `None` when the password
    /// changed since `user` was read (then the one checked is no longer
    /// the user's, and no session starts).
    async fn sign_in(
        &self,
        user: user::Model,
        user_agent: Option<String>,
    ) -> Result<Option<AuthPayload>, AppError>;
    /// In cookie mode, removes the refresh cookie with the response.
    fn clear_refresh_cookie(&self);
    /// Is `sid` the session of this request: its access token's, or (cookie
    /// mode) its refresh cookie's? Ending it clears the cookie.
    fn is_current_session(&self, sid: Uuid) -> bool;
}

impl ContextExt for Context<'_> {
    fn state(&self) -> &AppState {
        self.data_unchecked::<Arc<AppState>>()
    }

    fn meta(&self) -> &RequestMeta {
        self.data_unchecked::<RequestMeta>()
    }

    async fn requester(&self) -> Result<Arc<Requester>, AppError> {
        let requester = self.signed_in().await?;
        if self.state().verified_only && !requester.user.email_verified {
            return Err(AppError::EmailNotVerified);
        }
        Ok(requester)
    }

    async fn signed_in(&self) -> Result<Arc<Requester>, AppError> {
        let meta = self.meta();
        let mut slot = meta.outcome.lock().await;
        let refused = |reason: AuthFailure| match meta.credentials {
            Credentials::ApiKey(_) => AppError::KeyRefused(reason),
            _ => AppError::Unauthenticated(reason),
        };
        if let Some(outcome) = slot.as_ref() {
            return outcome.clone().map_err(refused);
        }
        let state = self.state();
        let now = state.clock.now().timestamp();
        let outcome = match authenticate(&state.tokens, &state.store, &meta.credentials, now).await
        {
            Ok(requester) => Ok(Arc::new(requester)),
            Err(AuthError::Refused(reason)) => Err(reason),
            // Not remembered: a database hiccup should not stick to the operation.
            Err(other) => return Err(other.into()),
        };
        *slot = Some(outcome.clone());
        outcome.map_err(refused)
    }

    async fn forget_requester(&self) {
        *self.meta().outcome.lock().await = None;
    }

    fn rate_limit(&self) -> Result<(), AppError> {
        let state = self.state();
        state
            .limiter
            .check(self.meta().client_ip)
            .map_err(|retry_after| {
                state.metrics.rate_limited.inc();
                AppError::TooManyRequests { retry_after }
            })
    }

    async fn throttle(&self, identifier: &str) -> Result<Option<String>, AppError> {
        let state = self.state();
        let limit = state.login_failures_per_hour;
        if limit == 0 {
            return Ok(None);
        }
        let key = throttle_key(identifier);
        let now = state.clock.now().timestamp();
        match state.store.begin_attempt(&key, now, limit).await? {
            Attempt::Allowed => Ok(Some(key)),
            Attempt::Refused { retry_after } => {
                state.metrics.rate_limited.inc();
                Err(AppError::TooManyRequests { retry_after })
            }
        }
    }

    async fn check_passed(&self, key: Option<String>) -> Result<(), AppError> {
        match key {
            Some(key) => Ok(self.state().store.attempt_succeeded(&key).await?),
            None => Ok(()),
        }
    }

    fn hand_out(&self, pair: TokenPair, user: user::Profile) -> AuthPayload {
        let in_cookie = self.state().refresh_cookie;
        if in_cookie {
            // Insert, not append: of several fields of one operation, the
            // last one's cookie is the one that holds.
            let value = cookie::set(pair.refresh_token.clone(), pair.refresh_expires_in);
            self.insert_http_header("set-cookie", value);
        }
        AuthPayload::new(pair, user, in_cookie)
    }

    async fn sign_in(
        &self,
        user: user::Model,
        user_agent: Option<String>,
    ) -> Result<Option<AuthPayload>, AppError> {
        let state = self.state();
        let (session, pair) = state
            .tokens
            .new_session(Subject::from(&user), user_agent, state.clock.now())
            .map_err(AppError::internal)?;
        if !state
            .store
            .start_session(user.id, &user.password_hash, session)
            .await?
        {
            return Ok(None);
        }
        state.metrics.logins.with_label_values(&["ok"]).inc();
        Ok(Some(self.hand_out(pair, user.into())))
    }

    fn clear_refresh_cookie(&self) {
        if self.state().refresh_cookie {
            self.insert_http_header("set-cookie", cookie::clear());
        }
    }

    fn is_current_session(&self, sid: Uuid) -> bool {
        let (tokens, meta) = (&self.state().tokens, self.meta());
        let access = match &meta.credentials {
            Credentials::Bearer(token) => tokens.decode(token, TokenType::Access).ok(),
            Credentials::Missing | Credentials::Malformed | Credentials::ApiKey(_) => None,
        };
        let cookie = meta
            .refresh_cookie
            .as_deref()
            .and_then(|token| tokens.decode_ignoring_expiry(token).ok());
        access
            .into_iter()
            .chain(cookie)
            .any(|claims| claims.sid == sid)
    }
}

/// Guard for fields that need an access token (of a verified account,
/// under `EMAIL_VERIFICATION=required`).
pub struct Authenticated;

impl Guard for Authenticated {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        ctx.requester().await.map(|_| ()).map_err(Into::into)
    }
}

/// Guard for the fields an access token opens whether or not its account's
/// address is verified: `me`, `requestEmailVerification`, `logoutAll`
/// (`logout` takes a refresh token, and no guard).
pub struct SignedIn;

impl Guard for SignedIn {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        ctx.signed_in().await.map(|_| ()).map_err(Into::into)
    }
}

/// Guard for credential and role management, which an API key may not
/// touch (`FORBIDDEN`): a leaked key can't lock its owner out or mint more.
/// Put after the guard that authenticates.
pub struct NoApiKey;

/// What an API key is told where it may not go.
pub const NOT_WITH_API_KEY: &str = "An API key can't do this: use the access token of a login";

impl Guard for NoApiKey {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        match ctx.signed_in().await?.api_key() {
            Some(_) => Err(AppError::ForbiddenWith(NOT_WITH_API_KEY).into()),
            None => Ok(()),
        }
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

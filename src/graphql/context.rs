//! What resolvers ask of their context: the shared state, the request's
//! meta, the authenticated caller (once per operation), the rate limit and
//! the clock; and the guards protected fields carry.

use std::sync::Arc;

use async_graphql::{Context, Guard};
use entity::user;
use tokio::sync::Mutex;
use uuid::Uuid;

use super::cookie;
use crate::auth::AuthFailure;
use crate::auth::bearer::{AuthError, Credentials, Requester, authenticate};
use crate::auth::jwt::TokenType;
use crate::error::AppError;
use crate::events::{Actor, Event, Kind, LoginRefusal, Method, Source};
use crate::state::AppState;
use crate::store::{Attempt, throttle_key};

type Outcome = Result<Arc<Requester>, AuthFailure>;

/// Per-operation data the HTTP handler puts into the GraphQL context.
pub struct RequestMeta {
    pub credentials: Credentials,
    /// The client IP, user agent and request id: where events say it came
    /// from. Made once per HTTP request, shared by its operations.
    pub source: Arc<Source>,
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
        source: Arc<Source>,
        refresh_cookie: Option<String>,
    ) -> Self {
        let refresh_cookie = match credentials {
            Credentials::ApiKey(_) => None,
            _ => refresh_cookie,
        };
        Self {
            credentials,
            source,
            refresh_cookie,
            outcome: Mutex::new(None),
        }
    }
}

impl RequestMeta {
    /// The caller, if this operation authenticated one (nothing is checked here).
    pub(super) async fn requester_seen(&self) -> Option<Arc<Requester>> {
        self.outcome.lock().await.as_ref()?.as_ref().ok().cloned()
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
    /// Who acts in a request of `requester`: the account, or its API key.
    fn actor(&self, requester: &Requester) -> Actor;
    /// Records `events`, which change nothing else (refusals), from this
    /// request, now.
    async fn record(&self, events: &[Event]) -> Result<(), AppError>;
    /// Records a refused sign-in of `user_id` (`None`: no such account).
    async fn sign_in_refused(
        &self,
        method: Method,
        reason: LoginRefusal,
        user_id: Option<uuid::Uuid>,
    ) -> Result<(), AppError>;
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
        let outcome = match authenticate(
            &state.tokens,
            &state.store,
            &meta.credentials,
            now,
            &meta.source,
        )
        .await
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
            .check(self.meta().source.ip)
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
                state
                    .store
                    .note_throttled(&key, identifier, &self.meta().source, state.clock.now())
                    .await?;
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

    fn actor(&self, requester: &Requester) -> Actor {
        match requester.api_key() {
            Some(key_id) => Actor::api_key(key_id),
            None => Actor::user(requester.user.id),
        }
    }

    async fn record(&self, events: &[Event]) -> Result<(), AppError> {
        let state = self.state();
        Ok(state
            .store
            .record(&self.meta().source, state.clock.now(), events)
            .await?)
    }

    async fn sign_in_refused(
        &self,
        method: Method,
        reason: LoginRefusal,
        user_id: Option<uuid::Uuid>,
    ) -> Result<(), AppError> {
        let refused = Kind::LoginFailed { method, reason };
        self.record(&[Event::new(refused, user_id, Actor::ANONYMOUS)])
            .await
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

//! refreshToken, logout and verifyToken, and how a session's tokens are issued.

use async_graphql::{Context, ID, Object};
use chrono::{TimeZone, Utc};
use entity::user;
use uuid::Uuid;

use super::types::{AuthPayload, DateTime, TokenInfo, User};
use crate::auth::guard::ContextExt;
use crate::auth::jwt::{Claims, TokenType};
use crate::error::{AppError, AuthFailure};
use crate::store::{NewSession, Rotation};

/// The current time at the precision every backend stores (milliseconds).
pub(super) fn now() -> chrono::DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(3)
}

/// Counts one signup/login/refreshToken attempt against the caller's IP.
pub(super) fn rate_limit(ctx: &Context<'_>) -> Result<(), AppError> {
    let state = ctx.state();
    state
        .limiter
        .check(ctx.meta().client_ip)
        .map_err(|retry_after| {
            state.metrics.rate_limited.inc();
            AppError::TooManyRequests { retry_after }
        })
}

/// A token pair not yet handed out: the user is attached once the store agreed.
pub(super) struct IssuedTokens {
    access_token: String,
    refresh_token: String,
    expires_in: i32,
}

impl IssuedTokens {
    pub(super) fn with_user(self, user: user::Profile) -> AuthPayload {
        AuthPayload {
            access_token: self.access_token,
            refresh_token: self.refresh_token,
            token_type: "Bearer",
            expires_in: self.expires_in,
            user: User(user),
        }
    }
}

/// Issues an access and a refresh token of session `sid`; returns them and the
/// Unix time at which the later of the two expires.
fn issue(
    ctx: &Context<'_>,
    user_id: Uuid,
    sid: Uuid,
    now: i64,
) -> Result<(IssuedTokens, i64), AppError> {
    let tokens = &ctx.state().tokens;
    let (access_token, access) = tokens
        .issue(user_id, sid, TokenType::Access, now)
        .map_err(AppError::internal)?;
    let (refresh_token, refresh) = tokens
        .issue(user_id, sid, TokenType::Refresh, now)
        .map_err(AppError::internal)?;
    let issued = IssuedTokens {
        access_token,
        refresh_token,
        expires_in: i32::try_from(tokens.access_ttl).unwrap_or(i32::MAX),
    };
    Ok((issued, access.exp.max(refresh.exp)))
}

/// The row and tokens of a new session for `user_id`, started at `now`.
pub(super) fn new_session(
    ctx: &Context<'_>,
    user_id: Uuid,
    now: chrono::DateTime<Utc>,
) -> Result<(NewSession, IssuedTokens), AppError> {
    let sid = Uuid::new_v4();
    let (issued, expires_at) = issue(ctx, user_id, sid, now.timestamp())?;
    let session = NewSession {
        id: sid,
        user_agent: ctx.meta().user_agent.clone(),
        now,
        expires_at,
    };
    Ok((session, issued))
}

#[derive(Default)]
pub struct TokenQuery;

#[Object]
impl TokenQuery {
    /// Checks any token of ours, access or refresh. Public, and never an error
    /// for a bad token: the answer says why it is not valid.
    async fn verify_token(&self, ctx: &Context<'_>, token: String) -> Result<TokenInfo, AppError> {
        let state = ctx.state();
        let (claims, reason) = match state.tokens.decode_any(&token) {
            Ok(claims) => (claims, None),
            Err(AuthFailure::Expired) => match state.tokens.decode_ignoring_expiry(&token) {
                Ok(claims) => (claims, Some(AuthFailure::Expired)),
                Err(_) => return Ok(invalid()),
            },
            Err(_) => return Ok(invalid()),
        };
        let reason = match reason {
            Some(reason) => Some(reason),
            None if state.store.is_revoked(claims.sid, claims.jti).await? => {
                Some(AuthFailure::Revoked)
            }
            None => None,
        };
        Ok(describe(&claims, reason))
    }
}

fn invalid() -> TokenInfo {
    TokenInfo {
        valid: false,
        reason: Some(AuthFailure::Invalid.as_str()),
        ..TokenInfo::default()
    }
}

fn describe(claims: &Claims, reason: Option<AuthFailure>) -> TokenInfo {
    TokenInfo {
        valid: reason.is_none(),
        reason: reason.map(AuthFailure::as_str),
        token_type: Some(claims.typ.as_str()),
        user_id: Some(ID(claims.sub.to_string())),
        expires_at: Utc.timestamp_opt(claims.exp, 0).single().map(DateTime),
    }
}

#[derive(Default)]
pub struct TokenMutation;

#[Object]
impl TokenMutation {
    /// Trades a refresh token for a new access token and a new refresh token.
    /// The one presented is revoked at once; of concurrent calls with one token,
    /// exactly one succeeds. Presenting a token that was already used is taken
    /// as theft: it fails with `revoked` and ends its whole session.
    async fn refresh_token(
        &self,
        ctx: &Context<'_>,
        refresh_token: String,
    ) -> Result<AuthPayload, AppError> {
        rate_limit(ctx)?;
        let state = ctx.state();
        let old = state.tokens.decode(&refresh_token, TokenType::Refresh)?;
        let now = now();
        let (issued, expires_at) = issue(ctx, old.sub, old.sid, now.timestamp())?;
        match state.store.rotate(&old, now, expires_at).await? {
            Rotation::Rotated(user) => {
                state.metrics.refreshes.inc();
                Ok(issued.with_user(user))
            }
            Rotation::Reused => {
                state.metrics.reuse_detections.inc();
                state.metrics.revocations.inc();
                Err(AuthFailure::Revoked.into())
            }
            Rotation::Revoked => Err(AuthFailure::Revoked.into()),
            Rotation::UnknownUser => Err(AuthFailure::Invalid.into()),
        }
    }

    /// Ends the session of this refresh token: every token of it, access or
    /// refresh, is refused from now on. Other sessions of the user go on.
    /// True also when the session had already ended.
    async fn logout(&self, ctx: &Context<'_>, refresh_token: String) -> Result<bool, AppError> {
        let state = ctx.state();
        let claims = state.tokens.decode(&refresh_token, TokenType::Refresh)?;
        state.store.end_session(claims.sid, claims.exp).await?;
        state.metrics.revocations.inc();
        ctx.forget_requester().await;
        Ok(true)
    }
}

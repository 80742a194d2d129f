//! refreshToken, logout and verifyToken.

use async_graphql::{Context, ID, Object};

use super::context::ContextExt;
use super::sign_in::SignInExt;
use super::types::{AuthPayload, DateTime, TokenInfo};
use crate::auth::bearer::check_key;
use crate::auth::jwt::{Claims, Subject, TokenType};
use crate::auth::{AuthFailure, api_key};
use crate::error::AppError;
use crate::events::{Actor, EndReason};
use crate::store::{Rotation, RotationRules};

#[derive(Default)]
pub struct TokenQuery;

#[Object]
impl TokenQuery {
    /// Checks any token of ours, access or refresh. Public, and never an error
    /// for a bad token: the answer says why it is not valid.
    async fn verify_token(&self, ctx: &Context<'_>, token: String) -> Result<TokenInfo, AppError> {
        let state = ctx.state();
        if api_key::is_key_scheme(&token) {
            return describe_key(ctx, &token).await;
        }
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

/// `verifyToken` of an API key: `tokenType: "api_key"`.
async fn describe_key(ctx: &Context<'_>, key: &str) -> Result<TokenInfo, AppError> {
    if !api_key::looks_like_key(key) {
        return Ok(invalid());
    }
    let state = ctx.state();
    let Some(holder) = state.store.key_holder(&api_key::hash(key)).await? else {
        return Ok(invalid());
    };
    let reason = check_key(&holder, state.clock.now().timestamp()).err();
    Ok(TokenInfo {
        valid: reason.is_none(),
        reason: reason.map(AuthFailure::as_str),
        token_type: Some("api_key"),
        user_id: Some(ID(holder.user.id.to_string())),
        expires_at: DateTime::from_unix(holder.expires_at),
    })
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
        expires_at: DateTime::from_unix(claims.exp),
    }
}

/// In cookie mode, a refresh token rotated less than this many seconds ago
/// is `rotated` rather than reuse: tabs sharing one cookie refresh at once,
/// and the loser's retry carries the newer cookie.
pub const ROTATED_GRACE: i64 = 10;

/// The refresh token an operation acts on: its argument, else the cookie.
fn presented(ctx: &Context<'_>, argument: Option<String>) -> Option<(String, bool)> {
    match argument {
        Some(token) => Some((token, false)),
        None => ctx.meta().refresh_cookie.clone().map(|token| (token, true)),
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
    ///
    /// In cookie mode the argument may be left out: the token comes from the
    /// cookie, the new one goes back into it, and a token another tab rotated
    /// less than 10 seconds ago fails with `rotated` and ends nothing.
    ///
    /// Under `EMAIL_VERIFICATION=required`, an unverified account's token is
    /// `EMAIL_NOT_VERIFIED` and is not rotated: it works once the address is.
    async fn refresh_token(
        &self,
        ctx: &Context<'_>,
        refresh_token: Option<String>,
    ) -> Result<AuthPayload, AppError> {
        ctx.rate_limit()?;
        let Some((token, from_cookie)) = presented(ctx, refresh_token) else {
            return Err(AuthFailure::MissingRefresh.into());
        };
        let result = rotate(ctx, &token, if from_cookie { ROTATED_GRACE } else { 0 }).await;
        // A cookie that failed is of no more use; one another tab rotated
        // has been replaced already, and clearing it would log that tab out.
        if from_cookie
            && let Err(AppError::Unauthenticated(reason)) = &result
            && *reason != AuthFailure::Rotated
        {
            ctx.clear_refresh_cookie();
        }
        result
    }

    /// Ends the session of this refresh token: every token of it, access or
    /// refresh, is refused from now on. Other sessions of the user go on.
    /// True also when the session had already ended. In cookie mode the
    /// argument may be left out (the cookie's session ends, and the cookie is
    /// cleared); with neither, true.
    async fn logout(
        &self,
        ctx: &Context<'_>,
        refresh_token: Option<String>,
    ) -> Result<bool, AppError> {
        let Some((token, from_cookie)) = presented(ctx, refresh_token) else {
            return Ok(true);
        };
        let state = ctx.state();
        let claims = match state.tokens.decode(&token, TokenType::Refresh) {
            Ok(claims) => claims,
            Err(reason) => {
                if from_cookie {
                    ctx.clear_refresh_cookie();
                }
                return Err(reason.into());
            }
        };
        let by = (&*ctx.meta().source, Actor::user(claims.sub));
        state
            .store
            .end_session(
                claims.sub,
                claims.sid,
                claims.exp,
                EndReason::Logout,
                by,
                state.clock.now(),
            )
            .await?;
        state.metrics.revocations.inc();
        if from_cookie || ctx.is_current_session(claims.sid) {
            ctx.clear_refresh_cookie();
        }
        ctx.forget_requester().await;
        Ok(true)
    }
}

/// Rotates `token` (see `refreshToken`), with `grace` seconds for a token
/// rotated moments ago.
async fn rotate(ctx: &Context<'_>, token: &str, grace: i64) -> Result<AuthPayload, AppError> {
    let state = ctx.state();
    let old = state.tokens.decode(token, TokenType::Refresh)?;
    let now = state.clock.now();
    let expires_at = state.tokens.session_expiry(now.timestamp());
    match state
        .store
        .rotate(
            &old.token(),
            now,
            expires_at,
            RotationRules {
                grace,
                verified_only: state.verified_only,
            },
            &ctx.meta().source,
        )
        .await?
    {
        Rotation::Rotated(user) => {
            // Signed once the store agreed, with the role it just read.
            let pair = state
                .tokens
                .pair(Subject::from(&user), old.sid, now.timestamp())
                .map_err(AppError::internal)?;
            state.metrics.refreshes.inc();
            Ok(ctx.hand_out(pair, user))
        }
        Rotation::Reused => {
            state.metrics.reuse_detections.inc();
            state.metrics.revocations.inc();
            Err(AuthFailure::Revoked.into())
        }
        Rotation::Superseded => Err(AuthFailure::Rotated.into()),
        Rotation::Revoked => Err(AuthFailure::Revoked.into()),
        Rotation::UnknownUser => Err(AuthFailure::Invalid.into()),
        Rotation::Unverified => Err(AppError::EmailNotVerified),
    }
}

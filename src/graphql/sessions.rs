//! sessions, changePassword, logoutAll and revokeSession: the caller's own account.

use async_graphql::{Context, ID, Object};
use entity::session;
use uuid::Uuid;

use super::context::{Authenticated, ContextExt, NOT_WITH_API_KEY, NoApiKey, SignedIn};
use super::types::DateTime;
use crate::auth::AuthFailure;
use crate::domain::{Password, local_part};
use crate::error::AppError;
use crate::events::{EndReason, Event, Kind};

/// A login and the refreshes that followed it.
pub struct Session {
    model: session::Model,
    current: bool,
}

#[Object]
impl Session {
    /// The session id: the `sid` claim of its tokens.
    async fn id(&self) -> ID {
        ID(self.model.id.to_string())
    }

    /// When it started (the login or signup).
    async fn created_at(&self) -> DateTime {
        DateTime(self.model.created_at)
    }

    /// Its last refresh, or its start if it was never refreshed.
    async fn last_used_at(&self) -> DateTime {
        DateTime(self.model.last_used_at)
    }

    /// When its newest refresh token expires.
    async fn expires_at(&self) -> DateTime {
        DateTime::from_unix_or_epoch(self.model.expires_at)
    }

    /// The `User-Agent` of the login request.
    async fn user_agent(&self) -> Option<&str> {
        self.model.user_agent.as_deref()
    }

    /// True for the session of this request's access token.
    async fn current(&self) -> bool {
        self.current
    }
}

#[derive(Default)]
pub struct SessionQuery;

#[Object]
impl SessionQuery {
    /// The caller's live sessions (not ended, not expired), newest first.
    #[graphql(guard = "Authenticated")]
    async fn sessions(&self, ctx: &Context<'_>) -> Result<Vec<Session>, AppError> {
        let requester = ctx.requester().await?;
        let sessions = ctx
            .state()
            .store
            .live_sessions(requester.user.id, ctx.state().clock.now().timestamp())
            .await?;
        Ok(sessions
            .into_iter()
            .map(|model| Session {
                current: Some(model.id) == requester.sid(),
                model,
            })
            .collect())
    }
}

#[derive(Default)]
pub struct SessionMutation;

#[Object]
impl SessionMutation {
    /// Sets a new password. Every other session of the caller ends at once;
    /// this one goes on. `INVALID_CREDENTIALS` when `currentPassword` is wrong,
    /// `BAD_USER_INPUT` (`field: "newPassword"`) when the new one breaks the rule.
    #[graphql(guard = "Authenticated.and(NoApiKey)")]
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        current_password: String,
        new_password: String,
    ) -> Result<bool, AppError> {
        // A password check: counted like a login, so a stolen access token
        // can't be used to guess the password.
        ctx.rate_limit()?;
        let requester = ctx.requester().await?;
        let user = &requester.user;
        let new_password = Password::parse_new(
            &new_password,
            "newPassword",
            &[&user.username, local_part(&user.email)],
        )?;
        // The account's throttle, under its username, as a login's.
        let attempt = ctx.throttle(&requester.user.username).await?;
        let state = ctx.state();
        let stored = state
            .store
            .password_hash(requester.user.id)
            .await?
            .ok_or(AuthFailure::Invalid)?;
        let verified = state
            .hasher
            .verify(current_password, Some(stored.clone()))
            .await
            .map_err(AppError::internal)?;
        if !verified {
            let refused = Kind::ReauthFailed {
                operation: "changePassword".into(),
            };
            ctx.record(&[Event::by_user(refused, user.id).in_session(requester.sid())])
                .await?;
            return Err(AppError::WrongPassword);
        }
        ctx.check_passed(attempt).await?;
        let hash = state
            .hasher
            .hash(new_password.expose().to_owned())
            .await
            .map_err(AppError::internal)?;
        // None: another change replaced the hash meanwhile, so the current
        // password given is no longer the current one.
        let ended = state
            .store
            .change_password(
                requester.user.id,
                &stored,
                hash,
                requester
                    .sid()
                    .ok_or(AppError::ForbiddenWith(NOT_WITH_API_KEY))?,
                &ctx.meta().source,
                ctx.state().clock.now(),
            )
            .await?
            .ok_or(AppError::WrongPassword)?;
        state.metrics.revocations.inc_by(ended);
        Ok(true)
    }

    /// Ends every session of the caller, this one included. Returns how many ended.
    #[graphql(guard = "SignedIn.and(NoApiKey)")]
    async fn logout_all(&self, ctx: &Context<'_>) -> Result<i32, AppError> {
        let requester = ctx.signed_in().await?;
        let ended = ctx
            .state()
            .store
            .end_sessions_of(
                requester.user.id,
                None,
                EndReason::LogoutAll,
                &ctx.meta().source,
                ctx.state().clock.now(),
            )
            .await?;
        ctx.state().metrics.revocations.inc_by(ended);
        ctx.clear_refresh_cookie();
        ctx.forget_requester().await;
        Ok(i32::try_from(ended).unwrap_or(i32::MAX))
    }

    /// Ends one of the caller's live sessions (see `sessions`). Any other id,
    /// another user's, unknown or already ended, is `FORBIDDEN`, all alike.
    #[graphql(guard = "Authenticated.and(NoApiKey)")]
    async fn revoke_session(&self, ctx: &Context<'_>, id: ID) -> Result<bool, AppError> {
        let requester = ctx.requester().await?;
        let store = &ctx.state().store;
        let at = ctx.state().clock.now();
        let now = at.timestamp();
        let Ok(sid) = Uuid::parse_str(&id) else {
            return Err(AppError::Forbidden);
        };
        if !store.owns_live_session(requester.user.id, sid, now).await? {
            return Err(AppError::Forbidden);
        }
        let by = (&*ctx.meta().source, ctx.actor(&requester));
        store
            .end_session(
                requester.user.id,
                sid,
                now,
                EndReason::SessionRevoked,
                by,
                at,
            )
            .await?;
        ctx.state().metrics.revocations.inc();
        if ctx.is_current_session(sid) {
            ctx.clear_refresh_cookie();
        }
        if Some(sid) == requester.sid() {
            ctx.forget_requester().await;
        }
        Ok(true)
    }
}

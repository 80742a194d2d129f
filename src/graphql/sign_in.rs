//! Handing out tokens: the payload of a sign-in (the refresh token in the
//! cookie, in cookie mode) and a session started for a user whose
//! factors checked out. Apart from `context` so that the context knows no
//! output type (`AuthPayload` holds a `User`, whose fields ask the context).

use async_graphql::Context;
use entity::user;

use super::context::ContextExt;
use super::cookie;
use super::types::AuthPayload;
use crate::auth::jwt::{Subject, TokenPair};
use crate::error::AppError;
use crate::events::Method;

pub(crate) trait SignInExt {
    /// The payload handing out `pair`: in cookie mode the refresh token goes
    /// into the cookie (set on the response) and not into the body.
    fn hand_out(&self, pair: TokenPair, user: user::Profile) -> AuthPayload;
    /// Starts a session of `user`, whose password (and second factor)
    /// checked out by `method`, and hands out its tokens, recording its
    /// `login.succeeded`: `None` when the password changed since `user`
    /// was read (then the one checked is no longer the user's, and no
    /// session starts).
    async fn sign_in(
        &self,
        user: user::Model,
        user_agent: Option<String>,
        method: Method,
    ) -> Result<Option<AuthPayload>, AppError>;
}

impl SignInExt for Context<'_> {
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
        method: Method,
    ) -> Result<Option<AuthPayload>, AppError> {
        let state = self.state();
        let (session, pair) = state
            .tokens
            .new_session(Subject::from(&user), user_agent, state.clock.now())
            .map_err(AppError::internal)?;
        if !state
            .store
            .start_session(
                user.id,
                &user.password_hash,
                session,
                method,
                &self.meta().source,
            )
            .await?
        {
            return Ok(None);
        }
        state.metrics.logins.with_label_values(&["ok"]).inc();
        Ok(Some(self.hand_out(pair, user.into())))
    }
}

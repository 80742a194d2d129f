//! The one fresh-proof rule for sensitive fields (API.md, "Fresh proof for
//! sensitive fields"): every field that creates a lasting credential, shows
//! a secret or changes how the account signs in asks it here, and nowhere
//! else decides it.

use async_graphql::Context;

use super::context::{ContextExt, NOT_WITH_API_KEY};
use super::mfa::{code_again, password_again};
use crate::auth::bearer::Requester;
use crate::error::AppError;

/// How the caller proved it is the account's owner just now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fresh {
    /// The password again (and with MFA on, a code: it is used up).
    Password,
    /// A session signed in less than `REAUTH_WINDOW` ago, with every factor
    /// it required; no code was checked.
    Session,
}

/// A fresh proof of `requester`: `password` given, it must be the account's
/// and, with MFA on, `code` a TOTP or recovery code (each counted as a
/// login's, a missing code as a wrong one); `password` null, the request's
/// session must have been signed in less than `REAUTH_WINDOW` seconds ago
/// (a refresh never renews it). Otherwise `FORBIDDEN` with `reason:
/// "reauthentication_required"`. An API key never gives one.
pub(super) async fn fresh_proof(
    ctx: &Context<'_>,
    requester: &Requester,
    password: Option<String>,
    code: Option<&str>,
) -> Result<Fresh, AppError> {
    if requester.api_key().is_some() {
        return Err(AppError::ForbiddenWith(NOT_WITH_API_KEY));
    }
    let user = &requester.user;
    let state = ctx.state();
    if let Some(password) = password {
        password_again(ctx, user.id, &user.username, password).await?;
        if state.store.mfa_enabled(user.id).await? {
            match code {
                Some(code) => code_again(ctx, user.id, &user.username, code).await?,
                // Counted as a wrong code, and said so.
                None => match code_again(ctx, user.id, &user.username, "").await {
                    Err(AppError::InvalidCode) => return Err(AppError::CodeRequired),
                    other => other?,
                },
            }
        }
        return Ok(Fresh::Password);
    }
    let now = state.clock.now();
    let signed_in = match requester.sid() {
        Some(sid) if state.reauth_window > 0 => {
            state
                .store
                .signed_in_at(user.id, sid, now.timestamp())
                .await?
        }
        _ => None,
    };
    match signed_in {
        Some(at) if (now - at).num_seconds() < state.reauth_window => Ok(Fresh::Session),
        _ => Err(AppError::ReauthenticationRequired),
    }
}

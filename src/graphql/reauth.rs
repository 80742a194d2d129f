//! Proofs that the caller is the account's owner: the password again, a
//! second factor (a TOTP or recovery code, each counted as a login's), and
//! the one fresh-proof rule for sensitive fields (API.md, "Fresh proof for
//! sensitive fields"): every field that creates a lasting credential, shows
//! a secret or changes how the account signs in asks it here, and nowhere
//! else decides it.

use async_graphql::Context;
use uuid::Uuid;

use super::context::{ContextExt, NOT_WITH_API_KEY};
use crate::auth::AuthFailure;
use crate::auth::bearer::Requester;
use crate::error::AppError;
use crate::events::{Event, Kind};
use crate::store::Proof;

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
        password_again(ctx, requester, password).await?;
        // With MFA on, the code too (a missing one counts as wrong).
        code_again(ctx, requester, code).await?;
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

/// What `code` could prove for `user_id`'s enabled credential (see
/// [`Proof`]): `None` when MFA is off.
pub(super) async fn proof_of(
    ctx: &Context<'_>,
    user_id: Uuid,
    code: &str,
) -> Result<Option<Proof>, AppError> {
    let state = ctx.state();
    let Some(totp) = state
        .store
        .totp_of(user_id)
        .await?
        .filter(|totp| totp.enabled_at.is_some())
    else {
        return Ok(None);
    };
    let now = state.clock.now().timestamp();
    let steps = state
        .mfa
        .steps_of(&totp.sealed_secret, code, now)
        .map_err(AppError::internal)?;
    Ok(Some(Proof {
        steps: steps
            .into_iter()
            .filter(|step| *step > totp.last_step)
            .collect(),
        recovery_mac: state.mfa.recovery_mac(code),
    }))
}

/// Checks the caller's password again (counted in the account's throttle,
/// like a login; the caller counts the IP limit).
pub(super) async fn password_again(
    ctx: &Context<'_>,
    requester: &Requester,
    password: String,
) -> Result<(), AppError> {
    let (user_id, username) = (requester.user.id, &requester.user.username);
    let attempt = ctx.throttle(username).await?;
    let state = ctx.state();
    let stored = state
        .store
        .password_hash(user_id)
        .await?
        .ok_or(AuthFailure::Invalid)?;
    let verified = state
        .hasher
        .verify(password, Some(stored))
        .await
        .map_err(AppError::internal)?;
    if !verified {
        let refused = Kind::ReauthFailed {
            operation: ctx.field().name().to_owned(),
        };
        ctx.record(&[Event::by_user(refused, user_id).in_session(requester.sid())])
            .await?;
        return Err(AppError::WrongPassword);
    }
    ctx.check_passed(attempt).await
}

/// With MFA on, checks `code` as the caller's second factor, counted like a
/// login's password: a TOTP code only for a step later than the last one
/// accepted, a recovery code once (of concurrent requests with one code, one
/// passes); a missing code counts as a wrong one, and says so. `Ok(false)`
/// when MFA is off: nothing to check, nothing counted.
pub(super) async fn code_again(
    ctx: &Context<'_>,
    requester: &Requester,
    code: Option<&str>,
) -> Result<bool, AppError> {
    let (user_id, username) = (requester.user.id, &requester.user.username);
    let Some(proof) = proof_of(ctx, user_id, code.unwrap_or_default()).await? else {
        return Ok(false);
    };
    let attempt = ctx.throttle(username).await?;
    let state = ctx.state();
    let here = (&*ctx.meta().source, requester.sid());
    if !state
        .store
        .use_proof(user_id, &proof, here, state.clock.now())
        .await?
    {
        let refused = Kind::MfaFailed {
            operation: ctx.field().name().to_owned(),
        };
        ctx.record(&[Event::by_user(refused, user_id).in_session(requester.sid())])
            .await?;
        return Err(match code {
            Some(_) => AppError::InvalidCode,
            None => AppError::CodeRequired,
        });
    }
    ctx.check_passed(attempt).await?;
    Ok(true)
}

//! Multi-factor authentication: TOTP enrollment, recovery codes, turning it
//! off, and the second step of a login (`verifyMfa`). The codes' rules are
//! `auth::mfa`'s; each use of a code is one conditional write in the store.

use async_graphql::{Context, Object, SimpleObject};
use entity::mfa_challenge;
use uuid::Uuid;

use super::context::{Authenticated, ContextExt, NoApiKey};
use super::reauth::{Fresh, code_again, fresh_proof, proof_of};
use super::sign_in::SignInExt;
use super::types::AuthPayload;
use crate::auth::AuthFailure;
use crate::auth::bearer::Requester;
use crate::auth::mfa::{MAX_FAILURES, mfa_token_hash, new_mfa_token};
use crate::error::AppError;
use crate::events::{Actor, Event, Kind};
use crate::store::Finish;

/// A new authenticator, to scan or type in. MFA is on only once
/// `confirmTotpEnrollment` gets a first correct code.
#[derive(SimpleObject)]
pub struct TotpEnrollment {
    /// The secret, base32.
    secret: String,
    /// `otpauth://totp/{TOTP_ISSUER}:{username}?secret=...&issuer=...`.
    otpauth_uri: String,
    /// The URI as a QR code, an SVG document.
    qr_code_svg: String,
}

const MFA_ON: &str = "MFA is on already: disable it first";
const MFA_OFF: &str = "MFA is not on for this account";
const NOTHING_PENDING: &str = "No enrollment is pending: call startTotpEnrollment first";

/// A fresh proof and `code` for fields that change the second factor: with
/// the password the proof checks the code too; in a fresh session the code
/// is checked here. Either way once.
async fn proof_and_code(
    ctx: &Context<'_>,
    requester: &Requester,
    password: Option<String>,
    code: &str,
) -> Result<(), AppError> {
    match fresh_proof(ctx, requester, password, Some(code)).await? {
        Fresh::Password => Ok(()),
        Fresh::Session => {
            match code_again(ctx, requester, Some(code)).await? {
                true => Ok(()),
                // MFA went off since the caller's check: no factor to prove.
                false => Err(AppError::InvalidCode),
            }
        }
    }
}

/// New recovery codes: shown, and their MACs for the store.
fn new_codes(ctx: &Context<'_>) -> Result<(Vec<String>, Vec<String>), AppError> {
    let codes = ctx
        .state()
        .mfa
        .recovery_codes()
        .map_err(AppError::internal)?;
    Ok(codes.into_iter().unzip())
}

/// Starts the second step of a login: the `mfaToken` to answer with.
pub(super) async fn challenge(ctx: &Context<'_>, user_id: Uuid) -> Result<String, AppError> {
    let state = ctx.state();
    let (hash, token) = new_mfa_token().map_err(AppError::internal)?;
    let at = state.clock.now();
    let now = at.timestamp();
    let challenge = mfa_challenge::Model {
        id: Uuid::new_v4(),
        user_id,
        token_hash: hash,
        user_agent: ctx.meta().source.user_agent.clone(),
        created_at: now,
        expires_at: now + state.mfa.token_ttl,
        failures: 0,
        ended_at: None,
    };
    state
        .store
        .create_challenge(challenge, &ctx.meta().source, at)
        .await?;
    Ok(token)
}

/// Why a challenge can't be answered: used up, ended, out of attempts
/// (`revoked`) or past its time (`expired`).
fn dead(challenge: &mfa_challenge::Model, now: i64) -> AuthFailure {
    if challenge.ended_at.is_none() && challenge.expires_at <= now {
        AuthFailure::Expired
    } else {
        AuthFailure::Revoked
    }
}

#[derive(Default)]
pub struct MfaMutation;

#[Object]
impl MfaMutation {
    /// Starts setting up an authenticator app: needs a fresh proof (the
    /// password again, or a session signed in less than `REAUTH_WINDOW`
    /// ago). Starting over replaces a pending enrollment; with MFA on,
    /// `FORBIDDEN`.
    #[graphql(guard = "Authenticated.and(NoApiKey)")]
    async fn start_totp_enrollment(
        &self,
        ctx: &Context<'_>,
        password: Option<String>,
    ) -> Result<TotpEnrollment, AppError> {
        ctx.rate_limit()?;
        let requester = ctx.requester().await?;
        let user = &requester.user;
        let state = ctx.state();
        if state.store.mfa_enabled(user.id).await? {
            return Err(AppError::ForbiddenWith(MFA_ON));
        }
        fresh_proof(ctx, &requester, password, None).await?;
        let enrollment = state
            .mfa
            .enroll(&user.username)
            .map_err(AppError::internal)?;
        let now = state.clock.now().timestamp();
        if !state
            .store
            .start_enrollment(user.id, enrollment.sealed, now)
            .await?
        {
            return Err(AppError::ForbiddenWith(MFA_ON));
        }
        Ok(TotpEnrollment {
            secret: enrollment.secret,
            otpauth_uri: enrollment.uri,
            qr_code_svg: enrollment.qr_svg,
        })
    }

    /// Turns MFA on with a first code from the app. Returns 10 recovery
    /// codes, shown this once; every other session of the user ends.
    #[graphql(guard = "Authenticated.and(NoApiKey)")]
    async fn confirm_totp_enrollment(
        &self,
        ctx: &Context<'_>,
        code: String,
    ) -> Result<Vec<String>, AppError> {
        ctx.rate_limit()?;
        let requester = ctx.requester().await?;
        let user = &requester.user;
        let state = ctx.state();
        let pending = match state.store.totp_of(user.id).await? {
            Some(totp) if totp.enabled_at.is_some() => return Err(AppError::ForbiddenWith(MFA_ON)),
            Some(totp) => totp,
            None => return Err(AppError::ForbiddenWith(NOTHING_PENDING)),
        };
        let attempt = ctx.throttle(&user.username).await?;
        let at = state.clock.now();
        let step = state
            .mfa
            .steps_of(&pending.sealed_secret, &code, at.timestamp())
            .map_err(AppError::internal)?
            .into_iter()
            .find(|step| *step > pending.last_step)
            .ok_or(AppError::InvalidCode)?;
        let (codes, macs) = new_codes(ctx)?;
        let ended = state
            .store
            .enable_mfa(
                user.id,
                step,
                &macs,
                requester.sid(),
                &ctx.meta().source,
                at,
            )
            .await?
            .ok_or(AppError::InvalidCode)?;
        ctx.check_passed(attempt).await?;
        state.metrics.revocations.inc_by(ended);
        Ok(codes)
    }

    /// New recovery codes in place of the old (used or not): needs a code
    /// (TOTP or recovery) and a fresh proof (the password, or a session
    /// signed in less than `REAUTH_WINDOW` ago).
    #[graphql(guard = "Authenticated.and(NoApiKey)")]
    async fn regenerate_recovery_codes(
        &self,
        ctx: &Context<'_>,
        password: Option<String>,
        code: String,
    ) -> Result<Vec<String>, AppError> {
        ctx.rate_limit()?;
        let requester = ctx.requester().await?;
        let user = &requester.user;
        if !ctx.state().store.mfa_enabled(user.id).await? {
            return Err(AppError::ForbiddenWith(MFA_OFF));
        }
        proof_and_code(ctx, &requester, password, &code).await?;
        let (codes, macs) = new_codes(ctx)?;
        let here = (&*ctx.meta().source, requester.sid());
        ctx.state()
            .store
            .replace_recovery_codes(user.id, &macs, here, ctx.state().clock.now())
            .await?;
        Ok(codes)
    }

    /// Turns MFA off: needs a code (TOTP or recovery) and a fresh proof
    /// (the password, or a session signed in less than `REAUTH_WINDOW`
    /// ago). Every other session of the user ends.
    #[graphql(guard = "Authenticated.and(NoApiKey)")]
    async fn disable_totp(
        &self,
        ctx: &Context<'_>,
        password: Option<String>,
        code: String,
    ) -> Result<bool, AppError> {
        ctx.rate_limit()?;
        let requester = ctx.requester().await?;
        let user = &requester.user;
        let state = ctx.state();
        if !state.store.mfa_enabled(user.id).await? {
            return Err(AppError::ForbiddenWith(MFA_OFF));
        }
        proof_and_code(ctx, &requester, password, &code).await?;
        let ended = state
            .store
            .disable_mfa(
                user.id,
                requester.sid(),
                &ctx.meta().source,
                state.clock.now(),
            )
            .await?;
        state.metrics.revocations.inc_by(ended);
        Ok(true)
    }

    /// Finishes a login that answered `MFA_REQUIRED`, with a code from the
    /// app or a recovery code. A wrong code is `INVALID_CREDENTIALS` (the
    /// fifth ends the `mfaToken`); a used, ended or expired `mfaToken` is
    /// `UNAUTHENTICATED` (`revoked`, `expired`).
    async fn verify_mfa(
        &self,
        ctx: &Context<'_>,
        mfa_token: String,
        code: String,
    ) -> Result<AuthPayload, AppError> {
        ctx.rate_limit()?;
        let state = ctx.state();
        let now = state.clock.now().timestamp();
        let challenge = state
            .store
            .challenge(&mfa_token_hash(&mfa_token))
            .await?
            .ok_or(AuthFailure::Invalid)?;
        if challenge.ended_at.is_some()
            || challenge.failures >= MAX_FAILURES
            || challenge.expires_at <= now
        {
            return Err(dead(&challenge, now).into());
        }
        let user = state
            .store
            .find_user(challenge.user_id)
            .await?
            .ok_or(AuthFailure::Invalid)?;
        let attempt = ctx.throttle(&user.username).await?;
        // An attempt is reserved before the code is checked, so however
        // many arrive at once, at most MAX_FAILURES are ever checked.
        if !state
            .store
            .reserve_attempt(challenge.id, MAX_FAILURES, now)
            .await?
        {
            return Err(dead(&challenge, now).into());
        }
        let proof = proof_of(ctx, user.id, &code).await?.unwrap_or_default();
        let factor = match state
            .store
            .finish_challenge(
                challenge.id,
                user.id,
                &proof,
                &ctx.meta().source,
                state.clock.now(),
            )
            .await?
        {
            Finish::Done(factor) => factor,
            Finish::WrongCode => {
                state.metrics.logins.with_label_values(&["failed"]).inc();
                let refused = Kind::MfaFailed {
                    operation: "verifyMfa".into(),
                };
                ctx.record(&[Event::new(refused, Some(user.id), Actor::ANONYMOUS)])
                    .await?;
                return Err(AppError::InvalidCode);
            }
            Finish::Gone => return Err(dead(&challenge, now).into()),
        };
        ctx.check_passed(attempt).await?;
        // A password change since the login voided its mfaToken; this
        // checks the hash once more, as a login does.
        ctx.sign_in(user, challenge.user_agent, factor.after_password())
            .await?
            .ok_or(AuthFailure::Revoked.into())
    }
}

//! Account recovery by mail: password reset and email verification.

use async_graphql::{Context, Object};
use entity::mail_token::Purpose;

use super::context::{ContextExt, SignedIn};
use crate::domain::{Email, Password, local_part};
use crate::error::AppError;
use crate::mail::{MailToken, Mailer};

const MAIL_OFF: &str = "Mail is off on this server (no SMTP_URL): account recovery is unavailable";

fn mailer<'a>(ctx: &'a Context<'_>) -> Result<&'a Mailer, AppError> {
    ctx.state()
        .mailer
        .as_deref()
        .ok_or(AppError::FeatureDisabled(MAIL_OFF))
}

/// Queues a mail of `purpose` to the user unless the address had its
/// hour's worth already (then only the request is noted, nothing is sent,
/// and the caller still says `true`).
pub(super) async fn queue(
    ctx: &Context<'_>,
    purpose: Purpose,
    user_id: uuid::Uuid,
    email: &str,
    username: &str,
) -> Result<(), AppError> {
    let (state, mailer) = (ctx.state(), mailer(ctx)?);
    let now = state.clock.now().timestamp();
    if !state.store.count_mail_request(email, now).await? {
        tracing::info!("mail to an address over its hourly limit: not sent");
        state.store.queue_nothing().await?;
        return Ok(());
    }
    let mail = mailer
        .prepare(purpose, user_id, email, username, now)
        .map_err(|why| AppError::internal(std::io::Error::other(why)))?;
    state.store.queue_mail(mail, now).await?;
    mailer.wake();
    Ok(())
}

#[derive(Default)]
pub struct RecoveryMutation;

#[Object]
impl RecoveryMutation {
    /// Mails a password reset link to `email` when an account has it. Always
    /// `true`, in about the same time: it tells nothing about the account.
    async fn request_password_reset(
        &self,
        ctx: &Context<'_>,
        email: String,
    ) -> Result<bool, AppError> {
        mailer(ctx)?;
        ctx.rate_limit()?;
        let email = Email::parse(&email)?;
        let state = ctx.state();
        if let Some(user) = state.store.find_for_login(email.as_str()).await? {
            queue(
                ctx,
                Purpose::PasswordReset,
                user.id,
                &user.email,
                &user.username,
            )
            .await?;
        } else {
            // The reads and the writes of a known address, no mail.
            let now = state.clock.now().timestamp();
            state.store.count_mail_request(email.as_str(), now).await?;
            state.store.queue_nothing().await?;
        }
        Ok(true)
    }

    /// Sets a new password with the token of a reset mail: every session of
    /// the user ends, the address counts as verified, the token is used up.
    /// A bad, used or expired token is `BAD_USER_INPUT` (`field: "token"`).
    async fn reset_password(
        &self,
        ctx: &Context<'_>,
        token: String,
        new_password: String,
    ) -> Result<bool, AppError> {
        mailer(ctx)?;
        ctx.rate_limit()?;
        let state = ctx.state();
        let now = state.clock.now().timestamp();
        let hash = MailToken::hash(&token);
        let bad_token = || {
            AppError::BadUserInput(crate::domain::InvalidInput::new(
                "token",
                "is not a valid link: it expired, was used, or a newer one was sent",
            ))
        };
        let user = state
            .store
            .peek_mail_token(&hash, Purpose::PasswordReset, now)
            .await?
            .ok_or_else(bad_token)?;
        let password = Password::parse_new(
            &new_password,
            "newPassword",
            &[&user.username, local_part(&user.email)],
        )?;
        let password_hash = state
            .hasher
            .hash(password.expose().to_owned())
            .await
            .map_err(AppError::internal)?;
        let ended = state
            .store
            .reset_password(&hash, password_hash, &ctx.meta().source, state.clock.now())
            .await?
            .ok_or_else(bad_token)?;
        state.metrics.revocations.inc_by(ended);
        ctx.forget_requester().await;
        Ok(true)
    }

    /// Mails a new verification link to the caller's address (`true` at
    /// once when it is verified already).
    #[graphql(guard = "SignedIn")]
    async fn request_email_verification(&self, ctx: &Context<'_>) -> Result<bool, AppError> {
        mailer(ctx)?;
        ctx.rate_limit()?;
        let requester = ctx.signed_in().await?;
        let user = &requester.user;
        if !user.email_verified {
            queue(
                ctx,
                Purpose::EmailVerification,
                user.id,
                &user.email,
                &user.username,
            )
            .await?;
        }
        Ok(true)
    }

    /// Proves the address with the token of a verification mail. A bad,
    /// used or expired token is `BAD_USER_INPUT` (`field: "token"`).
    async fn verify_email(&self, ctx: &Context<'_>, token: String) -> Result<bool, AppError> {
        mailer(ctx)?;
        ctx.rate_limit()?;
        let state = ctx.state();
        let now = state.clock.now().timestamp();
        let user_id = state
            .store
            .use_mail_token(&MailToken::hash(&token), Purpose::EmailVerification, now)
            .await?
            .ok_or(AppError::BadUserInput(crate::domain::InvalidInput::new(
                "token",
                "is not a valid link: it expired, was used, or a newer one was sent",
            )))?;
        state
            .store
            .verify_email(user_id, &ctx.meta().source, state.clock.now())
            .await?;
        ctx.forget_requester().await;
        Ok(true)
    }
}

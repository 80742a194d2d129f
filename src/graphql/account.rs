//! signup, login and me.

use async_graphql::{Context, InputObject, Object};
use entity::mail_token::Purpose;
use entity::user;
use uuid::Uuid;

use super::context::{ContextExt, SignedIn};
use super::sign_in::SignInExt;
use super::types::{AuthPayload, User};
use super::{mfa, recovery};
use crate::auth::jwt::Subject;
use crate::domain::{Email, Password, Username, local_part};
use crate::error::AppError;
use crate::events::{LoginRefusal, Method};
use crate::store::{CreateUserError, NewUser};

/// A new account.
#[derive(InputObject)]
pub struct SignupInput {
    /// 3-32 characters of `A-Z a-z 0-9 _ . -` (trimmed; unique ignoring case).
    pub username: String,
    /// Trimmed and lower-cased; at most 254 characters.
    pub email: String,
    /// 8-128 characters; never trimmed.
    pub password: String,
}

/// Credentials to log in with.
#[derive(InputObject)]
pub struct LoginInput {
    /// The username (any case) or the email address.
    pub username: String,
    /// The account's password, exactly as set.
    pub password: String,
}

#[derive(Default)]
pub struct AccountQuery;

#[Object]
impl AccountQuery {
    /// The caller. Needs an access token (of an unverified account too).
    #[graphql(guard = "SignedIn")]
    async fn me(&self, ctx: &Context<'_>) -> Result<User, AppError> {
        Ok(User(ctx.signed_in().await?.user.clone()))
    }
}

#[derive(Default)]
pub struct AccountMutation;

#[Object]
impl AccountMutation {
    /// Creates an account and starts a session on it, exactly as `login` does.
    /// `BAD_USER_INPUT` (with `field`) for input that breaks a rule, `CONFLICT`
    /// (with `field`) when the username or email is taken.
    async fn signup(&self, ctx: &Context<'_>, input: SignupInput) -> Result<AuthPayload, AppError> {
        ctx.rate_limit()?;
        let username = Username::parse(&input.username)?;
        let email = Email::parse(&input.email)?;
        let password = Password::parse_new(
            &input.password,
            "password",
            &[username.as_str(), local_part(email.as_str())],
        )?;
        let state = ctx.state();
        let password_hash = state
            .hasher
            .hash(password.expose().to_owned())
            .await
            .map_err(AppError::internal)?;
        // UUIDv7: random, but ordered by creation, which gives `users` a stable order.
        let user_id = Uuid::now_v7();
        let now = state.clock.now();
        let (session, pair) = state
            .tokens
            .new_session(
                Subject {
                    id: user_id,
                    role: user::Role::User,
                    email_verified: false,
                },
                ctx.meta().source.user_agent.clone(),
                now,
            )
            .map_err(AppError::internal)?;
        // Mail on: the verification mail is queued with the account.
        let verification = match &state.mailer {
            Some(mailer) => Some(
                mailer
                    .prepare(
                        Purpose::EmailVerification,
                        user_id,
                        email.as_str(),
                        username.as_str(),
                        now.timestamp(),
                    )
                    .map_err(|why| AppError::internal(std::io::Error::other(why)))?,
            ),
            None => None,
        };
        let user = state
            .store
            .create_user(
                NewUser {
                    id: user_id,
                    username,
                    email,
                    password_hash,
                },
                session,
                verification,
                &ctx.meta().source,
            )
            .await
            .map_err(|err| match err {
                CreateUserError::Taken(field) => AppError::Conflict { field },
                CreateUserError::Db(err) => err.into(),
            })?;
        state.metrics.signups.inc();
        if let Some(mailer) = &state.mailer {
            mailer.wake();
        }
        Ok(ctx.hand_out(pair, user.into()))
    }

    /// Starts a session. `username` may be the username (any case) or the email.
    /// One `INVALID_CREDENTIALS` error, in about the same time, whether or not
    /// the account exists. Under `EMAIL_VERIFICATION=required`, the right
    /// password of an unverified account is `EMAIL_NOT_VERIFIED`, and a new
    /// verification link is mailed. With MFA on, the right password is
    /// `MFA_REQUIRED` with an `mfaToken` for `verifyMfa`.
    async fn login(&self, ctx: &Context<'_>, input: LoginInput) -> Result<AuthPayload, AppError> {
        ctx.rate_limit()?;
        // Counted per identifier whether or not an account has it, before
        // the password: the same writes and answers either way.
        let attempt = ctx.throttle(&input.username).await?;
        let state = ctx.state();
        // Nothing that long can match a stored account, so it is not looked up;
        // the dummy verification below keeps the timing the same.
        let plausible = input.username.trim().chars().count() <= Email::MAX
            && input.password.chars().count() <= Password::MAX;
        let user = if plausible {
            state.store.find_for_login(&input.username).await?
        } else {
            None
        };
        let verified = state
            .hasher
            .verify(
                input.password,
                user.as_ref().map(|u| u.password_hash.clone()),
            )
            .await
            .map_err(AppError::internal)?;
        let failed = async |user_id: Option<Uuid>| {
            state.metrics.logins.with_label_values(&["failed"]).inc();
            let reason = match user_id {
                Some(_) => LoginRefusal::WrongPassword,
                None => LoginRefusal::UnknownAccount,
            };
            ctx.sign_in_refused(Method::Password, reason, user_id)
                .await?;
            Err(AppError::InvalidCredentials)
        };
        let user = match user {
            Some(user) if verified => user,
            other => return failed(other.map(|user| user.id)).await,
        };
        if state.verified_only && !user.email_verified {
            // The password was right: no failure to count. No session
            // starts; a new link goes out (within the address's hourly limit).
            ctx.check_passed(attempt).await?;
            state
                .metrics
                .logins
                .with_label_values(&["unverified"])
                .inc();
            ctx.sign_in_refused(
                Method::Password,
                LoginRefusal::EmailNotVerified,
                Some(user.id),
            )
            .await?;
            recovery::queue(
                ctx,
                Purpose::EmailVerification,
                user.id,
                &user.email,
                &user.username,
            )
            .await?;
            return Err(AppError::EmailNotVerified);
        }
        if state.store.mfa_enabled(user.id).await? {
            // The password was right; the session waits for verifyMfa.
            ctx.check_passed(attempt).await?;
            let mfa_token = mfa::challenge(ctx, user.id).await?;
            return Err(AppError::MfaRequired { mfa_token });
        }
        let user_id = user.id;
        let user_agent = ctx.meta().source.user_agent.clone();
        let Some(payload) = ctx.sign_in(user, user_agent, Method::Password).await? else {
            return failed(Some(user_id)).await;
        };
        ctx.check_passed(attempt).await?;
        Ok(payload)
    }
}

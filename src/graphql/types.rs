//! Output types shared by the features. Built from entity models, never
//! derived on them, so a password hash has no way into a response.

use async_graphql::{Enum, ID, Object, SimpleObject};
use entity::user;

use crate::auth::jwt::TokenPair;
use crate::error::AppError;

pub use super::scalars::DateTime;

/// What a user may do.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Role {
    /// An ordinary account.
    User,
    /// May list users and change roles.
    Admin,
}

impl From<Role> for user::Role {
    fn from(role: Role) -> Self {
        match role {
            Role::User => Self::User,
            Role::Admin => Self::Admin,
        }
    }
}

impl From<user::Role> for Role {
    fn from(role: user::Role) -> Self {
        match role {
            user::Role::User => Self::User,
            user::Role::Admin => Self::Admin,
        }
    }
}

/// An account.
pub struct User(pub user::Profile);

#[Object]
impl User {
    /// Opaque, stable identifier (a UUID). The `sub` claim of the user's tokens.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// As given at signup (unique ignoring case).
    async fn username(&self) -> &str {
        &self.0.username
    }

    /// Lower-cased.
    async fn email(&self) -> &str {
        &self.0.email
    }

    async fn role(&self) -> Role {
        self.0.role.into()
    }

    /// The events concerning this account, newest first: the user's own, or
    /// anyone's to an ADMIN (`FORBIDDEN` otherwise).
    async fn security_events(
        &self,
        ctx: &async_graphql::Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
    ) -> Result<super::events::SecurityEventConnection, AppError> {
        super::events::of_user(ctx, self.0.id, first, after).await
    }

    /// When the account was created.
    async fn created_at(&self) -> DateTime {
        DateTime(self.0.created_at)
    }

    /// The address was proven: a verification link (or a reset link) was opened.
    async fn email_verified(&self) -> bool {
        self.0.email_verified
    }

    /// A second factor (TOTP) is on: logins answer `MFA_REQUIRED`.
    async fn mfa_enabled(&self, ctx: &async_graphql::Context<'_>) -> Result<bool, AppError> {
        let state = ctx.data_unchecked::<std::sync::Arc<crate::state::AppState>>();
        Ok(state.store.mfa_enabled(self.0.id).await?)
    }
}

/// The tokens of a new or refreshed session, and its user.
#[derive(SimpleObject)]
pub struct AuthPayload {
    /// Short-lived JWT: send it as `Authorization: Bearer <accessToken>`.
    pub access_token: String,
    /// Long-lived JWT for `refreshToken` and `logout`. Single use: every refresh
    /// returns a new one, and presenting a used one ends the whole session.
    /// Null in cookie mode (`REFRESH_TOKEN_COOKIE=on`): the token went into
    /// the HttpOnly cookie `__Host-authgraph-refresh` instead.
    pub refresh_token: Option<String>,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until `accessToken` expires.
    pub expires_in: i32,
    /// Seconds until the refresh token expires (in the body or the cookie).
    pub refresh_expires_in: i32,
    /// The account the tokens belong to.
    pub user: User,
}

impl AuthPayload {
    /// The payload handing out `pair`, once the store has agreed to it: the
    /// refresh token in the body, or (`in_cookie`) left out of it.
    pub fn new(pair: TokenPair, user: user::Profile, in_cookie: bool) -> Self {
        Self {
            access_token: pair.access_token,
            refresh_token: (!in_cookie).then_some(pair.refresh_token),
            token_type: "Bearer",
            expires_in: seconds(pair.expires_in),
            refresh_expires_in: seconds(pair.refresh_expires_in),
            user: User(user),
        }
    }
}

fn seconds(value: i64) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// What `verifyToken` found out about a token.
#[derive(SimpleObject, Default)]
pub struct TokenInfo {
    /// True when the token would be accepted now.
    pub valid: bool,
    /// When not valid: `invalid`, `expired` or `revoked`.
    pub reason: Option<&'static str>,
    /// `access` or `refresh`; null when the token is not ours.
    pub token_type: Option<&'static str>,
    /// The user the token belongs to; null when the token is not ours.
    pub user_id: Option<ID>,
    /// When the token expires (or expired); null when the token is not ours.
    pub expires_at: Option<DateTime>,
}

//! What a token says: its type, its claims (the role, Hasura's, the address
//! verified), whom it is for, and the pair a session is handed.

use entity::user;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::store::TokenRef;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Access,
    Refresh,
}

impl TokenType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Refresh => "refresh",
        }
    }
}

/// An access token's `role` claim: the user's role when it was issued.
/// Informational, for other services; authgraph reads the role from the
/// database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RoleClaim {
    User,
    Admin,
}

impl From<user::Role> for RoleClaim {
    fn from(role: user::Role) -> Self {
        match role {
            user::Role::User => Self::User,
            user::Role::Admin => Self::Admin,
        }
    }
}

/// The claims of every token (API.md, "Tokens").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user's id.
    pub sub: Uuid,
    /// The session: shared by every token of one login and its refreshes.
    pub sid: Uuid,
    pub iat: i64,
    pub exp: i64,
    pub jti: Uuid,
    pub typ: TokenType,
    /// `JWT_ISSUER` (or its default), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Access tokens: `JWT_AUDIENCE` (or its default), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// Access tokens: the user's role at issue time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<RoleClaim>,
    /// Access tokens under `JWT_CLAIMS=hasura`. For Hasura only: never read
    /// back (authgraph's guard has no use for it).
    #[serde(
        rename = "https://hasura.io/jwt/claims",
        default,
        skip_serializing_if = "Option::is_none",
        skip_deserializing
    )]
    pub hasura: Option<HasuraClaims>,
    /// Access tokens under `EMAIL_VERIFICATION=required`: whether the
    /// account's address was verified at issue time (the OIDC claim's name),
    /// so a service verifying offline can hold an unverified account to what
    /// authgraph allows it. authgraph itself reads it from the database.
    #[serde(default, skip_serializing_if = "Option::is_none", skip_deserializing)]
    pub email_verified: Option<bool>,
}

/// Whom a token is for: the user, and what its access token says of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subject {
    pub id: Uuid,
    pub role: user::Role,
    pub email_verified: bool,
}

impl From<&user::Model> for Subject {
    fn from(user: &user::Model) -> Self {
        Self {
            id: user.id,
            role: user.role,
            email_verified: user.email_verified,
        }
    }
}

impl From<&user::Profile> for Subject {
    fn from(user: &user::Profile) -> Self {
        Self {
            id: user.id,
            role: user.role,
            email_verified: user.email_verified,
        }
    }
}

/// Hasura's session variables (its documented JWT format): strings, the
/// default role among the allowed ones. Roles are `user`, and
/// `authgraph_admin` for an ADMIN: never Hasura's own `admin`, which would
/// bypass every permission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HasuraClaims {
    #[serde(rename = "x-hasura-user-id")]
    pub user_id: String,
    #[serde(rename = "x-hasura-default-role")]
    pub default_role: &'static str,
    #[serde(rename = "x-hasura-allowed-roles")]
    pub allowed_roles: Vec<&'static str>,
}

impl HasuraClaims {
    pub(super) fn new(user: Uuid, role: user::Role) -> Self {
        let allowed_roles = match role {
            user::Role::User => vec!["user"],
            user::Role::Admin => vec!["user", "authgraph_admin"],
        };
        Self {
            user_id: user.to_string(),
            default_role: "user",
            allowed_roles,
        }
    }
}

impl Claims {
    /// The token as the store knows it.
    pub fn token(&self) -> TokenRef {
        TokenRef {
            user: self.sub,
            sid: self.sid,
            jti: self.jti,
            exp: self.exp,
        }
    }
}

/// The tokens of one session, issued together and not yet handed out.
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds the access token lives.
    pub expires_in: i64,
    /// Seconds the refresh token lives.
    pub refresh_expires_in: i64,
    /// Unix seconds at which the later of the two expires: the session's expiry.
    pub expires_at: i64,
}

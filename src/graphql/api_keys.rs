//! API keys: `apiKeys`, `createApiKey`, `revokeApiKey`. A key authenticates
//! as `Authorization: Token <key>` (or `Bearer <key>`): see `auth::bearer`.

use async_graphql::{Context, ID, Object, SimpleObject};
use entity::api_key;
use uuid::Uuid;

use super::context::{Authenticated, ContextExt, NOT_WITH_API_KEY, NoApiKey};
use super::reauth;
use super::types::DateTime;
use crate::auth::api_key::NewKey;
use crate::domain::InvalidInput;
use crate::error::AppError;

/// Most live (not revoked, not expired) keys a user may hold.
pub const MAX_LIVE_KEYS: u64 = 20;
/// Longest name, in characters.
const MAX_NAME: usize = 64;
/// Longest lifetime, in days.
const MAX_DAYS: i32 = 365;
/// `expiresInDays` when not given.
const DEFAULT_DAYS: i32 = 90;

/// A key of the caller, as lists show it: never the key itself.
pub struct ApiKey(api_key::Model);

#[Object]
impl ApiKey {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// As given at creation.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// The 8 characters after `ag_`: tells keys apart, opens nothing.
    async fn prefix(&self) -> &str {
        &self.0.prefix
    }

    async fn created_at(&self) -> DateTime {
        DateTime(self.0.created_at)
    }

    /// Noted at most once a minute; null until the key is first used.
    async fn last_used_at(&self) -> Option<DateTime> {
        self.0.last_used_at.and_then(DateTime::from_unix)
    }

    async fn expires_at(&self) -> DateTime {
        DateTime::from_unix_or_epoch(self.0.expires_at)
    }
}

/// A key just made: `key` is shown this once.
#[derive(SimpleObject)]
pub struct NewApiKey {
    /// `ag_<prefix>_<secret>`: send it as `Authorization: Token <key>`.
    key: String,
    api_key: ApiKey,
}

fn parse_name(name: &str) -> Result<String, InvalidInput> {
    let name = name.trim();
    if name.is_empty() {
        return Err(InvalidInput::new("name", "must not be empty"));
    }
    if name.chars().count() > MAX_NAME {
        return Err(InvalidInput::new("name", "must be at most 64 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(InvalidInput::new(
            "name",
            "must not contain control characters",
        ));
    }
    Ok(name.to_owned())
}

#[derive(Default)]
pub struct ApiKeyQuery;

#[Object]
impl ApiKeyQuery {
    /// The caller's keys that are not revoked, newest first.
    #[graphql(guard = "Authenticated")]
    async fn api_keys(&self, ctx: &Context<'_>) -> Result<Vec<ApiKey>, AppError> {
        let requester = ctx.requester().await?;
        let keys = ctx.state().store.api_keys_of(requester.user.id).await?;
        Ok(keys.into_iter().map(ApiKey).collect())
    }
}

#[derive(Default)]
pub struct ApiKeyMutation;

#[Object]
impl ApiKeyMutation {
    /// Makes a key for scripts and services. Needs a fresh proof: the
    /// password again (with `code` once MFA is on; wrong is
    /// `INVALID_CREDENTIALS`, counted as a failed login), or a session
    /// signed in less than `REAUTH_WINDOW` ago (else `FORBIDDEN`, `reason:
    /// "reauthentication_required"`), so a stolen access token alone can't
    /// mint a lasting credential. `expiresInDays` is 1..365; past 20 live
    /// keys, `FORBIDDEN`. An API key can't make another.
    #[graphql(guard = "Authenticated.and(NoApiKey)")]
    async fn create_api_key(
        &self,
        ctx: &Context<'_>,
        name: String,
        password: Option<String>,
        code: Option<String>,
        #[graphql(default = 90)] expires_in_days: Option<i32>,
    ) -> Result<NewApiKey, AppError> {
        // An explicit null means the default too.
        let expires_in_days = expires_in_days.unwrap_or(DEFAULT_DAYS);
        ctx.rate_limit()?;
        let requester = ctx.requester().await?;
        let name = parse_name(&name)?;
        if !(1..=MAX_DAYS).contains(&expires_in_days) {
            return Err(InvalidInput::new("expiresInDays", "must be between 1 and 365").into());
        }
        reauth::fresh_proof(ctx, &requester, password, code.as_deref()).await?;
        let state = ctx.state();
        let new = NewKey::generate().map_err(AppError::internal)?;
        let now = state.clock.now();
        let model = api_key::Model {
            id: Uuid::now_v7(),
            user_id: requester.user.id,
            name,
            prefix: new.prefix,
            key_hash: new.hash,
            created_at: now,
            last_used_at: None,
            expires_at: now.timestamp() + i64::from(expires_in_days) * 86_400,
            revoked_at: None,
        };
        let here = (&*ctx.meta().source, requester.sid());
        if !state
            .store
            .create_api_key(model.clone(), MAX_LIVE_KEYS, here)
            .await?
        {
            return Err(AppError::ForbiddenWith(
                "You have 20 live API keys already: revoke one first",
            ));
        }
        Ok(NewApiKey {
            key: new.key,
            api_key: ApiKey(model),
        })
    }

    /// Revokes one of the caller's keys, at once. Anyone else's, unknown or
    /// already revoked: `FORBIDDEN`, all alike. With an API key, only that
    /// key itself.
    #[graphql(guard = "Authenticated")]
    async fn revoke_api_key(&self, ctx: &Context<'_>, id: ID) -> Result<bool, AppError> {
        let requester = ctx.requester().await?;
        let Ok(key_id) = Uuid::parse_str(&id) else {
            return Err(AppError::Forbidden);
        };
        if requester.api_key().is_some_and(|own| own != key_id) {
            return Err(AppError::ForbiddenWith(NOT_WITH_API_KEY));
        }
        let state = ctx.state();
        let by = (&*ctx.meta().source, ctx.actor(&requester), requester.sid());
        if !state
            .store
            .revoke_api_key(requester.user.id, key_id, by, state.clock.now())
            .await?
        {
            return Err(AppError::Forbidden);
        }
        if requester.api_key() == Some(key_id) {
            ctx.forget_requester().await;
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(parse_name("  nightly export ").unwrap(), "nightly export");
        assert_eq!(parse_name(&"é".repeat(64)).unwrap().chars().count(), 64);
        for bad in ["", "   ", &"x".repeat(65), "tab\there"] {
            assert_eq!(parse_name(bad).unwrap_err().field, "name", "{bad:?}");
        }
    }
}

//! API keys: created under a cap, listed, revoked, their `lastUsedAt`
//! written at most once a minute. The guard's read is the ledger's
//! (`key_holder`): the hot path.

use entity::{api_key, user};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, TransactionTrait,
};
use uuid::Uuid;

use super::Store;
pub use super::ledger::KeyHolder;

/// How often, at most, a key's `last_used_at` is written (seconds).
pub const LAST_USED_EVERY: i64 = 60;

/// Revokes every live key of `user_id` (a password reset).
pub(super) async fn revoke_keys_in(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    now: i64,
) -> Result<u64, DbErr> {
    let revoked = api_key::Entity::update_many()
        .col_expr(api_key::Column::RevokedAt, Expr::value(now))
        .filter(api_key::Column::UserId.eq(user_id))
        .filter(api_key::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(revoked.rows_affected)
}

impl Store {
    /// Stores `key` (its hash, never the key) unless its user has `cap` live keys already (then
    /// `false`). Keys of one user are created one at a time: the user's
    /// row is written first, which holds the others back (a row lock on
    /// PostgreSQL, the write lock on SQLite), so the count can't go stale.
    #[tracing::instrument(
        name = "db.api_keys.create",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn create_api_key(
        &self,
        key: api_key::Model,
        now: i64,
        cap: u64,
    ) -> Result<bool, DbErr> {
        let txn = self.db.begin().await?;
        user::Entity::update_many()
            .col_expr(
                user::Column::EmailVerified,
                Expr::col(user::Column::EmailVerified),
            )
            .filter(user::Column::Id.eq(key.user_id))
            .exec(&txn)
            .await?;
        let live = api_key::Entity::find()
            .filter(api_key::Column::UserId.eq(key.user_id))
            .filter(api_key::Column::RevokedAt.is_null())
            .filter(api_key::Column::ExpiresAt.gt(now))
            .count(&txn)
            .await?;
        if live >= cap {
            txn.rollback().await?;
            return Ok(false);
        }
        api_key::Entity::insert(api_key::ActiveModel {
            id: Set(key.id),
            user_id: Set(key.user_id),
            name: Set(key.name),
            prefix: Set(key.prefix),
            key_hash: Set(key.key_hash),
            created_at: Set(key.created_at),
            last_used_at: Set(key.last_used_at),
            expires_at: Set(key.expires_at),
            revoked_at: Set(key.revoked_at),
        })
        .exec_without_returning(&txn)
        .await?;
        txn.commit().await?;
        Ok(true)
    }

    /// The user's keys that are not revoked, newest first (expired ones
    /// too, until the prune takes them).
    #[tracing::instrument(
        name = "db.api_keys.list",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn api_keys_of(&self, user_id: Uuid) -> Result<Vec<api_key::Model>, DbErr> {
        api_key::Entity::find()
            .filter(api_key::Column::UserId.eq(user_id))
            .filter(api_key::Column::RevokedAt.is_null())
            .order_by_desc(api_key::Column::CreatedAt)
            .order_by_desc(api_key::Column::Id)
            .all(&self.db)
            .await
    }

    /// Revokes key `key_id` if it is `user_id`'s and not revoked yet.
    #[tracing::instrument(
        name = "db.api_keys.revoke",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn revoke_api_key(
        &self,
        user_id: Uuid,
        key_id: Uuid,
        now: i64,
    ) -> Result<bool, DbErr> {
        let revoked = api_key::Entity::update_many()
            .col_expr(api_key::Column::RevokedAt, Expr::value(now))
            .filter(api_key::Column::Id.eq(key_id))
            .filter(api_key::Column::UserId.eq(user_id))
            .filter(api_key::Column::RevokedAt.is_null())
            .exec(&self.db)
            .await?;
        Ok(revoked.rows_affected == 1)
    }

    /// The key whose SHA-256 is `key_hash`, with its user: the guard's read.
    #[tracing::instrument(
        name = "db.ledger.key_holder",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn key_holder(&self, key_hash: &str) -> Result<Option<KeyHolder>, DbErr> {
        self.ledger.key_holder(key_hash).await
    }

    /// Notes a use of key `key_id` at `now`, unless one was noted less than
    /// [`LAST_USED_EVERY`] seconds ago: one write a minute at most, however
    /// many servers and requests use the key. Returns whether it wrote.
    #[tracing::instrument(
        name = "db.api_keys.touch",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn touch_api_key(&self, key_id: Uuid, now: i64) -> Result<bool, DbErr> {
        let touched = api_key::Entity::update_many()
            .col_expr(api_key::Column::LastUsedAt, Expr::value(now))
            .filter(api_key::Column::Id.eq(key_id))
            .filter(
                api_key::Column::LastUsedAt
                    .is_null()
                    .or(api_key::Column::LastUsedAt.lte(now - LAST_USED_EVERY)),
            )
            .exec(&self.db)
            .await?;
        Ok(touched.rows_affected == 1)
    }

    /// Deletes keys that expired before `cutoff` (revoked or not).
    #[tracing::instrument(
        name = "db.api_keys.prune",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn prune_api_keys(&self, cutoff: i64) -> Result<u64, DbErr> {
        let deleted = api_key::Entity::delete_many()
            .filter(api_key::Column::ExpiresAt.lt(cutoff))
            .exec(&self.db)
            .await?;
        Ok(deleted.rows_affected)
    }
}

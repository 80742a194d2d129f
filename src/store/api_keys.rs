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
use super::events::append_in;
pub use super::ledger::KeyHolder;
use crate::events::{Actor, Event, KeyRevocation, Kind, Source};

/// How often, at most, a key's `last_used_at` is written (seconds).
pub const LAST_USED_EVERY: i64 = 60;

/// Revokes every live key of `user_id` (a password reset); returns their ids.
pub(super) async fn revoke_keys_in(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    now: i64,
) -> Result<Vec<Uuid>, DbErr> {
    let revoked = api_key::Entity::update_many()
        .col_expr(api_key::Column::RevokedAt, Expr::value(now))
        .filter(api_key::Column::UserId.eq(user_id))
        .filter(api_key::Column::RevokedAt.is_null())
        .exec_with_returning(db)
        .await?;
    Ok(revoked.into_iter().map(|key| key.id).collect())
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
        cap: u64,
        (source, sid): (&Source, Option<Uuid>),
    ) -> Result<bool, DbErr> {
        let (at, now) = (key.created_at, key.created_at.timestamp());
        let created = Kind::ApiKeyCreated {
            key_id: key.id,
            name: key.name.clone(),
            prefix: key.prefix.clone(),
            expires_at: chrono::DateTime::from_timestamp(key.expires_at, 0)
                .unwrap_or_default()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        };
        let created = Event::by_user(created, key.user_id).in_session(sid);
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
        let written = append_in(&txn, source, at, &[created]).await?;
        txn.commit().await?;
        written.log();
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

    /// Revokes key `key_id` if it is `user_id`'s and not revoked yet, with
    /// its `api_key.revoked` (by `by`, in session `sid`).
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
        (source, by, sid): (&Source, Actor, Option<Uuid>),
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, DbErr> {
        let txn = self.db.begin().await?;
        let revoked = api_key::Entity::update_many()
            .col_expr(api_key::Column::RevokedAt, Expr::value(at.timestamp()))
            .filter(api_key::Column::Id.eq(key_id))
            .filter(api_key::Column::UserId.eq(user_id))
            .filter(api_key::Column::RevokedAt.is_null())
            .exec(&txn)
            .await?;
        if revoked.rows_affected != 1 {
            txn.rollback().await?;
            return Ok(false);
        }
        let kind = Kind::ApiKeyRevoked {
            key_id,
            reason: KeyRevocation::Revoked,
        };
        let event = Event::new(kind, Some(user_id), by).in_session(sid);
        let written = append_in(&txn, source, at, &[event]).await?;
        txn.commit().await?;
        written.log();
        Ok(true)
    }

    /// Notes the first use of key `key_id` (of `user_id`): its
    /// `last_used_at` set, if no use was noted yet, with its
    /// `api_key.first_used`, in one transaction. Returns whether it wrote:
    /// of concurrent first uses, one does.
    #[tracing::instrument(
        name = "db.api_keys.first_use",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn first_use_of_api_key(
        &self,
        user_id: Uuid,
        key_id: Uuid,
        source: &Source,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, DbErr> {
        let txn = self.db.begin().await?;
        let touched = api_key::Entity::update_many()
            .col_expr(api_key::Column::LastUsedAt, Expr::value(at.timestamp()))
            .filter(api_key::Column::Id.eq(key_id))
            .filter(api_key::Column::LastUsedAt.is_null())
            .exec(&txn)
            .await?;
        if touched.rows_affected != 1 {
            txn.rollback().await?;
            return Ok(false);
        }
        let event = Event::new(
            Kind::ApiKeyFirstUsed { key_id },
            Some(user_id),
            Actor::api_key(key_id),
        );
        let written = append_in(&txn, source, at, &[event]).await?;
        txn.commit().await?;
        written.log();
        Ok(true)
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

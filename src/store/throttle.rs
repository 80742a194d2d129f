//! The per-account throttle (`LOGIN_FAILURES_PER_HOUR`): failed password
//! checks counted per identifier in the database, so every server sharing
//! it shares the count. An attempt is counted when it starts (atomically,
//! so concurrent guesses can't slip past the limit together) and taken back
//! when the password proves right.

use entity::login_failure;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, IdenStatic, QueryFilter};
use sha2::{Digest, Sha256};

use super::Store;
use super::events::append_in;
use super::login_lookup;
use crate::events::{Actor, Event, Kind, LoginRefusal, Method, Source};

/// How long a window of failures lasts, seconds.
pub const WINDOW: i64 = 3600;

/// What the throttle says of an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Counted; go on and check the password.
    Allowed,
    /// Over the limit: refused before any check, for this many seconds more.
    Refused { retry_after: u64 },
}

/// The throttle's key for an identifier as typed: trimmed, lower-cased,
/// hashed (what was typed is never stored).
pub fn throttle_key(identifier: &str) -> String {
    hex::encode(Sha256::digest(identifier.trim().to_lowercase().as_bytes()))
}

/// Counts one at `now` for `key` in a table of windows (`columns`: the key,
/// the count, the window's start), in one upsert: a window over starts again
/// at 1, and past `limit` the count stops at `limit + 1`, so concurrent
/// requests can't slip past it together. Returns the count (over `limit`:
/// refused) and when the window started.
pub(super) async fn count_in_window<E: EntityTrait + Default>(
    db: &impl ConnectionTrait,
    [key_column, count_column, started_column]: [E::Column; 3],
    key: &str,
    now: i64,
    limit: u32,
) -> Result<(i64, i64), DbErr> {
    let expired = now - WINDOW;
    let limit = i64::from(limit);
    let column = |column: E::Column| Expr::col((E::default(), column));
    let counted = Expr::case(column(started_column).lte(expired), 1)
        .case(column(count_column).gt(limit), column(count_column))
        .finally(column(count_column).add(1));
    let window =
        Expr::case(column(started_column).lte(expired), now).finally(column(started_column));
    let mut insert = Query::insert();
    insert
        .into_table(E::default())
        .columns([key_column, count_column, started_column])
        .values([key.into(), 1.into(), now.into()])
        .map_err(|err| DbErr::Custom(err.to_string()))?
        .on_conflict(
            OnConflict::column(key_column)
                .value(count_column, counted)
                .value(started_column, window)
                .to_owned(),
        )
        .returning(Query::returning().columns([count_column, started_column]));
    let row = db
        .query_one_raw(db.get_database_backend().build(&insert))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("the window's row".into()))?;
    let counted: i32 = row.try_get("", count_column.as_str())?;
    let started: i64 = row.try_get("", started_column.as_str())?;
    Ok((i64::from(counted), started))
}

impl Store {
    /// Counts an attempt for `key` at `now` (Unix seconds): allowed while
    /// fewer than `limit` were counted in the window, which starts at the
    /// first attempt and lasts [`WINDOW`].
    #[tracing::instrument(
        name = "db.throttle.begin_attempt",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn begin_attempt(&self, key: &str, now: i64, limit: u32) -> Result<Attempt, DbErr> {
        use login_failure::{Column, Entity};
        let db = self.connection();
        let (counted, started) = count_in_window::<Entity>(
            db,
            [Column::Id, Column::Failures, Column::WindowStartedAt],
            key,
            now,
            limit,
        )
        .await?;
        if counted > i64::from(limit) {
            let retry_after = u64::try_from((started + WINDOW - now).clamp(1, WINDOW)).unwrap_or(1);
            return Ok(Attempt::Refused { retry_after });
        }
        Ok(Attempt::Allowed)
    }

    /// Records a refusal by the throttle of `identifier` (its `key`): one
    /// `login.failed` (`throttled`) per identifier and window, however many
    /// refusals, decided by one conditional write of the window's row.
    /// Returns whether this refusal was the one recorded.
    #[tracing::instrument(
        name = "db.throttle.note_refusal",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn note_throttled(
        &self,
        key: &str,
        identifier: &str,
        source: &Source,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, DbErr> {
        use sea_orm::TransactionTrait;
        let window = Expr::col(login_failure::Column::WindowStartedAt);
        let txn = self.connection().begin().await?;
        let noted = login_failure::Entity::update_many()
            .col_expr(login_failure::Column::ThrottledNotedAt, window.clone())
            .filter(login_failure::Column::Id.eq(key))
            .filter(
                login_failure::Column::ThrottledNotedAt
                    .is_null()
                    .or(Expr::col(login_failure::Column::ThrottledNotedAt).ne(window)),
            )
            .exec(&txn)
            .await?;
        if noted.rows_affected != 1 {
            txn.rollback().await?;
            return Ok(false);
        }
        let user_id = match login_lookup(identifier) {
            Some(query) => super::unique(&txn, query).await?.map(|user| user.id),
            None => None,
        };
        let refused = Kind::LoginFailed {
            method: Method::Password,
            reason: LoginRefusal::Throttled,
        };
        let event = Event::new(refused, user_id, Actor::ANONYMOUS);
        let written = append_in(&txn, source, at, &[event]).await?;
        txn.commit().await?;
        written.log();
        Ok(true)
    }

    /// The attempt counted for `key` proved right: it was no failure.
    #[tracing::instrument(
        name = "db.throttle.attempt_succeeded",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn attempt_succeeded(&self, key: &str) -> Result<(), DbErr> {
        login_failure::Entity::update_many()
            .col_expr(
                login_failure::Column::Failures,
                Expr::col(login_failure::Column::Failures).sub(1),
            )
            .filter(login_failure::Column::Id.eq(key))
            .filter(login_failure::Column::Failures.gt(0))
            .exec(self.connection())
            .await
            .map(|_| ())
    }

    /// Forgets the failures of `key` (a password reset).
    #[tracing::instrument(
        name = "db.throttle.clear",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn clear_failures(&self, key: &str) -> Result<(), DbErr> {
        login_failure::Entity::delete_by_id(key.to_owned())
            .exec(self.connection())
            .await
            .map(|_| ())
    }

    /// Deletes windows that ended before `now`. Returns rows deleted.
    #[tracing::instrument(
        name = "db.throttle.prune",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn prune_failures(&self, now: i64) -> Result<u64, DbErr> {
        login_failure::Entity::delete_many()
            .filter(login_failure::Column::WindowStartedAt.lte(now - WINDOW))
            .exec(self.connection())
            .await
            .map(|done| done.rows_affected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_the_identifier_as_typed_lower_cased_and_hashed() {
        assert_eq!(throttle_key(" Alice "), throttle_key("alice"));
        assert_ne!(throttle_key("alice"), throttle_key("alice@example.com"));
        assert_eq!(throttle_key("alice").len(), 64);
        assert!(!throttle_key("alice").contains("alice"));
    }
}

//! The per-account throttle (`LOGIN_FAILURES_PER_HOUR`): failed password
//! checks counted per identifier in the database, so every server sharing
//! it shares the count. An attempt is counted when it starts (atomically,
//! so concurrent guesses can't slip past the limit together) and taken back
//! when the password proves right.

use entity::login_failure;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use sha2::{Digest, Sha256};

use super::Store;

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

impl Store {
    /// Counts an attempt for `key` at `now` (Unix seconds): allowed while
    /// fewer than `limit` were counted in the window, which starts at the
    /// first attempt and lasts [`WINDOW`].
    #[tracing::instrument(name = "db.throttle.begin_attempt", level = "debug", skip_all, err)]
    pub async fn begin_attempt(&self, key: &str, now: i64, limit: u32) -> Result<Attempt, DbErr> {
        let expired = now - WINDOW;
        let limit = i64::from(limit);
        let column = |column| Expr::col((login_failure::Entity, column));
        let (failures, started) = (
            login_failure::Column::Failures,
            login_failure::Column::WindowStartedAt,
        );
        // A window over starts again; past the limit the count stops at
        // limit + 1: "refused".
        let counted = Expr::case(column(started).lte(expired), 1)
            .case(column(failures).gt(limit), column(failures))
            .finally(column(failures).add(1));
        let window = Expr::case(column(started).lte(expired), now).finally(column(started));
        let mut insert = Query::insert();
        insert
            .into_table(login_failure::Entity)
            .columns([login_failure::Column::Id, failures, started])
            .values([key.into(), 1.into(), now.into()])
            .map_err(|err| DbErr::Custom(err.to_string()))?
            .on_conflict(
                OnConflict::column(login_failure::Column::Id)
                    .value(failures, counted)
                    .value(started, window)
                    .to_owned(),
            )
            .returning(Query::returning().columns([failures, started]));
        let db = self.connection();
        let row = db
            .query_one_raw(db.get_database_backend().build(&insert))
            .await?
            .ok_or_else(|| DbErr::RecordNotFound("the throttle's row".into()))?;
        let counted: i32 = row.try_get("", "failures")?;
        let started: i64 = row.try_get("", "window_started_at")?;
        if i64::from(counted) > limit {
            let retry_after = u64::try_from((started + WINDOW - now).clamp(1, WINDOW)).unwrap_or(1);
            return Ok(Attempt::Refused { retry_after });
        }
        Ok(Attempt::Allowed)
    }

    /// The attempt counted for `key` proved right: it was no failure.
    #[tracing::instrument(name = "db.throttle.attempt_succeeded", level = "debug", skip_all, err)]
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
    #[tracing::instrument(name = "db.throttle.clear", level = "debug", skip_all, err)]
    pub async fn clear_failures(&self, key: &str) -> Result<(), DbErr> {
        login_failure::Entity::delete_by_id(key.to_owned())
            .exec(self.connection())
            .await
            .map(|_| ())
    }

    /// Deletes windows that ended before `now`. Returns rows deleted.
    #[tracing::instrument(name = "db.throttle.prune", level = "debug", skip_all, err)]
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

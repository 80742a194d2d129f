//! The token ledger on SeaORM's pool: PostgreSQL's path, and SQLite's when
//! it can't run in place (an in-memory database, or the file was busy).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use entity::{api_key, revocation, session, user};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, FromQueryResult,
    QueryFilter, QuerySelect, Set, SqlErr, Statement, TransactionTrait,
};
use uuid::Uuid;

use super::{KeyHolder, Rotation, RotationRules, reuse};
use crate::events::Source;
use crate::store::TokenRef;
use crate::store::append_in;

#[derive(Clone)]
pub(crate) struct PoolLedger {
    db: DatabaseConnection,
    /// The guard's SQL in the pool's dialect, built once: sea_query built it
    /// anew for every request, a tenth of `me`'s CPU on PostgreSQL.
    guard_sql: Arc<str>,
}

impl PoolLedger {
    pub(crate) fn new(db: DatabaseConnection) -> Self {
        let nil = Uuid::nil();
        let guard_sql = user_unless_revoked(nil, nil, nil)
            .into_statement(db.get_database_backend())
            .sql
            .into();
        Self { db, guard_sql }
    }

    pub(crate) async fn user_unless_revoked(
        &self,
        user_id: Uuid,
        sid: Uuid,
        jti: Uuid,
    ) -> Result<Option<user::Profile>, DbErr> {
        // The placeholders in the order `user_unless_revoked` binds them
        // (a unit test below holds it to that).
        let statement = Statement::from_sql_and_values(
            self.db.get_database_backend(),
            &*self.guard_sql,
            [user_id.into(), sid.into(), jti.into()],
        );
        Ok(user::Profile::find_by_statement(statement)
            .all(&self.db)
            .await?
            .into_iter()
            .next())
    }

    /// See [`super::TokenLedger::key_holder`].
    pub(crate) async fn key_holder(&self, key_hash: &str) -> Result<Option<KeyHolder>, DbErr> {
        Ok(key_holder(key_hash)
            .all(&self.db)
            .await?
            .into_iter()
            .next()
            .map(HolderRow::into_holder))
    }

    /// `SELECT 1` on the pool: its round trip.
    pub(crate) async fn round_trip(&self) -> Result<(), DbErr> {
        let backend = self.db.get_database_backend();
        self.db
            .query_one_raw(sea_orm::Statement::from_string(backend, "SELECT 1"))
            .await
            .map(|_| ())
    }

    pub(crate) async fn is_revoked(&self, sid: Uuid, jti: Uuid) -> Result<bool, DbErr> {
        Ok(!self.revocations_of(sid, jti).await?.is_empty())
    }

    /// The ids among `sid` and `jti` that the blacklist holds.
    async fn revocations_of(&self, sid: Uuid, jti: Uuid) -> Result<Vec<Uuid>, DbErr> {
        revocation::Entity::find()
            .select_only()
            .column(revocation::Column::Id)
            .filter(revocation::Column::Id.is_in([sid, jti]))
            .into_tuple()
            .all(&self.db)
            .await
    }

    /// See [`super::TokenLedger::rotate`]. A read first turns away what is
    /// plainly dead without taking a write lock. The write is one
    /// transaction whose first statement inserts the token's `jti`:
    /// concurrent rotations of one token serialise on that primary key and
    /// exactly one gets through; the session update that follows only
    /// matches while the session has not ended, so a logout racing the
    /// refresh wins.
    pub(crate) async fn rotate(
        &self,
        old: &TokenRef,
        now: DateTime<Utc>,
        new_expires_at: i64,
        rules: RotationRules,
        source: &Source,
    ) -> Result<Rotation, DbErr> {
        let Some(user) = self.user_unless_revoked(old.user, old.sid, old.jti).await? else {
            return self.why_not(old, now, rules.grace, source).await;
        };
        if rules.refuses(&user) {
            return Ok(Rotation::Unverified);
        }
        let txn = self.db.begin().await?;
        let marked = revocation::Entity::insert(revocation::ActiveModel {
            id: Set(old.jti),
            kind: Set(revocation::Kind::Token),
            revoked_at: Set(now.timestamp()),
            expires_at: Set(old.exp),
        })
        .exec_without_returning(&txn)
        .await;
        if let Err(err) = marked {
            txn.rollback().await?;
            return match err.sql_err() {
                // A concurrent rotation of this token committed first.
                Some(SqlErr::UniqueConstraintViolation(_)) => {
                    self.why_not(old, now, rules.grace, source).await
                }
                _ => Err(err),
            };
        }
        let ended = Query::select()
            .expr(Expr::cust("1"))
            .from(revocation::Entity)
            .and_where(revocation::Column::Id.eq(old.sid))
            .to_owned();
        let moved = session::Entity::update_many()
            .col_expr(session::Column::LastUsedAt, now.into())
            .col_expr(session::Column::ExpiresAt, new_expires_at.into())
            .filter(session::Column::Id.eq(old.sid))
            .filter(Expr::exists(ended).not())
            .exec(&txn)
            .await?;
        if moved.rows_affected == 0 {
            txn.rollback().await?;
            return Ok(Rotation::Revoked);
        }
        txn.commit().await?;
        Ok(Rotation::Rotated(user))
    }

    /// Why a refresh token's user row did not come back: used (which ends
    /// the session, unless within `grace` seconds of its rotation), ended,
    /// or its user gone.
    async fn why_not(
        &self,
        old: &TokenRef,
        now: DateTime<Utc>,
        grace: i64,
        source: &Source,
    ) -> Result<Rotation, DbErr> {
        let rows: Vec<(Uuid, i64)> = revocation::Entity::find()
            .select_only()
            .column(revocation::Column::Id)
            .column(revocation::Column::RevokedAt)
            .filter(revocation::Column::Id.is_in([old.sid, old.jti]))
            .into_tuple()
            .all(&self.db)
            .await?;
        let revoked_at = |id: Uuid| rows.iter().find(|row| row.0 == id).map(|row| row.1);
        if revoked_at(old.sid).is_some() {
            return Ok(Rotation::Revoked);
        }
        match revoked_at(old.jti) {
            Some(rotated) if grace > 0 && now.timestamp() - rotated < grace => {
                Ok(Rotation::Superseded)
            }
            Some(_) => {
                // The session ends with its `session.ended`, in one
                // transaction (the in-place path's `reuse_event` too).
                let txn = self.db.begin().await?;
                let ended = crate::store::sessions::end_each(
                    &txn,
                    vec![(old.sid, old.exp)],
                    now.timestamp(),
                    |_| reuse(old),
                )
                .await?;
                let written = append_in(&txn, source, now, &ended).await?;
                txn.commit().await?;
                written.log();
                Ok(Rotation::Reused)
            }
            None => Ok(Rotation::UnknownUser),
        }
    }

    /// See [`super::TokenLedger::prune`].
    pub(crate) async fn prune(&self, cutoff: i64) -> Result<u64, DbErr> {
        let sessions = session::Entity::delete_many()
            .filter(session::Column::ExpiresAt.lt(cutoff))
            .exec(&self.db)
            .await?;
        let session_lives = Query::select()
            .expr(Expr::cust("1"))
            .from(session::Entity)
            .and_where(
                Expr::col((session::Entity, session::Column::Id))
                    .equals((revocation::Entity, revocation::Column::Id)),
            )
            .to_owned();
        let revocations = revocation::Entity::delete_many()
            .filter(revocation::Column::ExpiresAt.lt(cutoff))
            .filter(Expr::exists(session_lives).not())
            .exec(&self.db)
            .await?;
        Ok(revocations.rows_affected + sessions.rows_affected)
    }
}

/// The guard's query: the user's profile unless a revocation row names the
/// token's `sid` or `jti`. (Not `.one()`; see `Store::unique`.)
pub(super) fn user_unless_revoked(
    user_id: Uuid,
    sid: Uuid,
    jti: Uuid,
) -> sea_orm::Selector<sea_orm::SelectModel<user::Profile>> {
    let revoked = Query::select()
        .expr(Expr::cust("1"))
        .from(revocation::Entity)
        .and_where(revocation::Column::Id.is_in([sid, jti]))
        .to_owned();
    user::Entity::find_by_id(user_id)
        .filter(Expr::exists(revoked).not())
        .into_partial_model::<user::Profile>()
}

/// A row of [`key_holder`].
#[derive(Debug, FromQueryResult)]
struct HolderRow {
    id: Uuid,
    username: String,
    email: String,
    role: user::Role,
    created_at: DateTime<Utc>,
    email_verified: bool,
    key_id: Uuid,
    expires_at: i64,
    revoked_at: Option<i64>,
    last_used_at: Option<i64>,
}

impl HolderRow {
    fn into_holder(self) -> KeyHolder {
        KeyHolder {
            user: user::Profile {
                id: self.id,
                username: self.username,
                email: self.email,
                role: self.role,
                created_at: self.created_at,
                email_verified: self.email_verified,
            },
            key_id: self.key_id,
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
            last_used_at: self.last_used_at,
        }
    }
}

/// The guard's query for an API key: the key's row and its user's profile
/// (no password hash), joined.
fn key_holder(key_hash: &str) -> sea_orm::Selector<sea_orm::SelectModel<HolderRow>> {
    api_key::Entity::find()
        .select_only()
        .column_as(user::Column::Id, "id")
        .column(user::Column::Username)
        .column(user::Column::Email)
        .column(user::Column::Role)
        .column_as(user::Column::CreatedAt, "created_at")
        .column(user::Column::EmailVerified)
        .column_as(api_key::Column::Id, "key_id")
        .column(api_key::Column::ExpiresAt)
        .column(api_key::Column::RevokedAt)
        .column(api_key::Column::LastUsedAt)
        .inner_join(user::Entity)
        .filter(api_key::Column::KeyHash.eq(key_hash))
        .into_model::<HolderRow>()
}

#[cfg(test)]
mod tests {
    use sea_orm::{DbBackend, Value};

    use super::*;

    /// The guard's query reads no password hash, and binds the user, the
    /// session and the token in that order (`PoolLedger` keeps the SQL and
    /// binds them so).
    #[test]
    fn the_guard_s_query_reads_no_password_hash_and_binds_user_session_token() {
        let (id, sid, jti) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        for backend in [DbBackend::Sqlite, DbBackend::Postgres] {
            let statement = user_unless_revoked(id, sid, jti).into_statement(backend);
            let sql = statement.to_string();
            assert!(sql.contains("username"), "{sql}");
            assert!(!sql.contains("password_hash"), "{sql}");
            let expected: Vec<Value> = vec![id.into(), sid.into(), jti.into()];
            assert_eq!(
                statement.values.expect("bound values").0,
                expected,
                "{backend:?}"
            );
        }
    }
}

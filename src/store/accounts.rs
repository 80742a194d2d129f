//! Sessions of a user, password changes, the user list and roles.

use entity::{revocation, session, user};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, TransactionTrait,
};
use uuid::Uuid;

use super::Store;

#[derive(Debug, thiserror::Error)]
pub enum SetRoleError {
    #[error("the last admin can't be demoted")]
    LastAdmin,
    #[error("no such user")]
    UnknownUser,
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Sessions of `user_id` that have not ended and not expired at `now` (Unix seconds).
fn live_sessions_of(user_id: Uuid, now: i64) -> sea_orm::Select<session::Entity> {
    let ended = Query::select()
        .expr(Expr::val(1))
        .from(revocation::Entity)
        .and_where(
            Expr::col((revocation::Entity, revocation::Column::Id))
                .equals((session::Entity, session::Column::Id)),
        )
        .to_owned();
    session::Entity::find()
        .filter(session::Column::UserId.eq(user_id))
        .filter(session::Column::ExpiresAt.gte(now))
        .filter(Expr::exists(ended).not())
}

/// Ends `sessions` in one statement: a revocation row per session, kept until
/// the session's last token expires. Already-ended ones are skipped.
async fn end_all(
    db: &impl ConnectionTrait,
    sessions: &[session::Model],
    now: i64,
) -> Result<(), DbErr> {
    if sessions.is_empty() {
        return Ok(());
    }
    let rows = sessions.iter().map(|s| revocation::ActiveModel {
        id: Set(s.id),
        kind: Set(revocation::Kind::Session),
        revoked_at: Set(now),
        expires_at: Set(s.expires_at),
    });
    revocation::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::column(revocation::Column::Id)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(db)
        .await
        .map(|_| ())
}

impl Store {
    /// The live sessions of a user, newest first.
    pub async fn live_sessions(
        &self,
        user_id: Uuid,
        now: i64,
    ) -> Result<Vec<session::Model>, DbErr> {
        live_sessions_of(user_id, now)
            .order_by_desc(session::Column::CreatedAt)
            .order_by_desc(session::Column::Id)
            .all(&self.db)
            .await
    }

    /// Ends every live session of `user_id` but `keep`; returns how many ended.
    pub async fn end_sessions_of(
        &self,
        user_id: Uuid,
        keep: Option<Uuid>,
        now: i64,
    ) -> Result<u64, DbErr> {
        let mut sessions = live_sessions_of(user_id, now);
        if let Some(keep) = keep {
            sessions = sessions.filter(session::Column::Id.ne(keep));
        }
        let sessions = sessions.all(&self.db).await?;
        end_all(&self.db, &sessions, now).await?;
        Ok(sessions.len() as u64)
    }

    /// Is `sid` a live session of `user_id`?
    pub async fn owns_live_session(
        &self,
        user_id: Uuid,
        sid: Uuid,
        now: i64,
    ) -> Result<bool, DbErr> {
        Ok(self
            .unique(live_sessions_of(user_id, now).filter(session::Column::Id.eq(sid)))
            .await?
            .is_some())
    }

    /// Replaces the password hash `verified` (the one the current password
    /// was checked against) with `hash` and ends every other live session, in
    /// one transaction. `None`, and nothing changed, when the stored hash is
    /// no longer `verified` (another change won). Else how many sessions ended.
    ///
    /// The update comes first: it takes the user row's lock (PostgreSQL) or
    /// the write lock (SQLite), so a login racing it either committed its
    /// session before, and is ended here, or checks the new hash after
    /// (see [`Store::start_session`]).
    pub async fn change_password(
        &self,
        user_id: Uuid,
        verified: &str,
        hash: String,
        keep: Uuid,
        now: i64,
    ) -> Result<Option<u64>, DbErr> {
        let txn = self.db.begin().await?;
        let updated = user::Entity::update_many()
            .col_expr(user::Column::PasswordHash, Expr::value(hash))
            .filter(user::Column::Id.eq(user_id))
            .filter(user::Column::PasswordHash.eq(verified))
            .exec(&txn)
            .await?;
        if updated.rows_affected == 0 {
            txn.rollback().await?;
            return Ok(None);
        }
        let others = live_sessions_of(user_id, now)
            .filter(session::Column::Id.ne(keep))
            .all(&txn)
            .await?;
        end_all(&txn, &others, now).await?;
        txn.commit().await?;
        Ok(Some(others.len() as u64))
    }

    /// Users in a stable order (by id: UUIDv7, so oldest first), after `after`.
    pub async fn users_page(
        &self,
        after: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<user::Profile>, DbErr> {
        let mut query = user::Entity::find()
            .order_by_asc(user::Column::Id)
            .limit(limit);
        if let Some(after) = after {
            query = query.filter(user::Column::Id.gt(after));
        }
        query.into_partial_model().all(&self.db).await
    }

    pub async fn count_users(&self) -> Result<u64, DbErr> {
        user::Entity::find().count(&self.db).await
    }

    pub async fn find_user(&self, id: Uuid) -> Result<Option<user::Model>, DbErr> {
        self.unique(user::Entity::find_by_id(id)).await
    }

    /// Gives `user_id` `role`, refusing to leave the service without an admin.
    /// Concurrent demotions serialise: on PostgreSQL by locking the admin rows
    /// first, on SQLite because the first statement is a write.
    pub async fn set_role(
        &self,
        user_id: Uuid,
        role: user::Role,
    ) -> Result<user::Model, SetRoleError> {
        let txn = self.db.begin().await?;
        if txn.get_database_backend() == DatabaseBackend::Postgres {
            user::Entity::find()
                .filter(user::Column::Role.eq(user::Role::Admin))
                .lock_exclusive()
                .all(&txn)
                .await?;
        }
        let updated = user::Entity::update_many()
            .col_expr(user::Column::Role, Expr::value(role))
            .filter(user::Column::Id.eq(user_id))
            .exec(&txn)
            .await?;
        if updated.rows_affected == 0 {
            txn.rollback().await?;
            return Err(SetRoleError::UnknownUser);
        }
        let admins = user::Entity::find()
            .filter(user::Column::Role.eq(user::Role::Admin))
            .count(&txn)
            .await?;
        if admins == 0 {
            txn.rollback().await?;
            return Err(SetRoleError::LastAdmin);
        }
        let user = super::unique(&txn, user::Entity::find_by_id(user_id))
            .await?
            .ok_or(SetRoleError::UnknownUser)?;
        txn.commit().await?;
        Ok(user)
    }
}

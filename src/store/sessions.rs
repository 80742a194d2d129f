//! Sessions: started by a login, listed, ended one by one or all at once.

use chrono::{DateTime, Utc};
use entity::{revocation, session, user};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, Set,
};
use uuid::Uuid;

use super::Store;
use super::ledger::end_sessions;

/// The session row written when a login (or signup) starts a session.
pub struct NewSession {
    pub id: Uuid,
    pub user_agent: Option<String>,
    pub now: DateTime<Utc>,
    /// Unix seconds when its newest token expires.
    pub expires_at: i64,
}

/// Sessions of `user_id` that have not ended and not expired at `now` (Unix seconds).
pub(super) fn live_sessions_of(user_id: Uuid, now: i64) -> sea_orm::Select<session::Entity> {
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

impl Store {
    /// Starts a session for a login that verified `user`'s password against
    /// `verified_hash`, only if that is still the user's hash: a login racing
    /// a password change either starts before the change (and the change
    /// ends it) or starts nothing. One statement, so it can't interleave: on
    /// SQLite it takes the write lock, and on PostgreSQL it locks the user
    /// row (`FOR SHARE`), waiting for a change under way and checking the
    /// hash again once that commits. False when the hash changed.
    #[tracing::instrument(
        name = "db.session.start",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn start_session(
        &self,
        user_id: Uuid,
        verified_hash: &str,
        new: NewSession,
    ) -> Result<bool, DbErr> {
        let mut source = Query::select();
        source
            .exprs([
                Expr::val(new.id),
                Expr::val(user_id),
                Expr::val(new.now),
                Expr::val(new.now),
                Expr::val(new.expires_at),
                Expr::val(new.user_agent),
            ])
            .from(user::Entity)
            .and_where(user::Column::Id.eq(user_id))
            .and_where(user::Column::PasswordHash.eq(verified_hash));
        if self.db.get_database_backend() == DbBackend::Postgres {
            source.lock_shared();
        }
        let insert = Query::insert()
            .into_table(session::Entity)
            .columns([
                session::Column::Id,
                session::Column::UserId,
                session::Column::CreatedAt,
                session::Column::LastUsedAt,
                session::Column::ExpiresAt,
                session::Column::UserAgent,
            ])
            .select_from(source)
            .map_err(|err| DbErr::Custom(err.to_string()))?
            .to_owned();
        let inserted = self.db.execute(&insert).await?;
        Ok(inserted.rows_affected() == 1)
    }

    /// The live sessions of a user, newest first.
    #[tracing::instrument(
        name = "db.session.list_live",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
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
    #[tracing::instrument(
        name = "db.session.end_all_of",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
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
        end_sessions(&self.db, sessions.iter().map(|s| (s.id, s.expires_at)), now).await?;
        Ok(sessions.len() as u64)
    }

    /// When live session `sid` of `user_id` was signed in (its row's
    /// creation: a refresh never changes it); `None` when it is not one.
    #[tracing::instrument(
        name = "db.session.signed_in_at",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn signed_in_at(
        &self,
        user_id: Uuid,
        sid: Uuid,
        now: i64,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, DbErr> {
        Ok(self
            .unique(live_sessions_of(user_id, now).filter(session::Column::Id.eq(sid)))
            .await?
            .map(|session| session.created_at))
    }

    /// Is `sid` a live session of `user_id`?
    #[tracing::instrument(
        name = "db.session.owns",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
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
}

pub(super) async fn insert_session(
    db: &impl sea_orm::ConnectionTrait,
    user_id: Uuid,
    new: NewSession,
) -> Result<(), DbErr> {
    session::ActiveModel {
        id: Set(new.id),
        user_id: Set(user_id),
        created_at: Set(new.now),
        last_used_at: Set(new.now),
        expires_at: Set(new.expires_at),
        user_agent: Set(new.user_agent),
    }
    .insert(db)
    .await
    .map(|_| ())
}

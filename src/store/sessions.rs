//! Sessions: started by a login, listed, ended one by one or all at once.

use chrono::{DateTime, Utc};
use entity::{revocation, session, user};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, Set, TransactionTrait,
};
use uuid::Uuid;

use super::Store;
use super::events::append_in;
use crate::events::{Actor, EndReason, Event, Kind, Method, Source};

/// The session row written when a login (or signup) starts a session.
pub struct NewSession {
    pub id: Uuid,
    pub user_agent: Option<String>,
    pub now: DateTime<Utc>,
    /// Unix seconds when its newest token expires.
    pub expires_at: i64,
}

/// Ends each of `sessions` (id, expiry of its newest token) that has not
/// ended yet, and returns an event for each one it ended: `ended(id)`.
/// Ending an ended session writes nothing, so each session's end is
/// recorded once, whichever path ends it first.
pub(super) async fn end_each(
    db: &impl ConnectionTrait,
    sessions: Vec<(Uuid, i64)>,
    now: i64,
    ended: impl Fn(Uuid) -> Event,
) -> Result<Vec<Event>, DbErr> {
    let mut events = Vec::new();
    for (sid, expires_at) in sessions {
        let inserted = revocation::Entity::insert(revocation::ActiveModel {
            id: Set(sid),
            kind: Set(revocation::Kind::Session),
            revoked_at: Set(now),
            expires_at: Set(expires_at),
        })
        .on_conflict(
            OnConflict::column(revocation::Column::Id)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
        if inserted == 1 {
            events.push(ended(sid));
        }
    }
    Ok(events)
}

/// The `session.ended` of `user_id`'s session `sid`, by the account itself.
pub(super) fn ended_by_user(user_id: Uuid, reason: EndReason) -> impl Fn(Uuid) -> Event {
    move |sid| Event::by_user(Kind::SessionEnded { reason }, user_id).in_session(Some(sid))
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
        method: Method,
        source: &Source,
    ) -> Result<bool, DbErr> {
        let (sid, at) = (new.id, new.now);
        let mut rows = Query::select();
        rows.exprs([
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
            rows.lock_shared();
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
            .select_from(rows)
            .map_err(|err| DbErr::Custom(err.to_string()))?
            .to_owned();
        let txn = self.db.begin().await?;
        if txn.execute(&insert).await?.rows_affected() != 1 {
            txn.rollback().await?;
            return Ok(false);
        }
        let signed_in =
            Event::by_user(Kind::LoginSucceeded { method }, user_id).in_session(Some(sid));
        let written = append_in(&txn, source, at, &[signed_in]).await?;
        txn.commit().await?;
        written.log();
        Ok(true)
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

    /// Ends every live session of `user_id` but `keep`, each with its
    /// `session.ended` (`reason`, by the account); returns how many ended.
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
        reason: EndReason,
        source: &Source,
        at: DateTime<Utc>,
    ) -> Result<u64, DbErr> {
        let now = at.timestamp();
        let txn = self.db.begin().await?;
        // A write first: on SQLite it takes the write lock before the read
        // (a read first could not become a write once another commits).
        user::Entity::update_many()
            .col_expr(
                user::Column::EmailVerified,
                Expr::col(user::Column::EmailVerified),
            )
            .filter(user::Column::Id.eq(user_id))
            .exec(&txn)
            .await?;
        let mut sessions = live_sessions_of(user_id, now);
        if let Some(keep) = keep {
            sessions = sessions.filter(session::Column::Id.ne(keep));
        }
        let sessions = sessions.all(&txn).await?;
        let ended = end_each(
            &txn,
            sessions.iter().map(|s| (s.id, s.expires_at)).collect(),
            now,
            ended_by_user(user_id, reason),
        )
        .await?;
        let written = append_in(&txn, source, at, &ended).await?;
        txn.commit().await?;
        written.log();
        Ok(ended.len() as u64)
    }

    /// Ends session `sid` of `user_id` (`token_exp`: the expiry of the
    /// token that asked) with its `session.ended` (`reason`, by `actor`),
    /// unless it ended already; returns whether this ended it.
    #[tracing::instrument(
        name = "db.session.end",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn end_session(
        &self,
        user_id: Uuid,
        sid: Uuid,
        token_exp: i64,
        reason: EndReason,
        (source, actor): (&Source, Actor),
        at: DateTime<Utc>,
    ) -> Result<bool, DbErr> {
        let txn = self.db.begin().await?;
        let ended = end_each(&txn, vec![(sid, token_exp)], at.timestamp(), |sid| {
            Event::new(Kind::SessionEnded { reason }, Some(user_id), actor).in_session(Some(sid))
        })
        .await?;
        let written = append_in(&txn, source, at, &ended).await?;
        txn.commit().await?;
        written.log();
        Ok(!ended.is_empty())
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

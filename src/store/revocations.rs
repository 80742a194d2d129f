use chrono::{DateTime, Utc};
use entity::{revocation, session, user};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, Set, SqlErr, TransactionTrait};
use uuid::Uuid;

use super::Store;
use super::TokenRef;
use super::inline::Marked;

/// How long a checkpoint waits for SQLite's other users, and a rotation for
/// a checkpoint.
const CHECKPOINT_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// What became of a refresh token presented for rotation.
#[derive(Debug)]
pub enum Rotation {
    /// It was live: now it is revoked, and the session's new tokens may be issued.
    Rotated(user::Profile),
    /// It had been rotated before: its session has now been ended.
    Reused,
    /// Its session had ended.
    Revoked,
    /// Its user is gone.
    UnknownUser,
}

impl Store {
    /// Revokes the presented refresh token and moves its session on.
    ///
    /// A read first turns away what is plainly dead (a used token, an ended
    /// session, a user gone) without taking the write lock. The write is one
    /// transaction whose first statement inserts the token's `jti`: concurrent
    /// rotations of one token serialise on that primary key and exactly one
    /// gets through; the session update that follows only matches while the
    /// session has not ended, so a logout racing the refresh wins. On a SQLite
    /// file that transaction runs in place (see `inline.rs`), and through the
    /// pool only when SQLite is busy.
    pub async fn rotate(
        &self,
        old: &TokenRef,
        now: DateTime<Utc>,
        new_expires_at: i64,
    ) -> Result<Rotation, DbErr> {
        let mut in_place = self.in_place(|s| s.rotate(old, now, new_expires_at));
        if in_place.is_none()
            && let Some(inline) = &self.inline
            && inline.checkpoint_finished(CHECKPOINT_WAIT).await
        {
            in_place = self.in_place(|s| s.rotate(old, now, new_expires_at));
        }
        match in_place {
            Some(Marked::Rotated {
                user,
                checkpoint_due,
            }) => {
                if checkpoint_due {
                    self.checkpoint_soon();
                }
                return Ok(Rotation::Rotated(*user));
            }
            Some(Marked::NotLive) => return self.why_not(old, now).await,
            Some(Marked::AlreadyUsed) => {
                self.end_session(old.sid, old.exp, now.timestamp()).await?;
                return Ok(Rotation::Reused);
            }
            Some(Marked::SessionEnded) => return Ok(Rotation::Revoked),
            None => {}
        }
        let Some(user) = self.user_unless_revoked(old.user, old.sid, old.jti).await? else {
            return self.why_not(old, now).await;
        };
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
                Some(SqlErr::UniqueConstraintViolation(_)) => {
                    self.end_session(old.sid, old.exp, now.timestamp()).await?;
                    Ok(Rotation::Reused)
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

    /// Checkpoints the SQLite WAL off the runtime (the writes made in place
    /// never checkpoint themselves: that would fsync on the runtime's thread).
    fn checkpoint_soon(&self) {
        let Some(inline) = self.inline.clone() else {
            return;
        };
        tokio::task::spawn_blocking(move || match inline.checkpoint(CHECKPOINT_WAIT) {
            Ok(()) => {}
            Err(err) if super::inline::is_busy(&err) => {
                tracing::debug!("WAL checkpoint postponed: the database was busy");
            }
            Err(err) => tracing::warn!(error = %err, "WAL checkpoint failed"),
        });
    }

    /// Why a refresh token's user row did not come back: used, ended or unknown.
    async fn why_not(&self, old: &TokenRef, now: DateTime<Utc>) -> Result<Rotation, DbErr> {
        let rows = self.revocations_of(old.sid, old.jti).await?;
        if rows.iter().any(|r| r.id == old.sid) {
            Ok(Rotation::Revoked)
        } else if rows.iter().any(|r| r.id == old.jti) {
            self.end_session(old.sid, old.exp, now.timestamp()).await?;
            Ok(Rotation::Reused)
        } else {
            Ok(Rotation::UnknownUser)
        }
    }

    /// Ends session `sid` at `now`: every token carrying it is refused from
    /// now on. Ending an ended session is a no-op. `token_exp` is the expiry
    /// of the token that asked; the row outlives it as long as the session
    /// row lives (see [`Store::prune`]), so nothing needs reading first.
    pub async fn end_session(&self, sid: Uuid, token_exp: i64, now: i64) -> Result<(), DbErr> {
        revocation::Entity::insert(revocation::ActiveModel {
            id: Set(sid),
            kind: Set(revocation::Kind::Session),
            revoked_at: Set(now),
            expires_at: Set(token_exp),
        })
        .on_conflict(
            OnConflict::column(revocation::Column::Id)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await
        .map(|_| ())
    }

    /// Is a token with this `sid` and `jti` revoked?
    pub async fn is_revoked(&self, sid: Uuid, jti: Uuid) -> Result<bool, DbErr> {
        if let Some(revoked) = self.in_place(|r| r.is_revoked(sid, jti)) {
            return Ok(revoked);
        }
        Ok(!self.revocations_of(sid, jti).await?.is_empty())
    }

    /// The blacklist rows covering a token: its session's, its own, or none.
    async fn revocations_of(&self, sid: Uuid, jti: Uuid) -> Result<Vec<revocation::Model>, DbErr> {
        revocation::Entity::find()
            .filter(revocation::Column::Id.is_in([sid, jti]))
            .all(&self.db)
            .await
    }

    /// Deletes revocations and sessions whose every token expired before `cutoff`
    /// (Unix seconds; the caller subtracts the leeway). Returns rows deleted.
    ///
    /// A session's revocation goes only with its session row, whatever its
    /// own `expires_at` says. That was read when the session ended, and a
    /// refresh committing meanwhile may have moved the session on (its
    /// tokens are refused, but they expire later): the session row always
    /// holds the expiry of the newest token, so while it lives, so does the
    /// revocation, and the session can never come back.
    pub async fn prune(&self, cutoff: i64) -> Result<u64, DbErr> {
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

#[cfg(test)]
mod tests {
    use migration::{Migrator, MigratorTrait};
    use sea_orm::{EntityTrait, PaginatorTrait};

    use super::*;

    async fn store() -> Store {
        let db = crate::store::connect("sqlite::memory:", Default::default())
            .await
            .unwrap();
        Migrator::up(&db, None).await.unwrap();
        Store::open(db).await.unwrap()
    }

    fn claims(exp: i64) -> TokenRef {
        TokenRef {
            user: Uuid::new_v4(),
            sid: Uuid::new_v4(),
            exp,
            jti: Uuid::new_v4(),
        }
    }

    #[tokio::test]
    async fn prune_deletes_only_rows_whose_tokens_all_expired() {
        let store = store().await;
        let expired = claims(1_000);
        let live = claims(5_000);
        store
            .end_session(expired.sid, expired.exp, 0)
            .await
            .unwrap();
        store.end_session(live.sid, live.exp, 0).await.unwrap();
        assert!(store.is_revoked(expired.sid, expired.jti).await.unwrap());

        let deleted = store.prune(2_000).await.unwrap();
        assert_eq!(deleted, 1);
        assert!(!store.is_revoked(expired.sid, expired.jti).await.unwrap());
        assert!(store.is_revoked(live.sid, live.jti).await.unwrap());
        let left = revocation::Entity::find()
            .count(store.connection())
            .await
            .unwrap();
        assert_eq!(left, 1);
    }

    #[tokio::test]
    async fn a_session_s_revocation_lives_as_long_as_the_session_row() {
        use crate::domain::{Email, Username};
        use crate::store::{NewSession, NewUser};
        use sea_orm::{ActiveModelTrait, IntoActiveModel};

        let store = store().await;
        let sid = Uuid::new_v4();
        let user = store
            .create_user(
                NewUser {
                    id: Uuid::now_v7(),
                    username: Username::parse("pruned").unwrap(),
                    email: Email::parse("pruned@example.com").unwrap(),
                    password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
                },
                NewSession {
                    id: sid,
                    user_agent: None,
                    now: Utc::now(),
                    expires_at: 5_000,
                },
            )
            .await
            .unwrap();
        store.end_session(sid, 5_000, 0).await.unwrap();
        // A refresh that committed between the end's read and its insert.
        let mut session = session::Entity::find_by_id(sid)
            .one(store.connection())
            .await
            .unwrap()
            .unwrap()
            .into_active_model();
        session.expires_at = Set(9_000);
        session.update(store.connection()).await.unwrap();

        assert_eq!(store.prune(6_000).await.unwrap(), 0);
        let token = claims(9_000);
        assert!(
            store.is_revoked(sid, token.jti).await.unwrap(),
            "still ended"
        );
        assert_eq!(
            store.prune(9_001).await.unwrap(),
            2,
            "the session and its end"
        );
        assert!(store.find_user(user.id).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn ending_a_session_twice_is_a_no_op() {
        let store = store().await;
        let c = claims(5_000);
        store.end_session(c.sid, c.exp, 0).await.unwrap();
        store.end_session(c.sid, c.exp, 0).await.unwrap();
        let rows = revocation::Entity::find()
            .count(store.connection())
            .await
            .unwrap();
        assert_eq!(rows, 1);
    }
}

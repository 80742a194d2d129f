//! The hot path on SQLite, run on the calling thread.
//!
//! sqlx runs each SQLite connection on a worker thread of its own: every
//! statement is a message to that thread and a wake-up back, and the pool
//! pings the connection again as it is returned. For the guard's query that
//! hand-off costs ten times what SQLite does (see the README's benchmarks):
//! SQLite answers a primary-key probe in a few microseconds, less than one
//! context switch. So the reads every protected request makes, and the write
//! of a refresh, go through connections of their own on the same file, used
//! in place.
//!
//! Nothing is cached: every call reads the tables, so a revocation committed
//! by any process on the file counts on the next request. Readers are
//! `query_only`; in WAL mode they neither wait for the writer nor block it.
//! Nothing here waits for a lock (busy timeout 0): when SQLite answers busy,
//! the caller does the same work through the pool, which waits its turn on
//! sqlx's threads. The writer never checkpoints on its own: the caller runs
//! [`InlineSqlite::checkpoint`] on a blocking thread every so many commits
//! (see [`Marked::Rotated`]), so no fsync runs on the runtime's thread.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError, TryLockError};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use entity::{revocation, user};
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, Row, TransactionBehavior};
use sea_orm::{
    ActiveEnum, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement, TryGetable,
};
use uuid::Uuid;

use super::TokenRef;

/// Reader connections kept for reuse; more are opened when threads read at once.
const MAX_IDLE: usize = 8;

/// Commits in place between two checkpoints. A rotation writes a handful of
/// pages, so this is near SQLite's own default of 1,000 pages.
const CHECKPOINT_EVERY: u32 = 256;

const USER_UNLESS_REVOKED: &str = "SELECT id, username, email, role, created_at \
     FROM users WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM revocations WHERE id IN (?2, ?3))";

const IS_REVOKED: &str = "SELECT EXISTS (SELECT 1 FROM revocations WHERE id IN (?1, ?2))";

const MARK_USED: &str =
    "INSERT INTO revocations (id, kind, revoked_at, expires_at) VALUES (?1, ?2, ?3, ?4)";

const MOVE_SESSION: &str = "UPDATE sessions SET last_used_at = ?1, expires_at = ?2 \
     WHERE id = ?3 AND NOT EXISTS (SELECT 1 FROM revocations WHERE id = ?3)";

pub(super) struct InlineSqlite {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    writer: Mutex<Option<Connection>>,
    commits: AtomicU32,
    /// Set while a checkpoint holds the writer; `checkpoint_done` tells when
    /// it lets go.
    checkpointing: AtomicBool,
    checkpoint_done: tokio::sync::Notify,
}

/// What a rotation in place did; the outcomes of the pool's path.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Marked {
    /// The token is now used and its session moved on. `checkpoint_due` is
    /// set on every [`CHECKPOINT_EVERY`]th commit: the caller should run
    /// [`InlineSqlite::checkpoint`] off the runtime.
    Rotated {
        user: Box<user::Profile>,
        checkpoint_due: bool,
    },
    /// The token is used, or its session ended, or its user is gone: nothing
    /// was written, and the caller finds out which.
    NotLive,
    /// The token had been used before (found by its insert); nothing was written.
    AlreadyUsed,
    /// The session row is gone; nothing was written.
    SessionEnded,
}

impl InlineSqlite {
    /// In-place access to the file behind `db`, or `None` when `db` is not a
    /// SQLite file (PostgreSQL, or an in-memory database no other connection sees).
    pub(super) async fn open(db: &DatabaseConnection) -> Result<Option<Self>, DbErr> {
        if db.get_database_backend() != DbBackend::Sqlite {
            return Ok(None);
        }
        let row = db
            .query_one_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT file FROM pragma_database_list WHERE name = 'main'",
            ))
            .await?;
        let file = match row {
            Some(row) => String::try_get_by(&row, 0usize).map_err(DbErr::from)?,
            None => return Ok(None),
        };
        if file.is_empty() {
            return Ok(None);
        }
        let inline = Self {
            path: PathBuf::from(file),
            idle: Mutex::new(Vec::new()),
            writer: Mutex::new(None),
            commits: AtomicU32::new(0),
            checkpointing: AtomicBool::new(false),
            checkpoint_done: tokio::sync::Notify::new(),
        };
        // Fail at start, not on the first request, if the file can't be used so.
        let opened = inline
            .connect_reader()
            .and_then(|reader| Ok((reader, inline.connect_writer()?)));
        let (reader, writer) =
            opened.map_err(|err| DbErr::Custom(format!("cannot open the file in place: {err}")))?;
        inline.give_back(reader);
        *inline.writer.lock().unwrap_or_else(PoisonError::into_inner) = Some(writer);
        Ok(Some(inline))
    }

    fn connect(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::ZERO)?;
        Ok(conn)
    }

    fn connect_reader(&self) -> rusqlite::Result<Connection> {
        let conn = self.connect()?;
        conn.pragma_update(None, "query_only", true)?;
        // Pages read straight from the mapped file, not copied into each
        // connection's cache: a large blacklist costs no more than a small one.
        conn.pragma_update(None, "mmap_size", 64 * 1024 * 1024)?;
        Ok(conn)
    }

    /// The same durability as the pool's connections (`synchronous=NORMAL`
    /// in WAL: a commit survives the process dying), but no automatic
    /// checkpoint: that would fsync on the runtime's thread.
    fn connect_writer(&self) -> rusqlite::Result<Connection> {
        let conn = self.connect()?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        Ok(conn)
    }

    /// The writer out of its slot (the caller puts it back), or a new one
    /// if the last was dropped after an error.
    fn writer_from(&self, slot: &mut Option<Connection>) -> rusqlite::Result<Connection> {
        slot.take().map_or_else(|| self.connect_writer(), Ok)
    }

    fn give_back(&self, conn: Connection) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push(conn);
        }
    }

    /// Runs `read` on an idle reader, or a new one. A connection that saw an
    /// error is dropped rather than reused.
    fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match idle {
            Some(conn) => conn,
            None => self.connect_reader()?,
        };
        let result = read(&conn);
        if result.is_ok() {
            self.give_back(conn);
        }
        result
    }

    /// See [`super::Store::user_unless_revoked`].
    pub(super) fn user_unless_revoked(
        &self,
        user_id: Uuid,
        sid: Uuid,
        jti: Uuid,
    ) -> rusqlite::Result<Option<user::Profile>> {
        self.read(|conn| {
            conn.prepare_cached(USER_UNLESS_REVOKED)?
                .query_row((user_id, sid, jti), user_from_row)
                .optional()
        })
    }

    /// See [`super::Store::is_revoked`].
    pub(super) fn is_revoked(&self, sid: Uuid, jti: Uuid) -> rusqlite::Result<bool> {
        self.read(|conn| {
            conn.prepare_cached(IS_REVOKED)?
                .query_row((sid, jti), |row| row.get(0))
        })
    }

    /// The cheapest statement on this path: what every read here costs at least.
    pub(super) fn round_trip(&self) -> rusqlite::Result<i64> {
        self.read(|conn| {
            conn.prepare_cached("SELECT 1")?
                .query_row((), |row| row.get(0))
        })
    }

    /// [`super::Store::rotate`] in one transaction that holds the write lock
    /// from its first statement: read the token's user unless the token or its
    /// session is revoked, insert the token's `jti` (the primary key lets
    /// exactly one rotation through), then move the session on.
    pub(super) fn rotate(
        &self,
        old: &TokenRef,
        now: DateTime<Utc>,
        new_expires_at: i64,
    ) -> rusqlite::Result<Marked> {
        // Held by a checkpoint (or a rotation on another thread): don't wait.
        let mut slot = match self.writer.try_lock() {
            Ok(slot) => slot,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return Err(busy()),
        };
        let mut conn = self.writer_from(&mut slot)?;
        let result = rotate_in(&mut conn, old, now, new_expires_at);
        // Keep the connection unless it failed in an unexpected way.
        if result.as_ref().map_or_else(is_busy, |_| true) {
            *slot = Some(conn);
        }
        drop(slot);
        Ok(match result? {
            Marked::Rotated { user, .. } => Marked::Rotated {
                user,
                checkpoint_due: self.commits.fetch_add(1, Ordering::Relaxed) % CHECKPOINT_EVERY
                    == CHECKPOINT_EVERY - 1,
            },
            other => other,
        })
    }

    /// Copies the WAL into the database file and has the next write start
    /// the WAL over. Blocking: run it off the runtime. It holds the writer
    /// meanwhile; rotations wait for it (see [`Self::checkpoint_finished`]).
    ///
    /// RESTART, not PASSIVE: under a steady stream of rotations a passive
    /// checkpoint never finds the WAL still, the WAL never starts over, and
    /// it grows without end. RESTART waits (up to `wait`) for the writers and
    /// readers of the moment to finish, and holds new writers back meanwhile.
    pub(super) fn checkpoint(&self, wait: Duration) -> rusqlite::Result<()> {
        self.checkpointing.store(true, Ordering::Release);
        let result = self.checkpoint_holding_writer(wait);
        self.checkpointing.store(false, Ordering::Release);
        self.checkpoint_done.notify_waiters();
        result
    }

    fn checkpoint_holding_writer(&self, wait: Duration) -> rusqlite::Result<()> {
        let mut slot = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let conn = self.writer_from(&mut slot)?;
        let done = conn.busy_timeout(wait).and_then(|()| {
            conn.query_row("PRAGMA wal_checkpoint(RESTART)", (), |row| {
                row.get::<_, i64>(0)
            })
        });
        let reset = conn.busy_timeout(Duration::ZERO);
        *slot = Some(conn);
        match (done, reset) {
            (Ok(0), Ok(())) => Ok(()),
            (Ok(_), Ok(())) => Err(busy()),
            (Err(err), _) | (_, Err(err)) => Err(err),
        }
    }

    /// Waits, at most `limit`, for a checkpoint that holds the writer to let
    /// go. False at once when none runs. A rotation that waits here rather
    /// than taking the pool's path skips the pool's waits for SQLite's lock,
    /// which sleep in steps of milliseconds.
    pub(super) async fn checkpoint_finished(&self, limit: Duration) -> bool {
        let notified = self.checkpoint_done.notified();
        tokio::pin!(notified);
        // Registered before the flag is read, so the end can't slip between.
        notified.as_mut().enable();
        if !self.checkpointing.load(Ordering::Acquire) {
            return false;
        }
        tokio::time::timeout(limit, notified).await.is_ok()
    }
}

fn rotate_in(
    conn: &mut Connection,
    old: &TokenRef,
    now: DateTime<Utc>,
    new_expires_at: i64,
) -> rusqlite::Result<Marked> {
    // BEGIN IMMEDIATE takes the write lock first, or answers busy at once.
    // Dropping `txn` without a commit rolls back.
    let txn = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let user = txn
        .prepare_cached(USER_UNLESS_REVOKED)?
        .query_row((old.user, old.sid, old.jti), user_from_row)
        .optional()?;
    let Some(user) = user else {
        return Ok(Marked::NotLive);
    };
    let kind = revocation::Kind::Token.to_value();
    let marked = txn
        .prepare_cached(MARK_USED)?
        .execute((old.jti, kind, now.timestamp(), old.exp));
    match marked {
        Ok(_) => {}
        Err(err) if err.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) => {
            return Ok(Marked::AlreadyUsed);
        }
        Err(err) => return Err(err),
    }
    // The text sqlx writes for a `DateTime<Utc>`, so the column keeps one format.
    let now = now.to_rfc3339_opts(SecondsFormat::AutoSi, false);
    let moved = txn
        .prepare_cached(MOVE_SESSION)?
        .execute((now, new_expires_at, old.sid))?;
    if moved == 0 {
        return Ok(Marked::SessionEnded);
    }
    txn.commit()?;
    Ok(Marked::Rotated {
        user: Box::new(user),
        checkpoint_due: false,
    })
}

/// The error SQLite gives for a lock held elsewhere.
fn busy() -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY), None)
}

/// Is this the benign "busy" of a lock held elsewhere, rather than a fault?
pub(super) fn is_busy(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<user::Profile> {
    let role: String = row.get(3)?;
    let role = user::Role::try_from_value(&role).map_err(|err| {
        rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, Box::new(err))
    })?;
    Ok(user::Profile {
        id: row.get(0)?,
        username: row.get(1)?,
        email: row.get(2)?,
        role,
        created_at: row.get(4)?,
    })
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use migration::{Migrator, MigratorTrait};

    use sea_orm::{ConnectionTrait, DbBackend, EntityTrait, Statement, TransactionTrait};

    use super::super::{NewSession, NewUser, Rotation, Store};
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use super::super::TokenRef;
    use super::{Marked, is_busy};
    use crate::domain::{Email, Username};
    use entity::user;
    use uuid::Uuid;

    /// The same file seen by a store that reads in place and by one that
    /// asks the pool for everything.
    async fn stores(dir: &std::path::Path) -> (Store, Store) {
        let url = format!("sqlite://{}/inline.db?mode=rwc", dir.display());
        let db = crate::store::connect(&url, Default::default())
            .await
            .unwrap();
        Migrator::up(&db, None).await.unwrap();
        let inline = Store::open(db.clone()).await.unwrap();
        assert!(
            inline.inline.is_some(),
            "a SQLite file gets an inline reader"
        );
        (inline, Store::pooled_only(db))
    }

    async fn user(store: &Store, name: &str) -> (user::Model, Uuid) {
        let sid = Uuid::new_v4();
        let user = store
            .create_user(
                NewUser {
                    id: Uuid::now_v7(),
                    username: Username::parse(name).unwrap(),
                    email: Email::parse(&format!("{name}@example.com")).unwrap(),
                    password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
                },
                NewSession {
                    id: sid,
                    user_agent: None,
                    now: Utc::now(),
                    expires_at: Utc::now().timestamp() + 60,
                },
            )
            .await
            .unwrap();
        (user, sid)
    }

    #[tokio::test]
    async fn reads_in_place_answer_what_the_pool_answers() {
        let dir = tempfile::tempdir().unwrap();
        let (inline, pooled) = stores(dir.path()).await;
        let (alice, alice_sid) = user(&inline, "alice").await;
        let (bob, bob_sid) = user(&inline, "bob").await;
        inline.set_role(bob.id, user::Role::Admin).await.unwrap();
        let (jti, revoked_jti) = (Uuid::new_v4(), Uuid::new_v4());
        inline.end_session(bob_sid, 0, 0).await.unwrap();
        let marked = inline
            .rotate(
                &TokenRef {
                    user: alice.id,
                    sid: alice_sid,
                    exp: Utc::now().timestamp() + 60,
                    jti: revoked_jti,
                },
                Utc::now(),
                Utc::now().timestamp() + 60,
            )
            .await
            .unwrap();
        assert!(matches!(marked, super::super::Rotation::Rotated(_)));

        let cases = [
            (alice.id, alice_sid, jti),
            (alice.id, alice_sid, revoked_jti),
            (bob.id, Uuid::new_v4(), jti),
            (bob.id, bob_sid, jti),
            (Uuid::new_v4(), Uuid::new_v4(), jti),
        ];
        let mut found = 0;
        for (user_id, sid, jti) in cases {
            let here = inline.user_unless_revoked(user_id, sid, jti).await.unwrap();
            let there = pooled.user_unless_revoked(user_id, sid, jti).await.unwrap();
            assert_eq!(here, there, "user {user_id} sid {sid} jti {jti}");
            found += usize::from(here.is_some());
            assert_eq!(
                inline.is_revoked(sid, jti).await.unwrap(),
                pooled.is_revoked(sid, jti).await.unwrap(),
            );
        }
        assert_eq!(found, 2, "alice's live token and bob's other session");
        let bob_now = inline
            .user_unless_revoked(bob.id, Uuid::new_v4(), jti)
            .await
            .unwrap();
        assert_eq!(bob_now.map(|u| u.role), Some(user::Role::Admin));
        assert!(inline.is_revoked(alice_sid, revoked_jti).await.unwrap());
        assert!(inline.is_revoked(bob_sid, jti).await.unwrap());
        assert!(!inline.is_revoked(alice_sid, jti).await.unwrap());
    }

    #[tokio::test]
    async fn a_revocation_by_the_pool_counts_on_the_next_read_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let (inline, pooled) = stores(dir.path()).await;
        let (alice, sid) = user(&pooled, "alice").await;
        let jti = Uuid::new_v4();
        // Warm the reader, so a stale snapshot would show.
        assert!(
            inline
                .user_unless_revoked(alice.id, sid, jti)
                .await
                .unwrap()
                .is_some()
        );
        pooled.end_session(sid, 0, 0).await.unwrap();
        assert!(
            inline
                .user_unless_revoked(alice.id, sid, jti)
                .await
                .unwrap()
                .is_none()
        );
        assert!(inline.is_revoked(sid, jti).await.unwrap());
    }

    #[tokio::test]
    async fn an_in_memory_database_reads_through_the_pool() {
        let db = crate::store::connect("sqlite::memory:", Default::default())
            .await
            .unwrap();
        assert!(Store::open(db).await.unwrap().inline.is_none());
    }

    fn refresh_claims(user: &user::Model, sid: Uuid) -> TokenRef {
        TokenRef {
            user: user.id,
            sid,
            exp: Utc::now().timestamp() + 60,
            jti: Uuid::new_v4(),
        }
    }

    async fn raw(store: &Store, sql: &str, id: Uuid) -> Vec<String> {
        let row = store
            .connection()
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                sql,
                [id.into()],
            ))
            .await
            .unwrap()
            .unwrap();
        (0..3)
            .map(|i| {
                let text: Option<String> = row.try_get_by_index(i).ok();
                text.unwrap_or_else(|| row.try_get_by_index::<i64>(i).unwrap().to_string())
            })
            .collect()
    }

    #[tokio::test]
    async fn a_rotation_in_place_writes_what_the_pool_writes() {
        let dir = tempfile::tempdir().unwrap();
        let (inline, pooled) = stores(dir.path()).await;
        let (alice, first) = user(&inline, "alice").await;
        let second = Uuid::new_v4();
        let started = inline
            .start_session(
                alice.id,
                &alice.password_hash,
                NewSession {
                    id: second,
                    user_agent: None,
                    now: Utc::now(),
                    expires_at: 0,
                },
            )
            .await
            .unwrap();
        assert!(started);
        let (here, there) = (
            refresh_claims(&alice, first),
            refresh_claims(&alice, second),
        );
        let now = Utc::now();
        let exp = now.timestamp() + 3_600;
        assert!(matches!(
            inline.rotate(&here, now, exp).await.unwrap(),
            Rotation::Rotated(_)
        ));
        assert!(matches!(
            pooled.rotate(&there, now, exp).await.unwrap(),
            Rotation::Rotated(_)
        ));

        let session = "SELECT last_used_at, expires_at, created_at FROM sessions WHERE id = ?";
        let (a, b) = (
            raw(&inline, session, first).await,
            raw(&inline, session, second).await,
        );
        assert_eq!(
            a[..2],
            b[..2],
            "the same text and numbers, whoever wrote them"
        );
        assert_eq!(a[1], exp.to_string());
        let revocation = "SELECT kind, revoked_at, expires_at FROM revocations WHERE id = ?";
        assert_eq!(
            raw(&inline, revocation, here.jti).await,
            raw(&inline, revocation, there.jti).await
        );
        // And SeaORM reads back what was written in place.
        let read = entity::session::Entity::find_by_id(first)
            .one(pooled.connection())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((read.last_used_at, read.expires_at), (now, exp));
    }

    #[tokio::test]
    async fn a_token_rotated_in_place_twice_ends_its_session_and_then_counts_as_ended() {
        let dir = tempfile::tempdir().unwrap();
        let (inline, _) = stores(dir.path()).await;
        let (alice, sid) = user(&inline, "alice").await;
        let old = refresh_claims(&alice, sid);
        let now = Utc::now();
        assert!(matches!(
            inline.rotate(&old, now, 0).await.unwrap(),
            Rotation::Rotated(_)
        ));
        let in_place = inline.inline.as_deref().unwrap();
        assert_eq!(in_place.rotate(&old, now, 0).unwrap(), Marked::NotLive);
        assert!(matches!(
            inline.rotate(&old, now, 0).await.unwrap(),
            Rotation::Reused
        ));
        assert!(
            inline.is_revoked(sid, Uuid::new_v4()).await.unwrap(),
            "the session ended"
        );
        let ended = refresh_claims(&alice, sid);
        assert_eq!(in_place.rotate(&ended, now, 0).unwrap(), Marked::NotLive);
        assert!(matches!(
            inline.rotate(&ended, now, 0).await.unwrap(),
            Rotation::Revoked
        ));
        assert!(
            !inline.is_revoked(Uuid::new_v4(), ended.jti).await.unwrap(),
            "nothing written"
        );
    }

    #[tokio::test]
    async fn a_session_row_gone_is_ended_on_either_path() {
        let dir = tempfile::tempdir().unwrap();
        let (inline, pooled) = stores(dir.path()).await;
        let (alice, sid) = user(&inline, "alice").await;
        entity::session::Entity::delete_by_id(sid)
            .exec(pooled.connection())
            .await
            .unwrap();
        let old = refresh_claims(&alice, sid);
        let in_place = inline.inline.as_deref().unwrap();
        assert_eq!(
            in_place.rotate(&old, Utc::now(), 0).unwrap(),
            Marked::SessionEnded
        );
        assert!(matches!(
            pooled.rotate(&old, Utc::now(), 0).await.unwrap(),
            Rotation::Revoked
        ));
        assert!(matches!(
            inline.rotate(&old, Utc::now(), 0).await.unwrap(),
            Rotation::Revoked
        ));
    }

    #[tokio::test]
    async fn a_rotation_meeting_a_writer_goes_through_the_pool() {
        let dir = tempfile::tempdir().unwrap();
        let (inline, pooled) = stores(dir.path()).await;
        let (alice, sid) = user(&inline, "alice").await;
        let old = refresh_claims(&alice, sid);
        // Another writer holds SQLite's write lock.
        let txn = pooled.connection().begin().await.unwrap();
        txn.execute_unprepared("UPDATE users SET email = email")
            .await
            .unwrap();
        let in_place = inline.inline.as_deref().unwrap();
        let busy = in_place.rotate(&old, Utc::now(), 0).unwrap_err();
        assert!(is_busy(&busy), "{busy}");

        let rotation = tokio::spawn({
            let inline = inline.clone();
            async move { inline.rotate(&old, Utc::now(), 0).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(
            !rotation.is_finished(),
            "it waits for the lock on the pool's side"
        );
        txn.commit().await.unwrap();
        assert!(matches!(
            rotation.await.unwrap().unwrap(),
            Rotation::Rotated(_)
        ));
        assert!(inline.is_revoked(Uuid::new_v4(), old.jti).await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rotations_in_place_keep_the_wal_from_growing() {
        let dir = tempfile::tempdir().unwrap();
        let (inline, _) = stores(dir.path()).await;
        let (alice, sid) = user(&inline, "alice").await;
        let wal = dir.path().join("inline.db-wal");
        let mut largest = 0;
        for _ in 0..4_000 {
            let old = refresh_claims(&alice, sid);
            let rotated = inline.rotate(&old, Utc::now(), 0).await.unwrap();
            assert!(matches!(rotated, Rotation::Rotated(_)));
            largest = largest.max(std::fs::metadata(&wal).unwrap().len());
            tokio::task::yield_now().await;
        }
        let page = 4096;
        // With passive checkpoints only, the WAL grew by about five pages a
        // rotation (10,548 pages after 2,000) and never started over.
        eprintln!("largest WAL: {} pages", largest / page);
        assert!(largest < 5_000 * page, "largest WAL {largest} bytes");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rotation_meeting_a_checkpoint_waits_for_it_then_runs_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let (inline, pooled) = stores(dir.path()).await;
        let (alice, sid) = user(&inline, "alice").await;
        // A pool transaction holds SQLite's write lock, so the checkpoint
        // waits for it while holding the writer.
        let txn = pooled.connection().begin().await.unwrap();
        txn.execute_unprepared("UPDATE users SET email = email")
            .await
            .unwrap();
        let in_place = inline.inline.clone().unwrap();
        let checkpoint = tokio::task::spawn_blocking({
            let in_place = in_place.clone();
            move || in_place.checkpoint(Duration::from_secs(5))
        });
        while !in_place.checkpointing.load(Ordering::Acquire) {
            tokio::task::yield_now().await;
        }
        let commits = in_place.commits.load(Ordering::Relaxed);
        let rotation = tokio::spawn({
            let inline = inline.clone();
            let old = refresh_claims(&alice, sid);
            async move { inline.rotate(&old, Utc::now(), 0).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!rotation.is_finished(), "it waits");
        txn.commit().await.unwrap();
        checkpoint.await.unwrap().unwrap();
        assert!(matches!(
            rotation.await.unwrap().unwrap(),
            Rotation::Rotated(_)
        ));
        assert_eq!(
            in_place.commits.load(Ordering::Relaxed),
            commits + 1,
            "it ran in place once the checkpoint let go, not through the pool"
        );
    }
}

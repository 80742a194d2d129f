//! The token ledger on a SQLite file, run on the calling thread.
//!
//! sqlx runs each SQLite connection on a worker thread of its own: every
//! statement is a message to that thread and a wake-up back, and the pool
//! pings the connection again as it is returned. For the guard's query that
//! hand-off costs ten times what SQLite does (see docs/benchmarks): SQLite
//! answers a primary-key probe in a few microseconds, less than one context
//! switch. So the reads every protected request makes, and the write of a
//! refresh, go through connections of their own on the same file, used in
//! place. Refreshes that arrive together share one transaction (group
//! commit): each page is written to the WAL once per commit, not once per
//! rotation, and none is answered before its commit.
//!
//! Nothing is cached: every call reads the tables, so a revocation committed
//! by any process on the file counts on the next request. Readers are
//! `query_only`; in WAL mode they neither wait for the writer nor block it.
//! Nothing on the runtime's thread waits for a lock (busy timeout 0): when
//! SQLite answers busy, a read goes through the pool ([`PoolLedger`]),
//! which waits its turn on sqlx's threads, and a batch of rotations waits
//! on a blocking thread, still as one transaction (the pool's path if that
//! too times out). Any other error is an error. The writer never
//! checkpoints on its own: every [`CHECKPOINT_EVERY`] rotations a blocking
//! thread checkpoints the WAL, so no fsync runs on the runtime's thread.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError, TryLockError};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use entity::{revocation, user};
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, Row, TransactionBehavior};
use sea_orm::{
    ActiveEnum, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement, TryGetable,
};
use uuid::Uuid;

use super::pool::PoolLedger;
use super::{KeyHolder, Rotation, RotationRules};
use crate::store::TokenRef;

/// Reader connections kept for reuse; more are opened when threads read at once.
const MAX_IDLE: usize = 8;

/// Rotations in place between two checkpoints. A rotation alone writes six
/// or seven pages (fewer in a shared commit), so the WAL holds at most
/// about 7,000 (28 MiB) before it starts over. Rotations wait while a
/// checkpoint holds the writer, and every checkpoint pays two fsyncs
/// whatever it copies: at 256, the server's core sat idle 13% of a refresh
/// benchmark (1,024 served 1.10x as many).
pub(super) const CHECKPOINT_EVERY: u32 = 1024;

/// How long a checkpoint waits for SQLite's other users, and a rotation for
/// a checkpoint.
const CHECKPOINT_WAIT: Duration = Duration::from_secs(1);

/// Two probes rather than `id IN (?2, ?3)`: SQLite builds an ephemeral
/// b-tree for an `IN` list on every run, which cost more than the lookups.
const USER_UNLESS_REVOKED: &str = "SELECT id, username, email, role, created_at, email_verified \
     FROM users WHERE id = ?1 \
     AND NOT EXISTS (SELECT 1 FROM revocations WHERE id = ?2) \
     AND NOT EXISTS (SELECT 1 FROM revocations WHERE id = ?3)";

const KEY_HOLDER: &str = "SELECT u.id, u.username, u.email, u.role, u.created_at, u.email_verified, \
     k.id, k.expires_at, k.revoked_at, k.last_used_at \
     FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.key_hash = ?1";

const IS_REVOKED: &str = "SELECT EXISTS (SELECT 1 FROM revocations WHERE id IN (?1, ?2))";

const REVOCATIONS_OF: &str = "SELECT id, revoked_at FROM revocations WHERE id IN (?1, ?2)";

const MARK_USED: &str =
    "INSERT INTO revocations (id, kind, revoked_at, expires_at) VALUES (?1, ?2, ?3, ?4)";

const END_SESSION: &str = "INSERT INTO revocations (id, kind, revoked_at, expires_at) \
     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (id) DO NOTHING";

const MOVE_SESSION: &str = "UPDATE sessions SET last_used_at = ?1, expires_at = ?2 \
     WHERE id = ?3 AND NOT EXISTS (SELECT 1 FROM revocations WHERE id = ?3)";

pub(crate) struct InPlaceLedger {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    writer: Mutex<Option<Connection>>,
    queue: Mutex<Queue>,
    /// Rotations in place that wrote.
    commits: AtomicU32,
    /// Where work goes when SQLite is busy.
    pool: PoolLedger,
}

/// One rotation's arguments, as [`InPlaceLedger::rotate`] takes them.
struct Job {
    old: TokenRef,
    now: DateTime<Utc>,
    new_expires_at: i64,
    rules: RotationRules,
}

/// Rotations waiting for the next commit, each with where its outcome goes,
/// and whether a request is gathering them (see
/// [`InPlaceLedger::rotate_together`]).
#[derive(Default)]
struct Queue {
    waiting: Vec<(Job, tokio::sync::oneshot::Sender<Result<InPlace, DbErr>>)>,
    gathering: bool,
}

/// Sends each waiting rotation its outcome; a request that went away
/// meanwhile needs none.
fn answer(
    answers: Vec<tokio::sync::oneshot::Sender<Result<InPlace, DbErr>>>,
    outcomes: Vec<Result<InPlace, DbErr>>,
) {
    for (answer, outcome) in answers.into_iter().zip(outcomes) {
        let _ = answer.send(outcome);
    }
}

/// Runs the queue when dropped.
struct Gathering<'a>(&'a Arc<InPlaceLedger>);

impl Drop for Gathering<'_> {
    fn drop(&mut self) {
        self.0.run_queue();
    }
}

/// What a rotation in place came to, or that it could not run now.
enum InPlace {
    Done(Rotation),
    Busy,
}

impl InPlaceLedger {
    /// In-place access to the file behind `db`, or `None` when `db` is not a
    /// SQLite file (PostgreSQL, or an in-memory database no other connection sees).
    pub(crate) async fn open(db: &DatabaseConnection) -> Result<Option<Self>, DbErr> {
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
        let ledger = Self {
            path: PathBuf::from(file),
            idle: Mutex::new(Vec::new()),
            writer: Mutex::new(None),
            queue: Mutex::new(Queue::default()),
            commits: AtomicU32::new(0),
            pool: PoolLedger::new(db.clone()),
        };
        // Fail at start, not on the first request, if the file can't be used so.
        let opened = ledger
            .connect_reader()
            .and_then(|reader| Ok((reader, ledger.connect_writer()?)));
        let (reader, writer) =
            opened.map_err(|err| failed("cannot open the file in place", &err))?;
        ledger.give_back(reader);
        *ledger.writer.lock().unwrap_or_else(PoisonError::into_inner) = Some(writer);
        Ok(Some(ledger))
    }

    pub(crate) fn pool(&self) -> &PoolLedger {
        &self.pool
    }

    pub(crate) async fn user_unless_revoked(
        &self,
        user_id: Uuid,
        sid: Uuid,
        jti: Uuid,
    ) -> Result<Option<user::Profile>, DbErr> {
        let read = self.read(|conn| {
            conn.prepare_cached(USER_UNLESS_REVOKED)?
                .query_row((user_id, sid, jti), profile_from_row)
                .optional()
        });
        match busy_or(read)? {
            Some(found) => Ok(found),
            None => self.pool.user_unless_revoked(user_id, sid, jti).await,
        }
    }

    pub(crate) async fn key_holder(&self, key_hash: &str) -> Result<Option<KeyHolder>, DbErr> {
        let read = self.read(|conn| {
            conn.prepare_cached(KEY_HOLDER)?
                .query_row([key_hash], |row| {
                    Ok(KeyHolder {
                        user: profile_from_row(row)?,
                        key_id: row.get(6)?,
                        expires_at: row.get(7)?,
                        revoked_at: row.get(8)?,
                        last_used_at: row.get(9)?,
                    })
                })
                .optional()
        });
        match busy_or(read)? {
            Some(found) => Ok(found),
            None => self.pool.key_holder(key_hash).await,
        }
    }

    pub(crate) async fn is_revoked(&self, sid: Uuid, jti: Uuid) -> Result<bool, DbErr> {
        let read = self.read(|conn| {
            conn.prepare_cached(IS_REVOKED)?
                .query_row((sid, jti), |row| row.get(0))
        });
        match busy_or(read)? {
            Some(revoked) => Ok(revoked),
            None => self.pool.is_revoked(sid, jti).await,
        }
    }

    /// The cheapest statement on this path: what every read here costs at least.
    pub(crate) fn round_trip(&self) -> Result<(), DbErr> {
        self.read(|conn| {
            conn.prepare_cached("SELECT 1")?
                .query_row((), |row| row.get::<_, i64>(0))
        })
        .map(|_| ())
        .map_err(|err| failed("SELECT 1 in place", &err))
    }

    /// See [`super::TokenLedger::rotate`]: in place, in one transaction that
    /// holds the write lock from its first statement, shared with the
    /// rotations that arrive meanwhile (see [`Self::rotate_together`]). A
    /// batch that meets a checkpoint or another writer waits for it on a
    /// blocking thread (SQLite's lock at most [`CHECKPOINT_WAIT`]); a
    /// rotation still busy after that goes through the pool.
    pub(crate) async fn rotate(
        self: &Arc<Self>,
        old: &TokenRef,
        now: DateTime<Utc>,
        new_expires_at: i64,
        rules: RotationRules,
    ) -> Result<Rotation, DbErr> {
        let job = Job {
            old: *old,
            now,
            new_expires_at,
            rules,
        };
        match self.rotate_together(job).await? {
            InPlace::Done(rotation) => Ok(rotation),
            InPlace::Busy => {
                tracing::debug!("SQLite busy in place; rotating through the pool");
                self.pool.rotate(old, now, new_expires_at, rules).await
            }
        }
    }

    /// Group commit: the rotation joins the queue, and the first to find no
    /// batch gathering lets the runtime run the other requests ready now
    /// (one `yield_now`), then commits every queued rotation in one
    /// transaction. A commit writes each page it touched once, however many
    /// rotations touched it (the tail of `revocations` and its expiry index,
    /// the sessions): under the refresh benchmark a rotation wrote 0.7 WAL
    /// frames where it wrote 5.3 alone, and the transaction's own cost is
    /// shared. Each rotation still gets its own outcome, and none is
    /// answered before the commit that holds it.
    async fn rotate_together(self: &Arc<Self>, job: Job) -> Result<InPlace, DbErr> {
        let (answer, outcome) = tokio::sync::oneshot::channel();
        let gathers = {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            queue.waiting.push((job, answer));
            !std::mem::replace(&mut queue.gathering, true)
        };
        if gathers {
            // Runs the queue when dropped: after the yield, or at once if
            // this request is dropped while it yields, so no queued
            // rotation is left without an answer.
            let batch = Gathering(self);
            tokio::task::yield_now().await;
            drop(batch);
        }
        outcome
            .await
            .map_err(|_| DbErr::Custom("SQLite rotation in place: no answer".to_owned()))?
    }

    /// Runs the queue until it is empty: on one thread it is after the first
    /// batch; on several, rotations queued meanwhile form the next.
    fn run_queue(self: &Arc<Self>) {
        loop {
            let batch = {
                let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
                if queue.waiting.is_empty() {
                    queue.gathering = false;
                    return;
                }
                std::mem::take(&mut queue.waiting)
            };
            let (jobs, answers): (Vec<Job>, Vec<_>) = batch.into_iter().unzip();
            let outcomes = self.rotate_batch(&jobs, Duration::ZERO);
            let busy = outcomes
                .iter()
                .all(|outcome| matches!(outcome, Ok(InPlace::Busy)));
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) if busy => {
                    // A checkpoint or another process holds the lock: the
                    // batch waits for it off the runtime, still as one
                    // transaction, rather than each rotation queueing on
                    // the pool.
                    let ledger = self.clone();
                    runtime.spawn_blocking(move || {
                        answer(answers, ledger.rotate_batch(&jobs, CHECKPOINT_WAIT));
                    });
                }
                _ => answer(answers, outcomes),
            }
        }
    }

    /// The rotations of `jobs` in one transaction, an outcome each. When it
    /// fails other than busy, each runs again in a transaction of its own,
    /// so one rotation's error is that rotation's alone. With `wait` zero
    /// (on the runtime) it waits for nothing; else (on a blocking thread)
    /// for the writer, then up to `wait` for SQLite's lock.
    fn rotate_batch(self: &Arc<Self>, jobs: &[Job], wait: Duration) -> Vec<Result<InPlace, DbErr>> {
        let mut slot = if wait.is_zero() {
            match self.writer.try_lock() {
                Ok(slot) => slot,
                Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => {
                    return jobs.iter().map(|_| Ok(InPlace::Busy)).collect();
                }
            }
        } else {
            self.writer.lock().unwrap_or_else(PoisonError::into_inner)
        };
        let mut conn = match self.writer_from(&mut slot) {
            Ok(conn) => conn,
            Err(err) => {
                return jobs
                    .iter()
                    .map(|_| Err(failed("cannot open the writer", &err)))
                    .collect();
            }
        };
        // The writer's busy timeout is zero but while a blocking thread waits.
        if !wait.is_zero()
            && let Err(err) = conn.busy_timeout(wait)
        {
            return jobs
                .iter()
                .map(|_| Err(failed("cannot set the writer's wait", &err)))
                .collect();
        }
        let results: Vec<rusqlite::Result<(Rotation, bool)>> = match rotate_in(&mut conn, jobs) {
            Ok(done) => done.into_iter().map(Ok).collect(),
            Err(err) if is_busy(&err) => jobs.iter().map(|_| Err(busy())).collect(),
            Err(err) if jobs.len() == 1 => vec![Err(err)],
            Err(err) => {
                tracing::debug!(error = %err, "a batch of rotations failed; each runs alone");
                jobs.iter()
                    .map(|job| rotate_alone(&mut conn, job))
                    .collect()
            }
        };
        // Keep the connection unless it failed in an unexpected way.
        let reset = wait.is_zero() || conn.busy_timeout(Duration::ZERO).is_ok();
        if reset
            && results
                .iter()
                .all(|result| result.as_ref().map_or_else(is_busy, |_| true))
        {
            *slot = Some(conn);
        }
        drop(slot);
        let mut wrote = 0;
        let outcomes = results
            .into_iter()
            .map(|result| match result {
                Ok((rotation, writes)) => {
                    wrote += u32::from(writes);
                    Ok(InPlace::Done(rotation))
                }
                Err(err) if is_busy(&err) => Ok(InPlace::Busy),
                Err(err) => Err(failed("rotation in place", &err)),
            })
            .collect();
        self.committed(wrote);
        outcomes
    }

    /// Counts `wrote` rotations that wrote, and checkpoints each time the
    /// count passes a multiple of [`CHECKPOINT_EVERY`].
    fn committed(self: &Arc<Self>, wrote: u32) {
        if wrote == 0 {
            return;
        }
        let before = self.commits.fetch_add(wrote, Ordering::Relaxed);
        if before / CHECKPOINT_EVERY != before.wrapping_add(wrote) / CHECKPOINT_EVERY {
            self.checkpoint_soon();
        }
    }

    /// Checkpoints the WAL on a blocking thread.
    /// Outside a runtime (a batch run while one shuts down) the checkpoint
    /// waits for the next interval.
    fn checkpoint_soon(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let ledger = self.clone();
        runtime.spawn_blocking(move || match ledger.checkpoint(CHECKPOINT_WAIT) {
            Ok(()) => {}
            Err(err) if is_busy(&err) => {
                tracing::debug!("WAL checkpoint postponed: the database was busy");
            }
            Err(err) => tracing::warn!(error = %err, "WAL checkpoint failed"),
        });
    }

    /// Copies the WAL into the database file and has the next write start
    /// the WAL over. Blocking: run it off the runtime. Its RESTART step holds
    /// the writer; rotations wait for it on a blocking thread (see
    /// [`Self::run_queue`]).
    ///
    /// RESTART, not PASSIVE alone: under a steady stream of rotations a
    /// passive checkpoint never finds the WAL still, the WAL never starts
    /// over, and it grows without end. RESTART waits (up to `wait`) for the
    /// writers and readers of the moment to finish, and holds new writers
    /// back meanwhile. So a PASSIVE one goes first, on a connection of its
    /// own while rotations go on: it copies the WAL and pays its fsyncs,
    /// and the RESTART that holds rotations back has only the last few
    /// frames left to copy.
    pub(super) fn checkpoint(&self, wait: Duration) -> rusqlite::Result<()> {
        if let Err(err) = self.checkpoint_passive() {
            tracing::debug!(error = %err, "passive WAL checkpoint failed; restarting anyway");
        }
        self.checkpoint_holding_writer(wait)
    }

    fn checkpoint_passive(&self) -> rusqlite::Result<()> {
        self.connect()?
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", (), |row| {
                row.get::<_, i64>(0)
            })
            .map(|_| ())
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

    /// Is the writer held (by a checkpoint, when no rotation runs)?
    #[cfg(test)]
    pub(super) fn writer_is_held(&self) -> bool {
        self.writer.try_lock().is_err()
    }

    #[cfg(test)]
    pub(super) fn commits(&self) -> u32 {
        self.commits.load(Ordering::Relaxed)
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
}

/// The rotations of `jobs`, in order, in one write transaction: an outcome
/// each, and whether it wrote. BEGIN IMMEDIATE takes the write lock first,
/// or answers busy at once; an error rolls every one of them back.
fn rotate_in(conn: &mut Connection, jobs: &[Job]) -> rusqlite::Result<Vec<(Rotation, bool)>> {
    let txn = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let done = jobs
        .iter()
        .map(|job| rotate_steps(&txn, job))
        .collect::<rusqlite::Result<_>>()?;
    txn.commit()?;
    Ok(done)
}

/// One rotation in a write transaction of its own.
fn rotate_alone(conn: &mut Connection, job: &Job) -> rusqlite::Result<(Rotation, bool)> {
    let txn = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let done = rotate_steps(&txn, job)?;
    txn.commit()?;
    Ok(done)
}

/// One rotation inside a write transaction, and whether it wrote; it
/// writes all it has to or nothing, so rotations can share the commit.
/// The same outcomes, from the same checks, as [`PoolLedger::rotate`]: read
/// the user unless the token or its session is revoked (else find out why:
/// a used token ends its session); move the session on unless it ended;
/// insert the token's `jti`. The session moves before the insert so that a
/// session gone leaves nothing written.
fn rotate_steps(txn: &Connection, job: &Job) -> rusqlite::Result<(Rotation, bool)> {
    let Job {
        old,
        now,
        new_expires_at,
        rules,
    } = job;
    let user = txn
        .prepare_cached(USER_UNLESS_REVOKED)?
        .query_row((old.user, old.sid, old.jti), profile_from_row)
        .optional()?;
    let Some(user) = user else {
        let revoked: Vec<(Uuid, i64)> = txn
            .prepare_cached(REVOCATIONS_OF)?
            .query_map((old.sid, old.jti), |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let revoked_at = |id: Uuid| revoked.iter().find(|row| row.0 == id).map(|row| row.1);
        if revoked_at(old.sid).is_some() {
            return Ok((Rotation::Revoked, false));
        }
        match revoked_at(old.jti) {
            None => return Ok((Rotation::UnknownUser, false)),
            Some(rotated) if rules.grace > 0 && now.timestamp() - rotated < rules.grace => {
                return Ok((Rotation::Superseded, false));
            }
            Some(_) => {}
        }
        let kind = revocation::Kind::Session.to_value();
        txn.prepare_cached(END_SESSION)?
            .execute((old.sid, kind, now.timestamp(), old.exp))?;
        return Ok((Rotation::Reused, true));
    };
    if rules.refuses(&user) {
        return Ok((Rotation::Unverified, false));
    }
    // The text sqlx writes for a `DateTime<Utc>`, so the column keeps one format.
    let used_at = now.to_rfc3339_opts(SecondsFormat::AutoSi, false);
    let moved = txn
        .prepare_cached(MOVE_SESSION)?
        .execute((used_at, new_expires_at, old.sid))?;
    if moved == 0 {
        return Ok((Rotation::Revoked, false));
    }
    let kind = revocation::Kind::Token.to_value();
    txn.prepare_cached(MARK_USED)?
        .execute((old.jti, kind, now.timestamp(), old.exp))?;
    Ok((Rotation::Rotated(user), true))
}

/// `Ok(Some)` for an answer, `Ok(None)` when SQLite was busy (the caller
/// asks the pool), an error for anything else.
fn busy_or<T>(result: rusqlite::Result<T>) -> Result<Option<T>, DbErr> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(err) if is_busy(&err) => Ok(None),
        Err(err) => Err(failed("read in place", &err)),
    }
}

fn failed(what: &str, err: &rusqlite::Error) -> DbErr {
    DbErr::Custom(format!("SQLite {what}: {err}"))
}

/// The error SQLite gives for a lock held elsewhere.
fn busy() -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY), None)
}

/// Is this the benign "busy" of a lock held elsewhere, rather than a fault?
fn is_busy(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

fn profile_from_row(row: &Row<'_>) -> rusqlite::Result<user::Profile> {
    let role: String = row.get(3)?;
    let role = user::Role::try_from_value(&role).map_err(|err| {
        rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, Box::new(err))
    })?;
    Ok(user::Profile {
        id: row.get(0)?,
        username: row.get(1)?,
        email: row.get(2)?,
        role,
        created_at: created_at(row, 4)?,
        email_verified: row.get(5)?,
    })
}

/// A timestamp column as sqlx writes it (RFC 3339), by chrono's RFC 3339
/// parser: rusqlite's own `FromSql` goes through a `strftime` pattern, a
/// few times slower. Any other form falls back to rusqlite's.
fn created_at(row: &Row<'_>, column: usize) -> rusqlite::Result<DateTime<Utc>> {
    if let Ok(text) = row.get_ref(column)?.as_str()
        && let Ok(at) = DateTime::parse_from_rfc3339(text)
    {
        return Ok(at.with_timezone(&Utc));
    }
    row.get(column)
}

//! The writer: rotations in place, gathered into shared commits (group
//! commit), and the checkpoints that keep the WAL small.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, TryLockError};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use entity::revocation;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use sea_orm::{ActiveEnum, DbErr};
use uuid::Uuid;

use super::{
    InPlaceLedger, REVOCATIONS_OF, USER_UNLESS_REVOKED, busy, failed, is_busy, profile_from_row,
};
use crate::events::{Recorded, Source};
use crate::store::ledger::{Rotation, RotationRules, reuse};
use crate::store::{EventRow, SQLITE_EVENT_INSERT, TokenRef};

/// Rotations in place between two checkpoints. A rotation alone writes six
/// or seven pages (fewer in a shared commit), so the WAL holds at most
/// about 7,000 (28 MiB) before it starts over. Rotations wait while a
/// checkpoint holds the writer, and every checkpoint pays two fsyncs
/// whatever it copies: at 256, the server's core sat idle 13% of a refresh
/// benchmark (1,024 served 1.10x as many).
pub(crate) const CHECKPOINT_EVERY: u32 = 1024;

/// How long a checkpoint waits for SQLite's other users, and a rotation for
/// a checkpoint.
const CHECKPOINT_WAIT: Duration = Duration::from_secs(1);

const MARK_USED: &str =
    "INSERT INTO revocations (id, kind, revoked_at, expires_at) VALUES (?1, ?2, ?3, ?4)";

const END_SESSION: &str = "INSERT INTO revocations (id, kind, revoked_at, expires_at) \
     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (id) DO NOTHING";

const MOVE_SESSION: &str = "UPDATE sessions SET last_used_at = ?1, expires_at = ?2 \
     WHERE id = ?3 AND NOT EXISTS (SELECT 1 FROM revocations WHERE id = ?3)";

/// One rotation's arguments, as [`InPlaceLedger::rotate`] takes them.
struct Job {
    old: TokenRef,
    now: DateTime<Utc>,
    new_expires_at: i64,
    rules: RotationRules,
    /// Where the request came from: a reuse's `session.ended` says so.
    source: Arc<Source>,
}

/// What one rotation in a write transaction did: its outcome, whether it
/// wrote, and the event it wrote (a reuse's `session.ended`), to log once
/// the transaction committed.
struct Step {
    rotation: Rotation,
    wrote: bool,
    event: Option<Recorded>,
}

impl Step {
    fn read(rotation: Rotation) -> Self {
        Self {
            rotation,
            wrote: false,
            event: None,
        }
    }
}

/// Rotations waiting for the next commit, each with where its outcome goes,
/// and whether a request is gathering them (see
/// [`InPlaceLedger::rotate_together`]).
#[derive(Default)]
pub(super) struct Queue {
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
pub(super) enum InPlace {
    Done(Rotation),
    Busy,
}

impl InPlaceLedger {
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
        source: &Arc<Source>,
    ) -> Result<Rotation, DbErr> {
        let job = Job {
            old: *old,
            now,
            new_expires_at,
            rules,
            source: source.clone(),
        };
        match self.rotate_together(job).await? {
            InPlace::Done(rotation) => Ok(rotation),
            InPlace::Busy => {
                tracing::debug!("SQLite busy in place; rotating through the pool");
                self.pool
                    .rotate(old, now, new_expires_at, rules, source)
                    .await
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
        let results: Vec<rusqlite::Result<Step>> = match rotate_in(&mut conn, jobs) {
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
                Ok(step) => {
                    wrote += u32::from(step.wrote);
                    if let Some(event) = step.event {
                        event.log();
                    }
                    Ok(InPlace::Done(step.rotation))
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
    pub(in crate::store::ledger) fn checkpoint(&self, wait: Duration) -> rusqlite::Result<()> {
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
    pub(in crate::store::ledger) fn writer_is_held(&self) -> bool {
        self.writer.try_lock().is_err()
    }

    #[cfg(test)]
    pub(in crate::store::ledger) fn commits(&self) -> u32 {
        self.commits.load(Ordering::Relaxed)
    }
}

/// The rotations of `jobs`, in order, in one write transaction: an outcome
/// each, and whether it wrote. BEGIN IMMEDIATE takes the write lock first,
/// or answers busy at once; an error rolls every one of them back.
fn rotate_in(conn: &mut Connection, jobs: &[Job]) -> rusqlite::Result<Vec<Step>> {
    let txn = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let done = jobs
        .iter()
        .map(|job| rotate_steps(&txn, job))
        .collect::<rusqlite::Result<_>>()?;
    txn.commit()?;
    Ok(done)
}

/// One rotation in a write transaction of its own.
fn rotate_alone(conn: &mut Connection, job: &Job) -> rusqlite::Result<Step> {
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
/// session gone leaves nothing written. A reuse that ends its session writes
/// its `session.ended` in the same transaction.
fn rotate_steps(txn: &Connection, job: &Job) -> rusqlite::Result<Step> {
    let Job {
        old,
        now,
        new_expires_at,
        rules,
        source,
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
            return Ok(Step::read(Rotation::Revoked));
        }
        match revoked_at(old.jti) {
            None => return Ok(Step::read(Rotation::UnknownUser)),
            Some(rotated) if rules.grace > 0 && now.timestamp() - rotated < rules.grace => {
                return Ok(Step::read(Rotation::Superseded));
            }
            Some(_) => {}
        }
        let kind = revocation::Kind::Session.to_value();
        let ended =
            txn.prepare_cached(END_SESSION)?
                .execute((old.sid, kind, now.timestamp(), old.exp))?;
        let event = match ended {
            1 => Some(reuse_event(txn, old, *now, source)?),
            _ => None,
        };
        return Ok(Step {
            rotation: Rotation::Reused,
            wrote: true,
            event,
        });
    };
    if rules.refuses(&user) {
        return Ok(Step::read(Rotation::Unverified));
    }
    // The text sqlx writes for a `DateTime<Utc>`, so the column keeps one format.
    let used_at = now.to_rfc3339_opts(SecondsFormat::AutoSi, false);
    let moved = txn
        .prepare_cached(MOVE_SESSION)?
        .execute((used_at, new_expires_at, old.sid))?;
    if moved == 0 {
        return Ok(Step::read(Rotation::Revoked));
    }
    let kind = revocation::Kind::Token.to_value();
    txn.prepare_cached(MARK_USED)?
        .execute((old.jti, kind, now.timestamp(), old.exp))?;
    Ok(Step {
        rotation: Rotation::Rotated(user),
        wrote: true,
        event: None,
    })
}

/// The `session.ended` of a reuse, written in the rotation's transaction
/// (the pool's path writes the same one: see `PoolLedger::why_not`).
fn reuse_event(
    txn: &Connection,
    old: &TokenRef,
    now: DateTime<Utc>,
    source: &Source,
) -> rusqlite::Result<Recorded> {
    let event = reuse(old);
    let row = EventRow::new(source, now, &event);
    let position: i64 = txn.prepare_cached(SQLITE_EVENT_INSERT)?.query_row(
        rusqlite::params![
            row.id,
            row.occurred_at,
            row.kind,
            row.failed,
            row.user_id,
            row.session_id,
            row.actor_kind,
            row.actor_id,
            row.ip,
            row.user_agent,
            row.request_id,
            row.detail,
        ],
        |found| found.get(0),
    )?;
    Ok(row.recorded(position, &event))
}

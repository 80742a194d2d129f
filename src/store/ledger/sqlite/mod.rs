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
//!
//! Here: the ledger's connections and its reads; `writer`: rotations,
//! their group commit, and the checkpoints.

use std::path::PathBuf;
use std::sync::atomic::AtomicU32;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::user;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, Row};
use sea_orm::{
    ActiveEnum, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement, TryGetable,
};
use uuid::Uuid;

mod writer;

#[cfg(test)]
pub(super) use writer::CHECKPOINT_EVERY;
use writer::Queue;

use super::KeyHolder;
use super::pool::PoolLedger;

/// Reader connections kept for reuse; more are opened when threads read at once.
const MAX_IDLE: usize = 8;

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

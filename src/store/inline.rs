//! The hot reads on SQLite, run on the calling thread.
//!
//! sqlx runs each SQLite connection on a worker thread of its own: every
//! statement is a message to that thread and a wake-up back, and the pool
//! pings the connection again as it is returned. For the guard's query that
//! hand-off costs ten times what SQLite does (see the README's benchmarks):
//! SQLite answers a primary-key probe in a few microseconds, less than one
//! context switch. So the reads every protected request makes go through
//! connections of their own on the same file, used in place.
//!
//! Nothing is cached: every call reads the tables, so a revocation committed
//! by any process on the file counts on the next request. The connections
//! are `query_only`, and in WAL mode a reader neither waits for the writer nor
//! blocks it. They never wait for a lock either (busy timeout 0): if SQLite
//! answers busy, the caller asks the pool instead.

use std::path::PathBuf;
use std::sync::Mutex;

use entity::user;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row};
use sea_orm::{
    ActiveEnum, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement, TryGetable,
};
use uuid::Uuid;

/// Connections kept for reuse; more are opened when threads read at once.
const MAX_IDLE: usize = 8;

const USER_UNLESS_REVOKED: &str = "SELECT id, username, username_key, email, password_hash, role, created_at \
     FROM users WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM revocations WHERE id IN (?2, ?3))";

const IS_REVOKED: &str = "SELECT EXISTS (SELECT 1 FROM revocations WHERE id IN (?1, ?2))";

pub(super) struct InlineReader {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl InlineReader {
    /// A reader on the file behind `db`, or `None` when `db` is not a SQLite
    /// file (PostgreSQL, or an in-memory database no other connection sees).
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
        let reader = Self {
            path: PathBuf::from(file),
            idle: Mutex::new(Vec::new()),
        };
        // Fail at start, not on the first request, if the file can't be read so.
        let first = reader
            .connect()
            .map_err(|err| DbErr::Custom(format!("cannot open an inline reader: {err}")))?;
        reader.give_back(first);
        Ok(Some(reader))
    }

    fn connect(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::ZERO)?;
        conn.pragma_update(None, "query_only", true)?;
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push(conn);
        }
    }

    /// Runs `read` on an idle connection, or a new one. A connection that saw
    /// an error is dropped rather than reused.
    fn with<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match idle {
            Some(conn) => conn,
            None => self.connect()?,
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
    ) -> rusqlite::Result<Option<user::Model>> {
        self.with(|conn| {
            conn.prepare_cached(USER_UNLESS_REVOKED)?
                .query_row((user_id, sid, jti), user_from_row)
                .optional()
        })
    }

    /// See [`super::Store::is_revoked`].
    pub(super) fn is_revoked(&self, sid: Uuid, jti: Uuid) -> rusqlite::Result<bool> {
        self.with(|conn| {
            conn.prepare_cached(IS_REVOKED)?
                .query_row((sid, jti), |row| row.get(0))
        })
    }

    /// The cheapest statement on this path: what every read here costs at least.
    pub(super) fn round_trip(&self) -> rusqlite::Result<i64> {
        self.with(|conn| {
            conn.prepare_cached("SELECT 1")?
                .query_row((), |row| row.get(0))
        })
    }
}

/// Is this the benign "busy" a reader may meet, rather than a real fault?
pub(super) fn is_busy(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<user::Model> {
    let role: String = row.get(5)?;
    let role = user::Role::try_from_value(&role).map_err(|err| {
        rusqlite::Error::FromSqlConversionFailure(5, rusqlite::types::Type::Text, Box::new(err))
    })?;
    Ok(user::Model {
        id: row.get(0)?,
        username: row.get(1)?,
        username_key: row.get(2)?,
        email: row.get(3)?,
        password_hash: row.get(4)?,
        role,
        created_at: row.get(6)?,
    })
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use migration::{Migrator, MigratorTrait};

    use super::super::{NewSession, NewUser, Store};
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
        inline.end_session(bob_sid, 0).await.unwrap();
        let marked = inline
            .rotate(
                &crate::auth::jwt::Claims {
                    sub: alice.id,
                    sid: alice_sid,
                    iat: 0,
                    exp: Utc::now().timestamp() + 60,
                    jti: revoked_jti,
                    typ: crate::auth::jwt::TokenType::Refresh,
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
        pooled.end_session(sid, 0).await.unwrap();
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
}

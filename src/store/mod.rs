//! Everything authgraph asks of the database, on SeaORM, for SQLite and PostgreSQL alike.

mod accounts;
mod connect;
mod inline;
mod revocations;
mod users;

pub use accounts::SetRoleError;
pub use connect::{connect, migrate};
pub use revocations::Rotation;
pub use users::{CreateUserError, NewSession, NewUser};

use std::sync::Arc;

use sea_orm::DatabaseConnection;
use uuid::Uuid;

use inline::InlineSqlite;

/// What the store needs to know of a presented token: whose it is, its
/// session, its own id and when it expires. (The token's other claims are
/// the token code's.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenRef {
    pub user: Uuid,
    pub sid: Uuid,
    pub jti: Uuid,
    /// Unix seconds.
    pub exp: i64,
}

#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    /// On a SQLite file: the hot path, run on the calling thread.
    inline: Option<Arc<InlineSqlite>>,
}

impl Store {
    /// The store on `db`. On a SQLite file the guard's reads and a refresh's
    /// write run in place, on connections of their own (see `inline.rs`);
    /// everything else, and everything on PostgreSQL, goes through the pool.
    pub async fn open(db: DatabaseConnection) -> Result<Self, sea_orm::DbErr> {
        let inline = InlineSqlite::open(&db).await?.map(Arc::new);
        Ok(Self { db, inline })
    }

    /// The store on `db` with every read through the pool (for comparisons).
    pub fn pooled_only(db: DatabaseConnection) -> Self {
        Self { db, inline: None }
    }

    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The one row a query on a unique key finds. Not `.one()`: that appends a
    /// bound `LIMIT ?`, and SQLite re-compiles a cached statement on every run
    /// when a parameter it planned with (the limit) is bound again.
    pub(crate) async fn unique<E: sea_orm::EntityTrait>(
        &self,
        query: sea_orm::Select<E>,
    ) -> Result<Option<E::Model>, sea_orm::DbErr> {
        unique(&self.db, query).await
    }

    /// Does the database answer?
    pub async fn ping(&self) -> Result<(), sea_orm::DbErr> {
        self.db.ping().await
    }

    /// `SELECT 1` by the path the guard's reads take: the round trip every
    /// protected request pays at least. For benchmarks.
    pub async fn round_trip(&self) -> Result<(), sea_orm::DbErr> {
        use sea_orm::ConnectionTrait;
        if let Some(inline) = &self.inline {
            return inline
                .round_trip()
                .map(|_| ())
                .map_err(|err| sea_orm::DbErr::Custom(err.to_string()));
        }
        let backend = self.db.get_database_backend();
        self.db
            .query_one_raw(sea_orm::Statement::from_string(backend, "SELECT 1"))
            .await
            .map(|_| ())
    }

    /// Runs `work` in place when the store can; `None` sends the caller to
    /// the pool (not a SQLite file, or SQLite was busy or failed).
    fn in_place<T>(&self, work: impl FnOnce(&InlineSqlite) -> rusqlite::Result<T>) -> Option<T> {
        let inline = self.inline.as_deref()?;
        match work(inline) {
            Ok(value) => Some(value),
            Err(err) if inline::is_busy(&err) => {
                tracing::debug!("SQLite busy in place; going through the pool");
                None
            }
            Err(err) => {
                tracing::warn!(error = %err, "SQLite failed in place; going through the pool");
                None
            }
        }
    }
}

/// See [`Store::unique`]; for use inside a transaction.
pub(crate) async fn unique<E: sea_orm::EntityTrait>(
    db: &impl sea_orm::ConnectionTrait,
    query: sea_orm::Select<E>,
) -> Result<Option<E::Model>, sea_orm::DbErr> {
    Ok(query.all(db).await?.into_iter().next())
}

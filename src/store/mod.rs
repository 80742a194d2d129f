//! Everything authgraph asks of the database, on SeaORM, for SQLite and PostgreSQL alike.

mod accounts;
mod connect;
mod revocations;
mod users;

pub use accounts::SetRoleError;
pub use connect::{PoolSettings, connect, migrate};
pub use revocations::Rotation;
pub use users::{CreateUserError, NewSession, NewUser};

use sea_orm::DatabaseConnection;

#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
}

impl Store {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
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
}

/// See [`Store::unique`]; for use inside a transaction.
pub(crate) async fn unique<E: sea_orm::EntityTrait>(
    db: &impl sea_orm::ConnectionTrait,
    query: sea_orm::Select<E>,
) -> Result<Option<E::Model>, sea_orm::DbErr> {
    Ok(query.all(db).await?.into_iter().next())
}

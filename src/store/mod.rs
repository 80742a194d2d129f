//! Everything authgraph asks of the database, on SeaORM, for SQLite and PostgreSQL alike.

mod accounts;
mod connect;
mod revocations;
mod users;

pub use accounts::SetRoleError;
pub use connect::connect;
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

    /// Does the database answer?
    pub async fn ping(&self) -> Result<(), sea_orm::DbErr> {
        self.db.ping().await
    }
}

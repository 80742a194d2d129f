//! Everything authgraph asks of the database, on SeaORM, for SQLite and
//! PostgreSQL alike, split by what is asked: user rows (`users`), sessions
//! (`sessions`), the token ledger, the blacklist and the hot path over it
//! (`ledger`), and the security-event log every change writes into
//! (`events`).

mod api_keys;
mod connect;
mod events;
mod key_checks;
mod ledger;
mod mail;
mod mfa;
mod sessions;
mod throttle;
mod users;

pub use api_keys::{KeyHolder, LAST_USED_EVERY};
pub use connect::{connect, migrate};
pub use events::EventFilter;
pub(crate) use events::{Row as EventRow, SQLITE_INSERT as SQLITE_EVENT_INSERT, append_in};
pub use key_checks::Sealed;
pub use ledger::{Rotation, RotationRules};
pub use mail::QueuedMail;
pub use mfa::{Factor, Finish, Proof};
pub use sessions::NewSession;
pub use throttle::{Attempt, throttle_key};
pub use users::{CreateUserError, NewUser, SetRoleError};

use chrono::{DateTime, Utc};
use entity::user;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};
use uuid::Uuid;

use ledger::TokenLedger;

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
    ledger: TokenLedger,
}

impl Store {
    /// The store on `db`. On a SQLite file the token ledger runs in place,
    /// on connections of its own (see `ledger`); everything else, and
    /// everything on PostgreSQL, goes through the pool.
    pub async fn open(db: DatabaseConnection) -> Result<Self, DbErr> {
        let ledger = TokenLedger::open(&db).await?;
        Ok(Self { db, ledger })
    }

    /// The store on `db` with the ledger on the pool too (for comparisons).
    pub fn pooled_only(db: DatabaseConnection) -> Self {
        let ledger = TokenLedger::pool_only(&db);
        Self { db, ledger }
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
    ) -> Result<Option<E::Model>, DbErr> {
        unique(&self.db, query).await
    }

    /// Does the database answer?
    pub async fn ping(&self) -> Result<(), DbErr> {
        self.db.ping().await
    }

    /// `SELECT 1` by the path the guard's reads take: the round trip every
    /// protected request pays at least. For benchmarks.
    pub async fn round_trip(&self) -> Result<(), DbErr> {
        self.ledger.round_trip().await
    }

    /// The user of a token, in one round trip: `None` when the user is gone or
    /// the token's `jti` or `sid` is revoked. No password hash is read.
    #[tracing::instrument(
        name = "db.ledger.user_unless_revoked",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn user_unless_revoked(
        &self,
        user_id: Uuid,
        sid: Uuid,
        jti: Uuid,
    ) -> Result<Option<user::Profile>, DbErr> {
        self.ledger.user_unless_revoked(user_id, sid, jti).await
    }

    /// Is a token with this `sid` and `jti` revoked?
    #[tracing::instrument(
        name = "db.ledger.is_revoked",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn is_revoked(&self, sid: Uuid, jti: Uuid) -> Result<bool, DbErr> {
        self.ledger.is_revoked(sid, jti).await
    }

    /// Revokes the presented refresh token and moves its session on, or
    /// says why not (a reused token ends its session, unless it was rotated
    /// less than `rules.grace` seconds ago, with its `session.ended` from
    /// `source`; an unverified user's is refused when `rules.verified_only`).
    #[tracing::instrument(
        name = "db.ledger.rotate",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn rotate(
        &self,
        old: &TokenRef,
        now: DateTime<Utc>,
        new_expires_at: i64,
        rules: RotationRules,
        source: &std::sync::Arc<crate::events::Source>,
    ) -> Result<Rotation, DbErr> {
        self.ledger
            .rotate(old, now, new_expires_at, rules, source)
            .await
    }

    /// Deletes revocations and sessions whose every token expired before
    /// `cutoff`; an ended session's revocation stays while its session row
    /// does. Returns rows deleted.
    #[tracing::instrument(
        name = "db.ledger.prune",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn prune(&self, cutoff: i64) -> Result<u64, DbErr> {
        self.ledger.prune(cutoff).await
    }
}

/// See [`Store::unique`]; for use inside a transaction.
pub(crate) async fn unique<E: sea_orm::EntityTrait>(
    db: &impl sea_orm::ConnectionTrait,
    query: sea_orm::Select<E>,
) -> Result<Option<E::Model>, DbErr> {
    Ok(query.all(db).await?.into_iter().next())
}

/// The query that finds the account a login's identifier names (a
/// username, or an email address with an `@`); `None` when none can.
pub(crate) fn login_lookup(identifier: &str) -> Option<sea_orm::Select<user::Entity>> {
    let identifier = identifier.trim();
    // No stored name or email holds a NUL (signup refuses control
    // characters), and PostgreSQL refuses one in a text parameter.
    if identifier.contains('\0') {
        return None;
    }
    let filter = if identifier.contains('@') {
        user::Column::Email.eq(identifier.to_lowercase())
    } else {
        user::Column::UsernameKey.eq(identifier.to_ascii_lowercase())
    };
    Some(user::Entity::find().filter(filter))
}

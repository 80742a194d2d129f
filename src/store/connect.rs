use std::time::Duration;

use migration::{Migrator, MigratorTrait};

use crate::config::PoolSettings;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, Statement,
    TransactionTrait,
};

/// A pooled PostgreSQL connection idle this long is pinged before use. Busy
/// connections skip the ping (one round trip fewer per query under load);
/// sqlx also pings every connection as it goes back to the pool and drops
/// the broken ones, so a restarted database is noticed either way.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);

/// Opens the pool.
///
/// SQLite gets WAL (readers never wait for the writer) with
/// `synchronous=NORMAL`: a commit is in the WAL before it is acknowledged, so
/// it survives the process crashing or being killed; only an OS crash or power
/// loss can lose the last commits (SQLite's documented WAL trade-off; use
/// PostgreSQL where that matters). Foreign keys on, and a busy timeout so a
/// second process on the same file (`authgraph promote`) queues, not fails.
///
/// PostgreSQL gets a server-side `statement_timeout`, and a pooled connection
/// idle for a while is pinged before use, so connections broken by a quiet
/// database restart are replaced instead of failing a request.
pub async fn connect(url: &str, pool: PoolSettings) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .sqlx_logging(false)
        // sqlx's acquire timeout bounds the whole wait, opening a connection
        // included (SeaORM's `connect_timeout` sets the very same option).
        .acquire_timeout(pool.connect_timeout);
    if url.starts_with("sqlite:") {
        let busy_timeout = pool.statement_timeout;
        options
            .max_connections(pool.max_connections.unwrap_or(2))
            .min_connections(1)
            // sqlx pings a pooled connection before every use by default: for
            // SQLite that is a second trip to the connection's worker thread
            // per query, and a local file has nothing to go stale.
            .test_before_acquire(false)
            .map_sqlx_sqlite_opts(move |opts| {
                opts.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                    .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(busy_timeout)
            });
    } else {
        options
            .max_connections(pool.max_connections.unwrap_or(10))
            .statement_timeout(pool.statement_timeout)
            .test_before_acquire_if_idle_for(IDLE_BEFORE_PING);
    }
    Database::connect(options).await
}

/// Any fixed number, the same in every authgraph: the advisory lock key that
/// serialises migrations ("authgrph" in ASCII).
const MIGRATION_LOCK: i64 = 0x6175_7468_6772_7068;

/// Applies pending migrations. On PostgreSQL, inside one transaction holding
/// an advisory lock: servers starting together on a new database queue here,
/// the first migrates, the rest find nothing left to do.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Migrator::up(db, None).await;
    }
    let txn = db.begin().await?;
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_advisory_xact_lock($1)",
        [MIGRATION_LOCK.into()],
    ))
    .await?;
    Migrator::up(&txn, None).await?;
    txn.commit().await
}

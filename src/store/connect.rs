use std::time::Duration;

use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};

/// Opens the pool. SQLite gets WAL (readers never wait for the writer) with
/// `synchronous=NORMAL`: a commit is in the WAL before it is acknowledged, so
/// it survives the process crashing or being killed; only an OS crash or power
/// loss can lose the last commits (SQLite's documented WAL trade-off; use
/// PostgreSQL where that matters). Foreign keys on, and a busy timeout so a
/// second process on the same file (`authgraph promote`) queues, not fails.
pub async fn connect(url: &str, max_connections: Option<u32>) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .sqlx_logging(false)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5));
    if url.starts_with("sqlite:") {
        options
            .max_connections(max_connections.unwrap_or(2))
            .min_connections(1)
            // sqlx pings a pooled connection before every use by default: for
            // SQLite that is a second trip to the connection's worker thread
            // per query, and a local file has nothing to go stale.
            .test_before_acquire(false)
            .map_sqlx_sqlite_opts(|opts| {
                opts.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                    .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(10))
            });
    } else {
        options.max_connections(max_connections.unwrap_or(10));
    }
    Database::connect(options).await
}

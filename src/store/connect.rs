use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use migration::{Migrator, MigratorTrait};

use crate::config::PoolSettings;
use sea_orm::sqlx::sqlite::SqliteConnectOptions;
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
    let sqlite_file = sqlite_file(url);
    if let Some(path) = &sqlite_file {
        create_private(path, url)
            .map_err(|err| DbErr::Custom(format!("cannot create {}: {err}", path.display())))?;
    }
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
            .test_before_acquire_if_idle_for(IDLE_BEFORE_PING)
            // PostgreSQL's NOTICEs (`relation "seaql_migrations" already
            // exists, skipping` four times at every start) are no news to
            // an operator; warnings and errors still come.
            .map_sqlx_postgres_opts(|opts| opts.options([("client_min_messages", "warning")]));
    }
    let db = Database::connect(options).await?;
    if let Some(path) = &sqlite_file {
        make_private(path)
            .map_err(|err| DbErr::Custom(format!("cannot restrict {}: {err}", path.display())))?;
    }
    Ok(db)
}

/// The file a `sqlite:` URL names, as sqlx reads it; `None` for PostgreSQL
/// and in-memory databases.
fn sqlite_file(url: &str) -> Option<PathBuf> {
    if !url.starts_with("sqlite:") || url.contains("mode=memory") {
        return None;
    }
    let options = SqliteConnectOptions::from_str(url).ok()?;
    let path = options.get_filename();
    let name = path.to_string_lossy();
    if name.starts_with(":memory:") || name.starts_with("file:sqlx-in-memory") {
        return None;
    }
    Some(path.to_path_buf())
}

/// Creates the database file mode 0600 when the URL lets SQLite create it
/// (`mode=rwc`) and it is absent: it holds password hashes. SQLite gives its
/// `-wal` and `-shm` files the database file's mode.
fn create_private(path: &Path, url: &str) -> std::io::Result<()> {
    if !url.contains("mode=rwc") || path.exists() {
        return Ok(());
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Err(err) if err.kind() != std::io::ErrorKind::AlreadyExists => Err(err),
        _ => Ok(()),
    }
}

/// A database file (and its `-wal`, `-shm`) that others may read, made by
/// an older authgraph or by hand, is restricted to its owner.
fn make_private(path: &Path) -> std::io::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = PathBuf::from(name);
        let Ok(meta) = std::fs::metadata(&file) else {
            continue;
        };
        if meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
            tracing::warn!(file = %file.display(), "the database file was readable by others: now mode 0600");
        }
    }
    Ok(())
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

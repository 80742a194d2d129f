//! The database: where it is, and how the pool is sized and waits.

use std::time::Duration;

use clap::Args;

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Database")]
pub struct DatabaseSettings {
    /// SQLite file (`sqlite://FILE?mode=rwc`) or PostgreSQL (`postgres://...`).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://authgraph.db?mode=rwc",
        hide_env_values = true,
        global = true
    )]
    pub database_url: String,

    /// Most open database connections (SQLite default 2, PostgreSQL default 10).
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", hide_env_values = true, value_parser = clap::value_parser!(u32).range(1..=1000), global = true)]
    pub database_max_connections: Option<u32>,

    /// Seconds a request waits for a database connection (opening one
    /// included) before it fails; also bounds the connect at start-up.
    #[arg(long, env = "DATABASE_CONNECT_TIMEOUT", hide_env_values = true, default_value_t = PoolSettings::DEFAULT_CONNECT_TIMEOUT, value_parser = clap::value_parser!(u64).range(1..=300), global = true)]
    pub database_connect_timeout: u64,

    /// Seconds one SQL statement may run (PostgreSQL `statement_timeout`) or
    /// wait for SQLite's write lock (busy timeout).
    #[arg(long, env = "DATABASE_STATEMENT_TIMEOUT", hide_env_values = true, default_value_t = PoolSettings::DEFAULT_STATEMENT_TIMEOUT, value_parser = clap::value_parser!(u64).range(1..=3600), global = true)]
    pub database_statement_timeout: u64,
}

impl DatabaseSettings {
    /// The database pool's settings.
    pub fn pool(&self) -> PoolSettings {
        PoolSettings {
            max_connections: self.database_max_connections,
            connect_timeout: Duration::from_secs(self.database_connect_timeout),
            statement_timeout: Duration::from_secs(self.database_statement_timeout),
        }
    }
}

/// How the pool is sized and how long it waits: `DATABASE_MAX_CONNECTIONS`,
/// `DATABASE_CONNECT_TIMEOUT` and `DATABASE_STATEMENT_TIMEOUT`.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    /// Most open connections; `None` picks the backend's default.
    pub max_connections: Option<u32>,
    pub connect_timeout: Duration,
    pub statement_timeout: Duration,
}

impl PoolSettings {
    /// `DATABASE_CONNECT_TIMEOUT`'s default, seconds.
    pub const DEFAULT_CONNECT_TIMEOUT: u64 = 5;
    /// `DATABASE_STATEMENT_TIMEOUT`'s default, seconds.
    pub const DEFAULT_STATEMENT_TIMEOUT: u64 = 10;
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: None,
            connect_timeout: Duration::from_secs(Self::DEFAULT_CONNECT_TIMEOUT),
            statement_timeout: Duration::from_secs(Self::DEFAULT_STATEMENT_TIMEOUT),
        }
    }
}

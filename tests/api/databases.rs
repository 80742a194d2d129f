//! PostgreSQL for the black-box tests: the server `AUTHGRAPH_TEST_POSTGRES_URL`
//! names, or else a throwaway cluster of Debian's `postgresql` started here
//! (initdb + pg_ctl), and a fresh database for every test.
//!
//! Where neither is there, the PostgreSQL tests say they were skipped (once, on
//! the terminal) and return. Where PostgreSQL is required (`CI` or
//! `AUTHGRAPH_TEST_REQUIRE_POSTGRES` set, or a URL given), they fail instead.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use sea_orm::ConnectionTrait;

/// Where the tests' databases are created.
enum Server {
    External(String),
    Local(Cluster),
}

impl Server {
    fn admin_url(&self) -> String {
        match self {
            Server::External(url) => url.clone(),
            Server::Local(cluster) => cluster.admin_url(),
        }
    }
}

static SHARED: OnceLock<Result<Server, String>> = OnceLock::new();

fn shared() -> Result<&'static Server, String> {
    SHARED
        .get_or_init(|| match std::env::var("AUTHGRAPH_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => Ok(Server::External(url)),
            _ => Cluster::create().map(Server::Local),
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Must the PostgreSQL tests run (rather than skip)?
fn required() -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0");
    set("CI") || set("AUTHGRAPH_TEST_REQUIRE_POSTGRES") || set("AUTHGRAPH_TEST_POSTGRES_URL")
}

/// PostgreSQL can't be had: fail where it is required, else say so once, on
/// the terminal (test output capture does not reach a direct write), and skip.
pub fn unavailable(reason: &str) {
    if required() {
        panic!("PostgreSQL is required for this run but not available: {reason}");
    }
    static SAID: OnceLock<()> = OnceLock::new();
    SAID.get_or_init(|| {
        let _ = writeln!(
            std::io::stderr(),
            "\n*** PostgreSQL tests SKIPPED: {reason}.\n*** Install Debian's `postgresql` (initdb on PATH or under \
             /usr/lib/postgresql) or set AUTHGRAPH_TEST_POSTGRES_URL to run them; CI runs them always.\n"
        );
    });
}

/// A database of its own for one test, dropped with the last server using it.
pub struct TestDatabase {
    admin_url: String,
    name: String,
    pub url: String,
    /// The data key every server on this database is given unless a test
    /// says otherwise (servers of one database must share one).
    keys: tempfile::TempDir,
}

impl TestDatabase {
    /// A new, empty database on the shared server; `None` after
    /// [`unavailable`] when there is no PostgreSQL.
    pub async fn fresh() -> Option<Self> {
        let server = match shared() {
            Ok(server) => server,
            Err(reason) => {
                unavailable(&reason);
                return None;
            }
        };
        Some(Self::create_on(server.admin_url()).await)
    }

    /// For a test that runs the binary itself: `Some(None)` on SQLite (the
    /// default file in the working directory), `Some(Some(database))` on
    /// PostgreSQL, `None` when there is no PostgreSQL (skip).
    pub async fn for_backend(backend: crate::helpers::Backend) -> Option<Option<Self>> {
        match backend {
            crate::helpers::Backend::Sqlite => Some(None),
            crate::helpers::Backend::Postgres => Self::fresh().await.map(Some),
        }
    }

    /// A new, empty database on the server `admin_url` points at.
    pub async fn create_on(admin_url: String) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "authgraph_test_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let admin = sea_orm::Database::connect(&admin_url)
            .await
            .unwrap_or_else(|err| panic!("cannot reach the test PostgreSQL: {err}"));
        admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .expect("drop a leftover test database");
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create the test database");
        let _ = admin.close().await;
        let mut url = url::Url::parse(&admin_url).expect("a postgres:// URL");
        url.set_path(&name);
        let keys = tempfile::tempdir().expect("a directory for the data key");
        let key = keys.path().join("authgraph.data.key");
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("system randomness");
        std::fs::write(&key, format!("{}\n", hex::encode(bytes))).expect("write the data key");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
            .expect("a private data key");
        Self {
            admin_url,
            name,
            url: url.to_string(),
            keys,
        }
    }

    /// The data key file of the servers on this database.
    pub fn data_key_file(&self) -> String {
        self.keys
            .path()
            .join("authgraph.data.key")
            .display()
            .to_string()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop runs inside a test's runtime: do the async work on a thread of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let admin = sea_orm::Database::connect(&admin_url).await.ok()?;
                let _ = admin.execute_unprepared(&sql).await;
                admin.close().await.ok()
            })
        })
        .join();
    }
}

/// A throwaway PostgreSQL cluster in a temp directory, on 127.0.0.1 and a
/// free port. A watchdog process stops it and removes its files when this
/// value is dropped or the test process ends, however it ends.
pub struct Cluster {
    bin: PathBuf,
    base: PathBuf,
    port: u16,
    owner: Option<(u32, u32)>,
    watchdog: Option<Child>,
}

impl Cluster {
    /// A cluster of its own (for a test that stops and starts it), or `None`
    /// after [`unavailable`].
    pub fn private() -> Option<Self> {
        match Self::create() {
            Ok(cluster) => Some(cluster),
            Err(reason) => {
                unavailable(&reason);
                None
            }
        }
    }

    fn create() -> Result<Self, String> {
        let bin = find_bin_dir().ok_or("no PostgreSQL server programs (initdb) found")?;
        // initdb and pg_ctl refuse to run as root: run them as `postgres` then.
        // SAFETY: geteuid has no preconditions.
        let owner = if unsafe { libc::geteuid() } == 0 {
            Some(postgres_user().ok_or("running as root and there is no `postgres` user")?)
        } else {
            None
        };
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let base = std::env::temp_dir().join(format!(
            "authgraph-pg-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&base).map_err(|e| format!("create {}: {e}", base.display()))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&base, Some(uid), Some(gid))
                .map_err(|e| format!("chown {}: {e}", base.display()))?;
        }
        let mut cluster = Self {
            bin,
            base,
            port: 0,
            owner,
            watchdog: None,
        };
        cluster.watchdog = Some(cluster.spawn_watchdog()?);
        cluster.run(
            cluster
                .command("initdb")
                .args([
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                    "-D",
                ])
                .arg(cluster.data()),
        )?;
        let mut last = String::new();
        for _ in 0..5 {
            cluster.port = free_port();
            match cluster.start() {
                Ok(()) => return Ok(cluster),
                Err(err) => last = err,
            }
        }
        Err(last)
    }

    fn data(&self) -> PathBuf {
        self.base.join("data")
    }

    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(&self) -> Result<(), String> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300",
            self.port,
            self.base.display()
        );
        self.run(
            self.command("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .args(["-o", &options, "-l"])
                .arg(self.base.join("log"))
                .args(["-w", "-t", "60", "start"]),
        )
    }

    /// Stops the server (fast shutdown: sessions are ended, as on a restart).
    pub fn stop(&self) {
        self.run(
            self.command("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .args(["-m", "fast", "-w", "stop"]),
        )
        .expect("stop PostgreSQL");
    }

    fn command(&self, program: &str) -> Command {
        self.as_owner(Command::new(self.bin.join(program)))
    }

    /// `command`, run in the cluster's directory as the user who owns it.
    fn as_owner(&self, mut command: Command) -> Command {
        command.current_dir(&self.base);
        if let Some((uid, gid)) = self.owner {
            use std::os::unix::process::CommandExt;
            command.uid(uid).gid(gid);
        }
        command
    }

    fn run(&self, command: &mut Command) -> Result<(), String> {
        let output = command
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("run {command:?}: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            let log = std::fs::read_to_string(self.base.join("log")).unwrap_or_default();
            Err(format!(
                "{command:?} failed: {}{}{log}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    /// A shell that waits for its stdin to close (this value dropped, or the
    /// test process gone), then stops the server and removes the directory.
    /// In a process group of its own, so a Ctrl-C reaches the tests, not it.
    fn spawn_watchdog(&self) -> Result<Child, String> {
        use std::os::unix::process::CommandExt;
        self.as_owner(Command::new("/bin/sh"))
            .args([
                "-c",
                r#"read _; "$1/pg_ctl" -D "$2/data" -m immediate -w stop >/dev/null 2>&1; rm -rf "$2""#,
                "watchdog",
            ])
            .arg(&self.bin)
            .arg(&self.base)
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn the cluster's watchdog: {e}"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            drop(watchdog.stdin.take());
            let _ = watchdog.wait();
        }
    }
}

/// `initdb`'s directory: on PATH, else the newest under /usr/lib/postgresql.
fn find_bin_dir() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
    });
    if let Some(dir) = on_path {
        // Debian links the programs into PATH; pg_ctl finds `postgres` beside its real path.
        return std::fs::canonicalize(dir.join("pg_ctl"))
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .or(Some(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn postgres_user() -> Option<(u32, u32)> {
    // SAFETY: the name is a valid C string; the result is read before any other getpw* call.
    let entry = unsafe { libc::getpwnam(c"postgres".as_ptr()) };
    if entry.is_null() {
        return None;
    }
    // SAFETY: checked non-null above; getpwnam returns a valid passwd record.
    Some(unsafe { ((*entry).pw_uid, (*entry).pw_gid) })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

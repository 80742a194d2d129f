//! Starts the real server on a random port with a fresh database, and speaks
//! GraphQL over HTTP to it: in this process through the same `app::build()`
//! the binary runs (most tests: faster), or as the real `authgraph` binary
//! where the process is the point (logs, crashes, restarts, signals, CLI).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use serde_json::{Value, json};

pub use crate::databases::{Cluster, TestDatabase};
pub use rstest::rstest;
pub use rstest_reuse::apply;

/// The binary under test: cargo's build of this checkout, or the one
/// `AUTHGRAPH_TEST_BIN` names (to run the suite against a release build).
pub fn bin() -> String {
    std::env::var("AUTHGRAPH_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_authgraph").into())
}
pub const PASSWORD: &str = "correct horse battery";

/// The environment every test server gets unless a test says otherwise:
/// no rate limit (every test client is 127.0.0.1) and quiet logs.
const DEFAULTS: &[(&str, &str)] = &[
    ("BIND_ADDR", "127.0.0.1:0"),
    ("AUTH_RATE_LIMIT_PER_MINUTE", "0"),
    ("RUST_LOG", "info"),
];

/// The settings every test server gets unless a test says otherwise:
/// [`DEFAULTS`], and `JWT_ALGORITHM` from `AUTHGRAPH_TEST_JWT_ALGORITHM`
/// when that is set (to run the whole suite under an asymmetric algorithm).
pub fn defaults() -> Vec<(String, String)> {
    let mut defaults: Vec<(String, String)> = DEFAULTS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Ok(algorithm) = std::env::var("AUTHGRAPH_TEST_JWT_ALGORITHM") {
        defaults.push(("JWT_ALGORITHM".into(), algorithm));
    }
    defaults
}

/// The database a test server runs on. Most tests run once on each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default: a SQLite file in the server's directory.
    Sqlite,
    /// A fresh database on the test PostgreSQL server (see `databases`).
    Postgres,
}

/// How a test server runs.
enum Running {
    /// The binary, as a child process.
    Process(Child),
    /// `app::build()` and `App::run` on the test's runtime.
    InProcess(tokio::task::JoinHandle<std::io::Result<()>>),
}

pub struct TestServer {
    running: Running,
    pub addr: String,
    dir: Arc<tempfile::TempDir>,
    env: Vec<(String, String)>,
    database: Option<Arc<TestDatabase>>,
    pub logs: Arc<Mutex<Vec<String>>>,
    client: reqwest::Client,
}

impl TestServer {
    /// A server in this process on a fresh database of `backend`; `None`
    /// when that is PostgreSQL and there is none here (the skip is reported
    /// by `databases`). It logs nothing and can't be restarted: see
    /// [`TestServer::start_process`] for that.
    pub async fn start(backend: Backend) -> Option<Self> {
        Self::start_with(backend, &[]).await
    }

    /// [`TestServer::start`] with `env` (settings by their variable names)
    /// on top of the defaults.
    pub async fn start_with(backend: Backend, env: &[(&str, &str)]) -> Option<Self> {
        let database = TestDatabase::for_backend(backend).await?.map(Arc::new);
        Some(Self::in_process(database, env).await)
    }

    /// The real binary on a fresh database of `backend`, its log collected.
    pub async fn start_process(backend: Backend) -> Option<Self> {
        Self::start_process_with(backend, &[]).await
    }

    /// [`TestServer::start_process`] with `env` on top of the defaults.
    pub async fn start_process_with(backend: Backend, env: &[(&str, &str)]) -> Option<Self> {
        let database = TestDatabase::for_backend(backend).await?;
        Some(Self::start_on(database.map(Arc::new), env))
    }

    /// `app::build()` with these settings, served on this runtime. Each
    /// setting is passed as its flag (`ACCESS_TOKEN_TTL` is
    /// `--access-token-ttl`), in a directory of its own.
    async fn in_process(database: Option<Arc<TestDatabase>>, env: &[(&str, &str)]) -> Self {
        use clap::Parser;
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.push((
            "DATABASE_URL".into(),
            match &database {
                Some(database) => database.url.clone(),
                None => format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("authgraph.db").display()
                ),
            },
        ));
        env.push((
            "JWT_SECRET_FILE".into(),
            dir.path().join("authgraph.secret").display().to_string(),
        ));
        if !env.iter().any(|(k, _)| k == "DATA_KEY_FILE") {
            let key = match &database {
                Some(database) => database.data_key_file(),
                None => dir.path().join("authgraph.data.key").display().to_string(),
            };
            env.push(("DATA_KEY_FILE".into(), key));
        }
        if !env.iter().any(|(k, _)| k == "JWT_SIGNING_KEY_FILE") {
            env.push((
                "JWT_SIGNING_KEY_FILE".into(),
                dir.path()
                    .join("authgraph.signing.pem")
                    .display()
                    .to_string(),
            ));
        }
        // The test's own settings win over the defaults.
        let settings: std::collections::BTreeMap<String, String> = defaults()
            .into_iter()
            .chain(env.iter().cloned())
            .filter(|(k, _)| k != "RUST_LOG")
            .collect();
        let flags = settings
            .into_iter()
            .map(|(k, v)| format!("--{}={v}", k.to_lowercase().replace('_', "-")));
        let cli = authgraph::config::Cli::try_parse_from(
            std::iter::once("authgraph".to_owned()).chain(flags),
        )
        .expect("test settings parse");
        let app = authgraph::app::build(&cli.settings)
            .await
            .unwrap_or_else(|err| panic!("the server did not start: {err}"));
        let addr = app.local_addr().to_string();
        let task = tokio::spawn(app.run(std::future::pending()));
        Self {
            running: Running::InProcess(task),
            addr,
            dir,
            env,
            database,
            logs: Arc::new(Mutex::new(Vec::new())),
            client: reqwest::Client::new(),
        }
    }

    /// A server on `database` (PostgreSQL, possibly shared with other
    /// servers) or, for `None`, on a new SQLite file; in a new directory.
    pub fn start_on(database: Option<Arc<TestDatabase>>, env: &[(&str, &str)]) -> Self {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if let Some(database) = &database {
            env.push(("DATABASE_URL".into(), database.url.clone()));
            // Servers of one database share its data key.
            if !env.iter().any(|(k, _)| k == "DATA_KEY_FILE") {
                env.push(("DATA_KEY_FILE".into(), database.data_key_file()));
            }
        }
        Self::spawn(dir, env, database)
    }

    /// Stops this server (SIGKILL: nothing gets to flush) and starts a new one
    /// on the same directory, database and key file.
    pub async fn restart(mut self) -> Self {
        assert!(
            matches!(self.running, Running::Process(_)),
            "restart needs a process server: start_process"
        );
        self.kill();
        Self::spawn(
            self.dir.clone(),
            std::mem::take(&mut self.env),
            self.database.clone(),
        )
    }

    /// SIGKILL, and wait for the process to be gone (in process: stop serving).
    pub fn kill(&mut self) {
        match &mut self.running {
            Running::Process(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Running::InProcess(task) => task.abort(),
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        match &self.running {
            Running::Process(child) => child.id(),
            Running::InProcess(_) => panic!("an in-process server has no process: start_process"),
        }
    }

    /// Is the process still there (not exited, not crashed)?
    pub fn is_running(&mut self) -> bool {
        match &mut self.running {
            Running::Process(child) => matches!(child.try_wait(), Ok(None)),
            Running::InProcess(task) => !task.is_finished(),
        }
    }

    /// Where this server keeps its data, for a test that reads it directly.
    pub fn database_url(&self) -> String {
        match &self.database {
            Some(database) => database.url.clone(),
            None => format!("sqlite://{}", self.database_path().display()),
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn database_path(&self) -> PathBuf {
        self.dir.path().join("authgraph.db")
    }

    /// Runs `authgraph ARGS` with this server's settings, on its database.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        let mut command = base_command(self.dir.path());
        for (k, v) in DEFAULTS {
            command.env(k, v);
        }
        for (k, v) in &self.env {
            command.env(k, v);
        }
        command.args(args).output().expect("run authgraph")
    }

    /// Signs up `username` and makes them ADMIN with `authgraph promote`.
    pub async fn admin(&self, username: &str) -> Session {
        let session = self.signup(username).await;
        let output = self.cli(&["promote", username]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        session
    }

    fn spawn(
        dir: Arc<tempfile::TempDir>,
        env: Vec<(String, String)>,
        database: Option<Arc<TestDatabase>>,
    ) -> Self {
        let mut command = base_command(dir.path());
        for (k, v) in defaults() {
            command.env(k, v);
        }
        for (k, v) in &env {
            command.env(k, v);
        }
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn authgraph");
        let stderr = child.stderr.take().expect("stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = bound_address(&line) {
                    let _ = tx.send(addr);
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "authgraph did not start; its log:\n{}",
                    logs.lock().unwrap().join("\n")
                );
            }
        };
        Self {
            running: Running::Process(child),
            addr,
            dir,
            env,
            database,
            logs,
            client: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// POSTs a JSON body to /graphql; returns the status and the parsed body.
    pub async fn post_json(&self, token: Option<&str>, body: &Value) -> (u16, Value) {
        let mut request = self.client.post(self.url("/graphql")).json(body);
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON body"))
    }

    /// Runs one operation; asserts HTTP 200 and returns the GraphQL response.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let (status, body) = self
            .post_json(token, &json!({ "query": query, "variables": variables }))
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Runs one operation with a raw `Authorization` header value.
    pub async fn gql_with_header(&self, authorization: &str, query: &str) -> Value {
        self.gql_as(authorization, query, json!({})).await
    }

    /// [`Self::gql_with_header`] with variables.
    pub async fn gql_as(&self, authorization: &str, query: &str, variables: Value) -> Value {
        self.client
            .post(self.url("/graphql"))
            .header("Authorization", authorization)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("JSON body")
    }

    pub async fn signup(&self, username: &str) -> Session {
        let body = self
            .gql(
                None,
                SIGNUP,
                json!({ "input": {
                    "username": username,
                    "email": format!("{username}@example.com"),
                    "password": PASSWORD,
                }}),
            )
            .await;
        Session::from_payload(&body, "signup")
    }

    /// [`Self::signup`] with an owned name (for futures that outlive a loop).
    pub async fn signup_as(&self, username: String) -> Session {
        self.signup(&username).await
    }

    pub async fn login(&self, username: &str, password: &str) -> Value {
        self.gql(
            None,
            LOGIN,
            json!({ "input": { "username": username, "password": password } }),
        )
        .await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Value {
        self.gql(None, REFRESH, json!({ "t": refresh_token })).await
    }

    pub async fn logout(&self, refresh_token: &str) -> Value {
        self.gql(
            None,
            "mutation($t: String!) { logout(refreshToken: $t) }",
            json!({ "t": refresh_token }),
        )
        .await
    }

    pub async fn me(&self, access_token: &str) -> Value {
        self.gql(
            Some(access_token),
            "{ me { id username email role } }",
            json!({}),
        )
        .await
    }

    pub async fn verify(&self, token: &str) -> Value {
        let body = self
            .gql(
                None,
                "query($t: String!) { verifyToken(token: $t) { valid reason tokenType userId expiresAt } }",
                json!({ "t": token }),
            )
            .await;
        assert!(
            body.get("errors").is_none(),
            "verifyToken never errors: {body}"
        );
        body["data"]["verifyToken"].clone()
    }

    /// The password hash stored for `username`, read from the database.
    /// A connection of the test's own to this server's database.
    pub async fn db(&self) -> sea_orm::DatabaseConnection {
        sea_orm::Database::connect(self.database_url())
            .await
            .expect("open the test database")
    }

    pub async fn stored_password_hash(&self, username: &str) -> String {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        let db = sea_orm::Database::connect(self.database_url())
            .await
            .expect("open the test database");
        let user = entity::user::Entity::find()
            .filter(entity::user::Column::Username.eq(username))
            .one(&db)
            .await
            .expect("query users")
            .expect("the user exists");
        user.password_hash
    }

    /// Does a log line contain `needle` within 5 s? (A line about a request
    /// may reach the log just after the response reaches the client.)
    pub async fn logs_soon(&self, needle: &str) -> bool {
        for _ in 0..50 {
            if self.log_text().contains(needle) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// Everything the server logged so far (a process server's only).
    pub fn log_text(&self) -> String {
        assert!(
            matches!(self.running, Running::Process(_)),
            "an in-process server's log is not collected: start_process"
        );
        self.logs.lock().unwrap().join("\n")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The address in the "listening on http://ADDR/graphql" line, text or JSON logs alike.
pub fn bound_address(line: &str) -> Option<String> {
    let rest = line.split("listening on http://").nth(1)?;
    Some(
        rest.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']'))
            .collect(),
    )
}

/// A thread of a server process, as `/proc` shows it.
#[derive(Debug)]
pub struct Thread {
    pub name: String,
    pub nice: i64,
}

fn thread_from_stat(stat: &str) -> Thread {
    let (open, close) = (stat.find('(').unwrap(), stat.rfind(')').unwrap());
    // After the name: state (field 3) ... nice (field 19).
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    Thread {
        name: stat[open + 1..close].to_owned(),
        nice: fields[16].parse().unwrap(),
    }
}

/// Every thread of process `pid`.
pub fn threads(pid: u32) -> Vec<Thread> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("stat")).ok())
                .map(|stat| thread_from_stat(&stat))
                .collect()
        })
        .unwrap_or_default()
}

/// The main thread of process `pid`.
pub fn main_thread(pid: u32) -> Thread {
    thread_from_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap())
}

/// `authgraph` in `dir` with a clean environment (nothing of the caller's leaks in).
pub fn base_command(dir: &Path) -> Command {
    let mut command = Command::new(bin());
    command.current_dir(dir).env_clear();
    if let Ok(path) = std::env::var("PATH") {
        command.env("PATH", path);
    }
    command
}

pub const SIGNUP: &str = "mutation($input: SignupInput!) { signup(input: $input) { accessToken refreshToken tokenType expiresIn user { id username email role createdAt } } }";
pub const LOGIN: &str = "mutation($input: LoginInput!) { login(input: $input) { accessToken refreshToken tokenType expiresIn user { id username email role createdAt } } }";
pub const REFRESH: &str = "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken refreshToken tokenType expiresIn user { id username email role createdAt } } }";

/// The tokens of one session.
#[derive(Debug, Clone)]
pub struct Session {
    pub access: String,
    pub refresh: String,
    pub user_id: String,
}

impl Session {
    pub fn from_payload(body: &Value, field: &str) -> Self {
        let payload = &body["data"][field];
        assert!(payload.is_object(), "{field} failed: {body}");
        Self {
            access: payload["accessToken"].as_str().unwrap().to_owned(),
            refresh: payload["refreshToken"].as_str().unwrap().to_owned(),
            user_id: payload["user"]["id"].as_str().unwrap().to_owned(),
        }
    }
}

/// The first error's `extensions.code` (or "" when there is none).
pub fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("")
}

/// The first error's `extensions.reason`.
pub fn reason(body: &Value) -> &str {
    body["errors"][0]["extensions"]["reason"]
        .as_str()
        .unwrap_or("")
}

/// The claims of a JWT, read without checking anything (as a client would).
pub fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// The header of a JWT.
pub fn header(token: &str) -> Value {
    use base64::Engine;
    let part = token.split('.').next().expect("three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON header")
}

/// The backends most tests run on: `#[apply(backends)]` on an
/// `async fn name(#[case] backend: Backend)` makes `name::case_1_sqlite` and
/// `name::case_2_postgres`.
#[rstest_reuse::template]
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn backends(#[case] backend: Backend) {}

/// The access-token algorithm the test servers run under by default.
pub fn algorithm() -> String {
    std::env::var("AUTHGRAPH_TEST_JWT_ALGORITHM").unwrap_or_else(|_| "HS256".into())
}

/// Signs `claims` as `server` signs its access tokens: the header of one of
/// its tokens (`like`: `alg`, `kid`), changed by `edit`; under the key it
/// signs with (`secret` under HS256, else its signing key file).
pub fn sign_like(
    server: &TestServer,
    secret: &str,
    like: &str,
    claims: &Value,
    edit: impl FnOnce(&mut jsonwebtoken::Header),
) -> String {
    use jsonwebtoken::{Algorithm, EncodingKey};
    let mut header: jsonwebtoken::Header =
        serde_json::from_value(header(like)).expect("a JWT header");
    let key = match header.alg {
        Algorithm::HS256 => EncodingKey::from_secret(secret.as_bytes()),
        alg => {
            let pem = std::fs::read(server.dir().join("authgraph.signing.pem"))
                .expect("the server's signing key");
            match alg {
                Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
                Algorithm::ES256 => EncodingKey::from_ec_pem(&pem),
                _ => EncodingKey::from_rsa_pem(&pem),
            }
            .expect("a PEM key")
        }
    };
    edit(&mut header);
    jsonwebtoken::encode(&header, claims, &key).expect("signed")
}

/// The median of response times (for "about the same time" comparisons).
pub fn median(times: &mut [f64]) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

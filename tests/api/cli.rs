//! The binary as an operator meets it: subcommands, settings, bad settings.

use std::process::Output;

use serde_json::json;

use crate::helpers::*;

fn run(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = base_command(dir);
    command.args(args).envs(env.iter().copied());
    command.output().expect("run authgraph")
}

/// Starts `authgraph ARGS` in `dir` and waits for its bound address. The rest
/// of its log keeps being read (so it never writes to a closed pipe) and comes
/// back, line by line, when the process ends.
fn spawn_server(
    dir: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (
    std::process::Child,
    String,
    std::thread::JoinHandle<Vec<String>>,
) {
    use std::io::BufRead;
    let mut child = base_command(dir)
        .args(args)
        .envs(env.iter().copied())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn authgraph");
    let mut lines = std::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    let addr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| bound_address(&l))
        .expect("the bound address is logged");
    let rest = std::thread::spawn(move || lines.map_while(Result::ok).collect());
    (child, addr, rest)
}

/// A bad setting: exit code 2 and exactly one line on stderr naming it.
fn assert_refused(output: &Output, setting: &str) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(stderr.contains(setting), "names {setting}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn schema_graphql_is_exactly_what_authgraph_schema_prints() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(dir.path(), &["schema"], &[]);
    assert!(output.status.success());
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
        .expect("schema.graphql at the repository root");
    let printed = String::from_utf8(output.stdout).unwrap();
    assert!(
        printed == committed,
        "schema.graphql is stale: run `cargo run -- schema > schema.graphql`"
    );
    for name in [
        "signup",
        "login",
        "refreshToken",
        "logout",
        "me",
        "verifyToken",
        "scalar DateTime",
    ] {
        assert!(printed.contains(name), "{name}");
    }
}

#[test]
fn bad_settings_end_the_start_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let short = "only-twenty-bytes-xx";
    let out = assert_refused(
        &run(dir.path(), &[], &[("JWT_SECRET", short)]),
        "JWT_SECRET",
    );
    assert!(!out.contains(short), "the secret is not shown: {out}");
    assert_refused(
        &run(dir.path(), &[], &[("ACCESS_TOKEN_TTL", "soon")]),
        "ACCESS_TOKEN_TTL",
    );
    assert_refused(
        &run(dir.path(), &[], &[("REFRESH_TOKEN_TTL", "-1")]),
        "REFRESH_TOKEN_TTL",
    );
    assert_refused(
        &run(dir.path(), &[], &[("JWT_LEEWAY", "1.5")]),
        "JWT_LEEWAY",
    );
    // A choice setting's refusal lists the good values.
    for (setting, value, good) in [
        (
            "JWT_ALGORITHM",
            "ed25519",
            "one of HS256, EdDSA, ES256, RS256",
        ),
        ("REFRESH_TOKEN_COOKIE", "true", "one of on, off"),
        ("LOG_FORMAT", "xml", "one of text, json"),
        ("EMAIL_VERIFICATION", "always", "one of optional, required"),
    ] {
        let out = assert_refused(&run(dir.path(), &[], &[(setting, value)]), setting);
        assert!(out.contains(good), "{setting}: {out}");
    }
    let out = assert_refused(
        &run(dir.path(), &["gateway-config", "envoy"], &[]),
        "CONSUMER",
    );
    assert!(out.contains("one of hasura, apollo-router, yoga"), "{out}");
    assert_refused(
        &run(dir.path(), &[], &[("REAUTH_WINDOW", "3601")]),
        "REAUTH_WINDOW",
    );
    for days in ["0", "3651", "a year"] {
        assert_refused(
            &run(dir.path(), &[], &[("SECURITY_EVENTS_RETENTION_DAYS", days)]),
            "SECURITY_EVENTS_RETENTION_DAYS",
        );
    }
    assert_refused(
        &run(dir.path(), &[], &[("AUTH_RATE_LIMIT_PER_MINUTE", "many")]),
        "AUTH_RATE_LIMIT_PER_MINUTE",
    );
    assert_refused(
        &run(dir.path(), &[], &[("BIND_ADDR", "nowhere")]),
        "BIND_ADDR",
    );
    assert_refused(
        &run(dir.path(), &["--access-token-ttl", "0"], &[]),
        "ACCESS_TOKEN_TTL",
    );
    let out = assert_refused(
        &run(dir.path(), &[], &[("CORS_ALLOWED_ORIGINS", "*")]),
        "CORS_ALLOWED_ORIGINS",
    );
    assert!(out.contains("wildcards are refused"), "{out}");
    assert_refused(
        &run(
            dir.path(),
            &[],
            &[("CORS_ALLOWED_ORIGINS", "https://app.example.com/login")],
        ),
        "CORS_ALLOWED_ORIGINS",
    );
    assert_refused(
        &run(dir.path(), &[], &[("PUBLIC_URL", "auth.example.com")]),
        "PUBLIC_URL",
    );
    assert_refused(
        &run(dir.path(), &[], &[("REFRESH_TOKEN_COOKIE", "yes")]),
        "REFRESH_TOKEN_COOKIE",
    );
    let out = assert_refused(
        &run(dir.path(), &[], &[("EMAIL_VERIFICATION", "required")]),
        "EMAIL_VERIFICATION",
    );
    assert!(out.contains("SMTP_URL"), "{out}");
    assert_refused(
        &run(dir.path(), &[], &[("SMTP_URL", "ftp://mail.example.com")]),
        "SMTP_URL",
    );
    let out = assert_refused(
        &run(
            dir.path(),
            &[],
            &[
                (
                    "DATABASE_URL",
                    "postgres://user:hunter2@127.0.0.1:1/authgraph",
                ),
                ("DATABASE_CONNECT_TIMEOUT", "1"),
                ("BIND_ADDR", "127.0.0.1:0"),
            ],
        ),
        "DATABASE_URL",
    );
    assert!(!out.contains("hunter2"), "the password is not shown: {out}");
    assert!(
        out.contains("cannot reach the PostgreSQL database at 127.0.0.1:1"),
        "says which database did not answer: {out}"
    );
    assert_refused(
        &run(
            dir.path(),
            &[],
            &[
                ("DATABASE_URL", "sqlite:///no/such/dir/x.db?mode=rwc"),
                ("BIND_ADDR", "127.0.0.1:0"),
            ],
        ),
        "DATABASE_URL",
    );
    assert_refused(
        &run(dir.path(), &[], &[("DATABASE_CONNECT_TIMEOUT", "0")]),
        "DATABASE_CONNECT_TIMEOUT",
    );
    assert_refused(
        &run(dir.path(), &[], &[("DATABASE_STATEMENT_TIMEOUT", "10s")]),
        "DATABASE_STATEMENT_TIMEOUT",
    );
    assert_refused(
        &run(
            dir.path(),
            &[],
            &[
                ("DATABASE_URL", "mysql-ish://x"),
                ("BIND_ADDR", "127.0.0.1:0"),
            ],
        ),
        "DATABASE_URL",
    );
}

#[apply(backends)]
async fn migrate_applies_the_migrations_and_exits(#[case] backend: Backend) {
    use sea_orm::{EntityTrait, PaginatorTrait};
    let dir = tempfile::tempdir().unwrap();
    let Some(database) = TestDatabase::for_backend(backend).await else {
        return;
    };
    let env: Vec<(&str, &str)> = database
        .iter()
        .map(|database| ("DATABASE_URL", database.url.as_str()))
        .collect();
    let output = run(dir.path(), &["migrate"], &env);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Twice is fine.
    assert!(run(dir.path(), &["migrate"], &env).status.success());
    let url = match &database {
        Some(database) => database.url.clone(),
        None => {
            let file = dir.path().join("authgraph.db");
            assert!(file.exists(), "the default SQLite file");
            format!("sqlite://{}", file.display())
        }
    };
    let db = sea_orm::Database::connect(url).await.unwrap();
    assert_eq!(entity::user::Entity::find().count(&db).await.unwrap(), 0);
    assert_eq!(entity::session::Entity::find().count(&db).await.unwrap(), 0);
    assert_eq!(
        entity::revocation::Entity::find().count(&db).await.unwrap(),
        0
    );
}

#[apply(backends)]
async fn flags_and_a_dot_env_file_are_settings_too(#[case] backend: Backend) {
    let Some(database) = TestDatabase::for_backend(backend).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut dot_env = String::from("ACCESS_TOKEN_TTL=77\nAUTH_RATE_LIMIT_PER_MINUTE=0\n");
    if let Some(database) = &database {
        dot_env.push_str(&format!("DATABASE_URL={}\n", database.url));
    }
    std::fs::write(dir.path().join(".env"), dot_env).unwrap();
    let (mut child, addr, _log) = spawn_server(
        dir.path(),
        &[
            "serve",
            "--bind-addr",
            "127.0.0.1:0",
            "--refresh-token-ttl",
            "1234",
        ],
        &[],
    );
    let body: serde_json::Value = reqwest::Client::new()
        .post(format!("http://{addr}/graphql"))
        .json(&json!({ "query": SIGNUP, "variables": { "input": { "username": "envy", "email": "envy@example.com", "password": PASSWORD } } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(body["data"]["signup"]["expiresIn"], 77, "{body}");
    assert_eq!(
        dir.path().join("authgraph.db").exists(),
        database.is_none(),
        "DATABASE_URL from .env is the database used"
    );
    let refresh = claims(body["data"]["signup"]["refreshToken"].as_str().unwrap());
    assert_eq!(
        refresh["exp"].as_i64().unwrap() - refresh["iat"].as_i64().unwrap(),
        1234
    );
}

#[apply(backends)]
async fn the_generated_key_is_private_and_survives_a_restart(#[case] backend: Backend) {
    let Some(server) = TestServer::start_process(backend).await else {
        return;
    };
    let session = server.signup("victor").await;
    let key_file = server.dir().join("authgraph.secret");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let key = std::fs::read_to_string(&key_file).unwrap();
    assert!(key.trim().len() >= 32);
    assert!(
        !server.log_text().contains(key.trim()),
        "the key is never logged"
    );
    let server = server.restart().await;
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), key);
    assert!(
        server.me(&session.access).await["data"]["me"].is_object(),
        "tokens survive a restart"
    );
}

#[test]
fn a_malformed_dot_env_ends_the_start_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "RUST_LOG=info\nJWT_SECRET='a-secret-value-that-must-stay-hidden\n",
    )
    .unwrap();
    let out = assert_refused(&run(dir.path(), &[], &[]), ".env");
    assert!(out.contains("line 2"), "{out}");
    assert!(
        !out.contains("must-stay-hidden"),
        "the line is not shown: {out}"
    );
}

#[test]
fn a_malformed_dot_env_line_after_blank_lines_and_comments_is_named_by_its_number() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "RUST_LOG=info\n\n# a comment\n\nJWT_SECRET='another-secret-that-must-stay-hidden\n",
    )
    .unwrap();
    let out = assert_refused(&run(dir.path(), &[], &[]), ".env");
    assert!(out.contains("line 5"), "{out}");
    assert!(!out.contains("must-stay-hidden"), "{out}");
}

#[apply(backends)]
async fn sigterm_lets_the_request_in_flight_finish_then_exits_0(#[case] backend: Backend) {
    let Some(database) = TestDatabase::for_backend(backend).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut env = vec![
        ("BIND_ADDR", "127.0.0.1:0"),
        ("AUTH_RATE_LIMIT_PER_MINUTE", "0"),
    ];
    if let Some(database) = &database {
        env.push(("DATABASE_URL", &database.url));
    }
    let (mut child, addr, rest) = spawn_server(dir.path(), &[], &env);

    // A batch of ten signups (ten Argon2 hashes, one after the other) is in
    // flight when the signal arrives: a wide window, where one signup and a
    // 5 ms wait sent the signal before the request arrived on a busy machine.
    let batch: Vec<serde_json::Value> = (0..10)
        .map(|i| json!({ "query": SIGNUP, "variables": { "input": { "username": format!("last{i}"), "email": format!("last{i}@example.com"), "password": PASSWORD } } }))
        .collect();
    let signup = tokio::spawn(
        reqwest::Client::new()
            .post(format!("http://{addr}/graphql"))
            .json(&batch)
            .send(),
    );
    tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: kill only reads its integer arguments.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);

    let body: serde_json::Value = signup.await.unwrap().unwrap().json().await.unwrap();
    let answers = body.as_array().unwrap();
    assert_eq!(answers.len(), 10, "{body}");
    assert!(
        answers.iter().all(|a| a["data"]["signup"].is_object()),
        "all ten finished: {body}"
    );
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(dir.path().join("authgraph.db").exists(), database.is_none());
    let log = rest.join().unwrap().join("\n");
    assert!(
        log.contains("shutting down") && log.contains("stopped"),
        "{log}"
    );
}

/// `--help` and the README's configuration table name the same settings,
/// and no `[env: NAME=]` reads as set to empty.
#[test]
fn help_and_the_readme_name_the_same_settings() {
    let dir = tempfile::tempdir().unwrap();
    let help = String::from_utf8(run(dir.path(), &["--help"], &[]).stdout).unwrap();
    assert!(!help.contains("=]"), "an env value shown as empty:\n{help}");
    let in_help: std::collections::BTreeSet<String> = help
        .split("[env: ")
        .skip(1)
        .map(|rest| rest.split(']').next().unwrap().to_owned())
        .collect();
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table = readme
        .split("## Configuration")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("the README's configuration section");
    let in_readme: std::collections::BTreeSet<String> = table
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .filter(|name| name.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        in_help, in_readme,
        "settings in --help vs the README's table"
    );
}

#[test]
fn the_readme_errors_table_names_every_code_and_reason() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let table = readme
        .split("### Errors")
        .nth(1)
        .and_then(|rest| rest.split("\nInput rules").next())
        .expect("the README's Errors section");
    for code in authgraph::error::CODES {
        assert!(
            table.contains(&format!("`{code}`")),
            "the Errors table lacks {code}"
        );
    }
    for reason in authgraph::error::REASONS {
        assert!(
            table.contains(&format!("`{reason}`")),
            "the Errors table lacks reason {reason}"
        );
    }
}

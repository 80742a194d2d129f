//! Every server of one database holds the same data key: a server started
//! with another one stops at start, naming DATA_KEY_FILE, rather than
//! failing on the first sealed value it meets.

use std::process::Stdio;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Statement};

use crate::helpers::*;
use crate::mfa::{enroll, mfa_token, verify_mfa};

/// Runs `authgraph serve` in `dir` with `env` on top of the defaults; its
/// exit code and stderr, or `None` if it was still serving after 30 s.
fn serve(dir: &std::path::Path, env: &[(&str, String)]) -> Option<(Option<i32>, String)> {
    let mut command = base_command(dir);
    for (k, v) in defaults() {
        command.env(k, v);
    }
    for (k, v) in env {
        command.env(k, v);
    }
    // Start-up's info lines (migrations) aside: the refusal alone.
    command.env("RUST_LOG", "warn");
    let mut child = command
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn authgraph");
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if let Ok(Some(status)) = child.try_wait() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
            return Some((status.code(), stderr));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn another_key(dir: &std::path::Path) -> String {
    let path = dir.join("other.data.key");
    std::fs::write(&path, format!("{}\n", "ab".repeat(32))).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path.display().to_string()
}

fn assert_refused(outcome: Option<(Option<i32>, String)>) {
    let (code, stderr) = outcome.expect("it started with another data key");
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("DATA_KEY_FILE"), "{stderr}");
    assert!(!stderr.contains(&"ab".repeat(32)), "no key shown: {stderr}");
}

async fn key_checks(server: &TestServer) -> usize {
    let db = server.db().await;
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(Statement::from_string(
            backend,
            "SELECT COUNT(*) AS n FROM key_checks",
        ))
        .await
        .unwrap()
        .unwrap();
    usize::try_from(row.try_get::<i64>("", "n").unwrap()).unwrap()
}

/// A second server with another key on the same database (PostgreSQL), or
/// the same server restarted with another key (SQLite): refused at start.
#[apply(backends)]
async fn a_server_with_another_data_key_stops_at_start(#[case] backend: Backend) {
    let Some(server) = TestServer::start_process(backend).await else {
        return;
    };
    server.signup("keeper").await;
    assert_eq!(
        key_checks(&server).await,
        1,
        "the first server stored its check"
    );
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("DATABASE_URL", server.database_url()),
        ("DATA_KEY_FILE", another_key(dir.path())),
    ];
    assert_refused(serve(dir.path(), &env));
    // The server with the right key goes on.
    Session::from_payload(&server.login("keeper", PASSWORD).await, "login");
}

/// A database from before the check: sealed values and no check value. A
/// wrong key is refused (it opens none of them) and does not become the
/// reference; the right key stores the check and goes on.
#[apply(backends)]
async fn an_upgraded_database_takes_the_check_of_the_key_that_opens_it(#[case] backend: Backend) {
    let Some(server) = TestServer::start_process(backend).await else {
        return;
    };
    let enrolled = enroll(&server, "upgraded").await;
    let db = server.db().await;
    let sql = "DELETE FROM key_checks";
    db.execute_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap();
    drop(db);
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("DATABASE_URL", server.database_url()),
        ("DATA_KEY_FILE", another_key(dir.path())),
    ];
    assert_refused(serve(dir.path(), &env));
    assert_eq!(
        key_checks(&server).await,
        0,
        "the wrong key is no reference"
    );
    let server = server.restart().await;
    assert_eq!(key_checks(&server).await, 1);
    let token = mfa_token(&server, "upgraded", PASSWORD).await;
    let body = verify_mfa(&server, &token, &enrolled.recovery[0]).await;
    assert!(body["data"]["verifyMfa"].is_object(), "{body}");
}

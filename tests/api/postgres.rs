//! PostgreSQL only: several servers on one database, and the database going
//! away under a running server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::json;

use crate::helpers::*;

const SHARED_SECRET: &str = "one-key-shared-by-every-server-0123456789";

/// Two servers on one fresh PostgreSQL database, with one key, as behind a
/// load balancer; `None` when there is no PostgreSQL here.
async fn two_servers() -> Option<(TestServer, TestServer)> {
    let database = Arc::new(TestDatabase::fresh().await?);
    // Under an asymmetric JWT_ALGORITHM they share the signing key too.
    let signing = shared_signing_key_file();
    let env = [
        ("JWT_SECRET", SHARED_SECRET),
        ("JWT_SIGNING_KEY_FILE", signing.as_str()),
    ];
    let a = TestServer::start_on(Some(database.clone()), &env);
    let b = TestServer::start_on(Some(database), &env);
    Some((a, b))
}

/// A path for a signing key several servers share (the first creates it),
/// in a directory that lives as long as the tests.
pub fn shared_signing_key_file() -> String {
    static DIR: std::sync::LazyLock<tempfile::TempDir> =
        std::sync::LazyLock::new(|| tempfile::tempdir().expect("temp dir"));
    DIR.path()
        .join(format!("{}.pem", uuid::Uuid::new_v4()))
        .display()
        .to_string()
}

#[tokio::test]
async fn four_servers_starting_at_once_on_a_new_database_all_come_up() {
    let Some(database) = TestDatabase::fresh().await else {
        return;
    };
    let database = Arc::new(database);
    // Each applies the migrations on start: at once, on an empty database.
    let signing = shared_signing_key_file();
    let starts = (0..4).map(|_| {
        let (database, signing) = (database.clone(), signing.clone());
        tokio::task::spawn_blocking(move || {
            TestServer::start_on(
                Some(database),
                &[
                    ("JWT_SECRET", SHARED_SECRET),
                    ("JWT_SIGNING_KEY_FILE", signing.as_str()),
                ],
            )
        })
    });
    let servers: Vec<TestServer> = join_all(starts)
        .await
        .into_iter()
        .map(|started| started.expect("every server started"))
        .collect();
    assert!(
        !servers[0].log_text().contains("JWT_SECRET is unset"),
        "no warning with a shared key"
    );
    let session = servers[0].signup("first").await;
    for server in &servers {
        assert_eq!(
            server.me(&session.access).await["data"]["me"]["username"],
            "first"
        );
    }
}

#[tokio::test]
async fn a_logout_on_one_server_is_refused_on_the_other_at_once() {
    let Some((a, b)) = two_servers().await else {
        return;
    };
    let session = a.signup("anna").await;
    assert_eq!(
        b.me(&session.access).await["data"]["me"]["username"],
        "anna"
    );
    assert_eq!(a.logout(&session.refresh).await["data"]["logout"], true);
    // The very next request, on the other server: no cache to wait out.
    assert_eq!(reason(&b.me(&session.access).await), "revoked");
    assert_eq!(reason(&b.refresh(&session.refresh).await), "revoked");
    assert_eq!(b.verify(&session.access).await["reason"], "revoked");

    // And the other way round.
    let session = Session::from_payload(&b.login("anna", PASSWORD).await, "login");
    assert!(a.me(&session.access).await["data"]["me"].is_object());
    assert_eq!(b.logout(&session.refresh).await["data"]["logout"], true);
    assert_eq!(reason(&a.me(&session.access).await), "revoked");
}

#[tokio::test]
async fn of_ten_concurrent_refreshes_split_across_two_servers_one_wins() {
    let Some((a, b)) = two_servers().await else {
        return;
    };
    for round in 0..5 {
        let session = a.signup(&format!("racer{round}")).await;
        let attempts = (0..10).map(|i| {
            let server = if i % 2 == 0 { &a } else { &b };
            server.refresh(&session.refresh)
        });
        let bodies = join_all(attempts).await;
        let won = bodies
            .iter()
            .filter(|body| body["data"]["refreshToken"].is_object())
            .count();
        assert_eq!(won, 1, "round {round}: {bodies:?}");
        for body in bodies
            .iter()
            .filter(|b| b["data"]["refreshToken"].is_null())
        {
            assert_eq!(code(body), "UNAUTHENTICATED", "{body}");
            assert_eq!(reason(body), "revoked", "{body}");
        }
    }
}

#[tokio::test]
async fn of_concurrent_signups_of_one_name_across_two_servers_one_wins() {
    let Some((a, b)) = two_servers().await else {
        return;
    };
    for round in 0..3 {
        let attempts = (0..10).map(|i| {
            let server = if i % 2 == 0 { &a } else { &b };
            // The same name in other cases, with other emails.
            let name = if i % 3 == 0 {
                format!("Twin{round}")
            } else {
                format!("twin{round}")
            };
            server.gql(
                None,
                SIGNUP,
                json!({ "input": {
                    "username": name,
                    "email": format!("twin{round}.{i}@example.com"),
                    "password": PASSWORD,
                }}),
            )
        });
        let bodies = join_all(attempts).await;
        let won = bodies
            .iter()
            .filter(|body| body["data"]["signup"].is_object())
            .count();
        assert_eq!(won, 1, "round {round}: {bodies:?}");
        for body in bodies.iter().filter(|b| b["data"]["signup"].is_null()) {
            assert_eq!(code(body), "CONFLICT", "{body}");
            assert_eq!(body["errors"][0]["extensions"]["field"], "username");
        }
    }
}

#[tokio::test]
async fn reuse_detected_on_one_server_ends_the_session_on_the_other() {
    let Some((a, b)) = two_servers().await else {
        return;
    };
    let first = a.signup("mallory").await;
    let second = Session::from_payload(&b.refresh(&first.refresh).await, "refreshToken");
    assert!(b.me(&second.access).await["data"]["me"].is_object());

    // The used token comes back (stolen, say) on A: the whole session ends...
    assert_eq!(reason(&a.refresh(&first.refresh).await), "revoked");
    // ...at once on B, for the legitimate holder's newest tokens too.
    assert_eq!(reason(&b.me(&second.access).await), "revoked");
    assert_eq!(reason(&b.refresh(&second.refresh).await), "revoked");
    assert_eq!(b.verify(&second.refresh).await["reason"], "revoked");
}

#[tokio::test]
async fn a_server_that_creates_its_own_keys_on_postgresql_says_so_once() {
    let Some(database) = TestDatabase::fresh().await else {
        return;
    };
    let database = Arc::new(database);
    let server = TestServer::start_on(
        Some(database),
        &[
            ("JWT_SECRET", SHARED_SECRET),
            ("JWT_ALGORITHM", "EdDSA"),
            // In its own directory: not the database's shared test key.
            ("DATA_KEY_FILE", "authgraph.data.key"),
        ],
    );
    let log = server.log_text();
    for warning in [
        "created its own signing key (JWT_SIGNING_KEY_FILE)",
        "created its own data key (DATA_KEY_FILE)",
    ] {
        assert!(
            log.lines()
                .any(|line| line.contains("WARN") && line.contains(warning)),
            "{warning}: {log}"
        );
    }
    // The files exist now: the next start on them is quiet.
    let server = server.restart().await;
    let log = server.log_text();
    assert!(!log.contains("created its own"), "{log}");
    let session = server.signup("keyed").await;
    assert_eq!(
        server.me(&session.access).await["data"]["me"]["username"],
        "keyed"
    );
}

async fn healthz(server: &TestServer) -> (u16, Duration) {
    let start = Instant::now();
    let status = reqwest::get(server.url("/healthz"))
        .await
        .expect("healthz answers")
        .status()
        .as_u16();
    (status, start.elapsed())
}

#[tokio::test]
async fn the_same_server_rides_out_postgresql_stopping_and_starting() {
    // Declared first, so it is dropped last: after the server and its database.
    let Some(cluster) = Cluster::private() else {
        return;
    };
    let database = Arc::new(TestDatabase::create_on(cluster.admin_url()).await);
    let mut server = TestServer::start_on(Some(database), &[]);
    assert!(
        server.log_text().contains("JWT_SECRET is unset"),
        "a generated key on PostgreSQL is worth a warning: {}",
        server.log_text()
    );
    let session = server.signup("steady").await;
    assert_eq!(healthz(&server).await.0, 200);

    cluster.stop();

    let (status, took) = healthz(&server).await;
    assert_eq!(status, 503);
    eprintln!("PostgreSQL down: /healthz 503 after {took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    let operations = [
        ("{ me { id } }", json!({}), Some(session.access.as_str())),
        (
            LOGIN,
            json!({ "input": { "username": "steady", "password": PASSWORD } }),
            None,
        ),
        (REFRESH, json!({ "t": session.refresh }), None),
        (
            SIGNUP,
            json!({ "input": { "username": "late", "email": "late@example.com", "password": PASSWORD } }),
            None,
        ),
    ];
    for (query, variables, token) in &operations {
        let start = Instant::now();
        let (status, body) = server
            .post_json(*token, &json!({ "query": query, "variables": variables }))
            .await;
        let took = start.elapsed();
        eprintln!("PostgreSQL down: {status} {} after {took:?}", code(&body));
        assert_eq!(status, 200, "{body}");
        assert_eq!(code(&body), "INTERNAL_SERVER_ERROR", "{body}");
        assert_eq!(body["errors"][0]["message"], "Internal server error");
        assert!(took < Duration::from_secs(10), "{query}: {took:?}");
    }
    assert!(server.is_running(), "the server outlives its database");

    cluster.start().expect("start PostgreSQL again");
    let start = Instant::now();
    while healthz(&server).await.0 != 200 {
        assert!(start.elapsed() < Duration::from_secs(30), "no recovery");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "PostgreSQL up again: /healthz 200 after {:?}",
        start.elapsed()
    );

    // The same process, nothing lost, every operation back.
    let body = server.me(&session.access).await;
    assert_eq!(body["data"]["me"]["username"], "steady", "{body}");
    let rotated = Session::from_payload(&server.refresh(&session.refresh).await, "refreshToken");
    assert!(server.me(&rotated.access).await["data"]["me"].is_object());
    server.signup("late").await;
    assert!(server.is_running());
    let log = server.log_text();
    assert!(!log.contains("panicked"), "{log}");
    server.kill();
}

#[tokio::test]
async fn a_statement_stuck_behind_a_lock_ends_at_the_statement_timeout() {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let Some(database) = TestDatabase::fresh().await else {
        return;
    };
    let url = database.url.clone();
    let server = TestServer::start_on(
        Some(Arc::new(database)),
        &[("DATABASE_STATEMENT_TIMEOUT", "1")],
    );
    let session = server.signup("patient").await;

    // Another client holds the users table: every query on it waits.
    let other = sea_orm::Database::connect(url).await.unwrap();
    let txn = other.begin().await.unwrap();
    txn.execute_unprepared("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let start = Instant::now();
    let body = server.me(&session.access).await;
    let took = start.elapsed();
    eprintln!("users locked: me answered {} after {took:?}", code(&body));
    assert_eq!(code(&body), "INTERNAL_SERVER_ERROR", "{body}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(
        server.logs_soon("statement timeout").await,
        "{}",
        server.log_text()
    );

    txn.rollback().await.unwrap();
    assert!(server.me(&session.access).await["data"]["me"].is_object());
}

/// A start on a database that is migrated already logs no PostgreSQL
/// NOTICE (sea-orm-migration's `relation "seaql_migrations" already
/// exists, skipping`, four times a start): they tell an operator nothing.
#[tokio::test]
async fn a_restart_on_a_migrated_database_logs_no_notices() {
    let Some(server) = TestServer::start_process(Backend::Postgres).await else {
        return;
    };
    let server = server.restart().await;
    server.signup("quiet").await;
    let log = server.log_text();
    assert!(log.contains("listening on"), "{log}");
    assert!(!log.contains("already exists, skipping"), "{log}");
    assert!(!log.contains("sqlx::postgres::notice"), "{log}");
}

use serde_json::{Value, json};

use crate::helpers::*;

#[apply(backends)]
async fn a_restart_keeps_users_and_revocations(#[case] backend: Backend) {
    let Some(server) = TestServer::start_process(backend).await else {
        return;
    };
    let ended = server.signup("wendy").await;
    let live = Session::from_payload(&server.login("wendy", PASSWORD).await, "login");
    let rotated_from = Session::from_payload(&server.login("wendy", PASSWORD).await, "login");
    let rotated =
        Session::from_payload(&server.refresh(&rotated_from.refresh).await, "refreshToken");
    assert_eq!(server.logout(&ended.refresh).await["data"]["logout"], true);

    // SIGKILL: nothing gets a chance to flush.
    let server = server.restart().await;

    assert!(server.login("wendy", PASSWORD).await["data"]["login"].is_object());
    assert_eq!(reason(&server.me(&ended.access).await), "revoked");
    assert_eq!(reason(&server.refresh(&ended.refresh).await), "revoked");
    assert!(server.me(&live.access).await["data"]["me"].is_object());
    assert!(server.me(&rotated.access).await["data"]["me"].is_object());
    // The rotated-away token is still known as used: replaying it ends its session.
    assert_eq!(
        reason(&server.refresh(&rotated_from.refresh).await),
        "revoked"
    );
    assert_eq!(reason(&server.me(&rotated.access).await), "revoked");
}

/// One GraphQL request; `None` when no answer came back (the server died).
async fn call(client: &reqwest::Client, url: &str, query: &str, variables: Value) -> Option<Value> {
    let response = client
        .post(url)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .ok()?;
    response.json().await.ok()
}

/// What a client of a stream saw: the answers it got, and the request it was
/// left without an answer to when the server died.
#[derive(Default)]
struct Seen {
    signed_up: Vec<String>,
    unanswered_signup: Option<String>,
    /// The tokens of one session, oldest first: each was answered by the next.
    chain: Vec<Session>,
    unanswered_refresh: bool,
}

async fn signups(client: reqwest::Client, url: String, stream: usize) -> Seen {
    let mut seen = Seen::default();
    for i in 0.. {
        let name = format!("stream{stream}n{i}");
        let variables = json!({ "input": {
            "username": name,
            "email": format!("{name}@example.com"),
            "password": PASSWORD,
        }});
        match call(&client, &url, SIGNUP, variables).await {
            Some(body) => {
                assert!(body["data"]["signup"].is_object(), "{body}");
                seen.signed_up.push(name);
            }
            None => {
                seen.unanswered_signup = Some(name);
                break;
            }
        }
    }
    seen
}

async fn refreshes(client: reqwest::Client, url: String, first: Session) -> Seen {
    let mut seen = Seen {
        chain: vec![first],
        ..Seen::default()
    };
    loop {
        let current = seen.chain.last().unwrap().refresh.clone();
        match call(&client, &url, REFRESH, json!({ "t": current })).await {
            Some(body) => seen
                .chain
                .push(Session::from_payload(&body, "refreshToken")),
            None => {
                seen.unanswered_refresh = true;
                break;
            }
        }
    }
    seen
}

#[apply(backends)]
async fn a_kill_9_amid_signups_and_refreshes_loses_nothing_acknowledged(#[case] backend: Backend) {
    let Some(mut server) = TestServer::start_process(backend).await else {
        return;
    };
    let mut chains = Vec::new();
    for i in 0..4 {
        chains.push(server.signup(&format!("chain{i}")).await);
    }
    let client = reqwest::Client::new();
    let url = server.url("/graphql");
    let mut streams = Vec::new();
    for stream in 0..2 {
        streams.push(tokio::spawn(signups(client.clone(), url.clone(), stream)));
    }
    for first in chains {
        streams.push(tokio::spawn(refreshes(client.clone(), url.clone(), first)));
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    server.kill();
    let seen: Vec<Seen> = futures::future::join_all(streams)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();

    let server = server.restart().await;
    let mut signed_up = 0;
    let mut rotated = 0;
    for seen in &seen {
        for name in &seen.signed_up {
            let body = server.login(name, PASSWORD).await;
            assert!(body["data"]["login"].is_object(), "{name} was lost: {body}");
            signed_up += 1;
        }
        if let Some(name) = &seen.unanswered_signup {
            // Either outcome is whole: no account, or one that works.
            let body = server.login(name, PASSWORD).await;
            assert!(
                body["data"]["login"].is_object() || code(&body) == "INVALID_CREDENTIALS",
                "{body}"
            );
        }
        let Some((last, answered)) = seen.chain.split_last() else {
            continue;
        };
        // Every rotation that was answered holds: its old token is refused...
        for old in answered {
            let info = server.verify(&old.refresh).await;
            assert_eq!(info["reason"], "revoked", "a rotated token still works");
            rotated += 1;
        }
        // ...and the session lives on, on the newest tokens the client has.
        assert!(server.me(&last.access).await["data"]["me"].is_object());
        if !seen.unanswered_refresh {
            continue;
        }
        let info = server.verify(&last.refresh).await;
        if info["valid"] == true {
            // The rotation in flight never committed: the token still rotates.
            let body = server.refresh(&last.refresh).await;
            assert!(body["data"]["refreshToken"].is_object(), "{body}");
        } else {
            // It committed, and only its answer was lost.
            assert_eq!(info["reason"], "revoked", "{info}");
        }
    }
    eprintln!(
        "kill -9 on {backend:?}: {signed_up} signups and {rotated} rotations answered, all kept"
    );
    assert!(
        signed_up > 0 && rotated > 0,
        "the streams made progress before the kill"
    );
}

/// The modes of the database file and its `-wal` and `-shm`.
fn database_modes(server: &TestServer) -> Vec<(String, u32)> {
    use std::os::unix::fs::PermissionsExt;
    ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| {
            let path = format!("{}{suffix}", server.database_path().display());
            let mode = std::fs::metadata(&path)
                .unwrap_or_else(|err| panic!("{path}: {err}"))
                .permissions()
                .mode();
            (path, mode & 0o777)
        })
        .collect()
}

/// The SQLite file holds password hashes: only its owner reads it, from its
/// creation on; a file an older version left readable is restricted at start.
#[tokio::test]
async fn the_sqlite_files_are_readable_by_their_owner_alone() {
    use std::os::unix::fs::PermissionsExt;
    let server = TestServer::start_process(Backend::Sqlite).await.unwrap();
    server.signup("private").await;
    for (path, mode) in database_modes(&server) {
        assert_eq!(mode, 0o600, "{path}: {mode:o}");
    }
    for (path, _) in database_modes(&server) {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let server = server.restart().await;
    server.signup("again").await;
    for (path, mode) in database_modes(&server) {
        assert_eq!(mode, 0o600, "after a restart, {path}: {mode:o}");
    }
}

use serde_json::{Value, json};

use crate::helpers::*;

/// The value of a metric line `name` (with its labels, if any) in /metrics.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            line.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .unwrap_or_else(|| panic!("{name} not in:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

async fn metrics(server: &TestServer) -> String {
    let response = reqwest::get(server.url("/metrics")).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    response.text().await.unwrap()
}

#[apply(backends)]
async fn metrics_count_what_happened(#[case] backend: Backend) {
    let Some(server) =
        TestServer::start_process_with(backend, &[("AUTH_RATE_LIMIT_PER_MINUTE", "7")]).await
    else {
        return;
    };
    let before = metrics(&server).await;
    assert_eq!(metric(&before, "authgraph_signups_total"), 0.0);
    assert_eq!(
        metric(&before, "authgraph_logins_total{result=\"failed\"}"),
        0.0
    );

    let a = server.signup("metered").await; // attempt 1
    server.login("metered", PASSWORD).await; // 2
    server.login("metered", "wrong password").await; // 3
    let rotated = Session::from_payload(&server.refresh(&a.refresh).await, "refreshToken"); // 4
    server.refresh(&a.refresh).await; // 5: reuse, ends the session
    let b = Session::from_payload(&server.login("metered", PASSWORD).await, "login"); // 6
    server.logout(&b.refresh).await;
    server.me(&rotated.access).await;
    server.login("metered", PASSWORD).await; // 7
    server.login("metered", PASSWORD).await; // 8: over the limit

    let after = metrics(&server).await;
    assert_eq!(metric(&after, "authgraph_signups_total"), 1.0, "{after}");
    assert_eq!(metric(&after, "authgraph_logins_total{result=\"ok\"}"), 3.0);
    assert_eq!(
        metric(&after, "authgraph_logins_total{result=\"failed\"}"),
        1.0
    );
    assert_eq!(metric(&after, "authgraph_refreshes_total"), 1.0);
    assert_eq!(
        metric(&after, "authgraph_refresh_reuse_detected_total"),
        1.0
    );
    assert_eq!(
        metric(&after, "authgraph_sessions_revoked_total"),
        2.0,
        "reuse and logout"
    );
    assert_eq!(metric(&after, "authgraph_rate_limited_total"), 1.0);
    assert_eq!(
        metric(
            &after,
            "authgraph_operation_duration_seconds_count{operation=\"login\"}"
        ),
        5.0
    );
    assert_eq!(
        metric(
            &after,
            "authgraph_operation_duration_seconds_count{operation=\"me\"}"
        ),
        1.0
    );
}

#[apply(backends)]
async fn every_log_line_of_a_request_carries_its_id(#[case] backend: Backend) {
    let Some(server) =
        TestServer::start_process_with(backend, &[("LOG_FORMAT", "json"), ("RUST_LOG", "debug")])
            .await
    else {
        return;
    };
    let session = server.signup("traced").await;
    let response = reqwest::Client::new()
        .post(server.url("/graphql"))
        .header("X-Request-Id", "req-42")
        .bearer_auth(&session.access)
        .json(&json!({ "query": "{ me { id } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "req-42");
    let generated = reqwest::get(server.url("/healthz")).await.unwrap();
    let id = generated.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        uuid::Uuid::parse_str(&id).is_ok(),
        "a new id when none is sent: {id}"
    );

    assert!(server.logs_soon("req-42").await && server.logs_soon(&id).await);
    let lines: Vec<Value> = server
        .log_text()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let tagged = |rid: &str| lines.iter().filter(|l| l["span"]["id"] == rid).count();
    assert!(tagged("req-42") >= 1, "{lines:#?}");
    assert!(tagged(&id) >= 1);
    // A bad client id is replaced, not echoed.
    let response = reqwest::Client::new()
        .get(server.url("/healthz"))
        .header("X-Request-Id", "bad id\twith spaces")
        .send()
        .await
        .unwrap();
    assert_ne!(response.headers()["x-request-id"], "bad id\twith spaces");
}

#[apply(backends)]
async fn no_token_password_or_hash_ever_reaches_the_log(#[case] backend: Backend) {
    for format in ["text", "json"] {
        let Some(server) = TestServer::start_process_with(
            backend,
            &[
                ("LOG_FORMAT", format),
                ("RUST_LOG", "trace"),
                ("JWT_SECRET", "log-secret-log-secret-log-secret-0123"),
            ],
        )
        .await
        else {
            return;
        };
        let password = "hunter2-but-longer";
        let body = server
            .gql(None, SIGNUP, json!({ "input": { "username": "quiet", "email": "quiet@example.com", "password": password } }))
            .await;
        let first = Session::from_payload(&body, "signup");
        let second = Session::from_payload(&server.login("quiet", password).await, "login");
        server.login("quiet", "a wrong password").await;
        server.me(&first.access).await;
        server.verify(&first.refresh).await;
        let third = Session::from_payload(&server.refresh(&second.refresh).await, "refreshToken");
        server
            .gql(Some(&third.access), "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) }", json!({ "c": password, "n": "another-long-password" }))
            .await;
        server.logout(&third.refresh).await;
        server
            .gql_with_header("Bearer not-a-token", "{ me { id } }")
            .await;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;

        let log = server.log_text();
        assert!(log.lines().count() > 10, "the log was written ({format})");
        let hash = server.stored_password_hash("quiet").await;
        let secrets = [
            password,
            "another-long-password",
            "a wrong password",
            "log-secret-log-secret-log-secret-0123",
            &first.access,
            &first.refresh,
            &second.refresh,
            &third.access,
            &third.refresh,
            &hash,
            "$argon2id$",
            "eyJ",
        ];
        for secret in secrets {
            assert!(!log.contains(secret), "{format} log contains {secret:?}");
        }
        if format == "json" {
            // Spans below the request: each operation and each database call.
            for span in [
                "\"name\":\"request\"",
                "\"name\":\"graphql.operation\"",
                "\"name\":\"db.user.create\"",
                "\"name\":\"db.user.find_for_login\"",
                "\"name\":\"db.session.start\"",
                "\"name\":\"db.ledger.user_unless_revoked\"",
                "\"name\":\"db.ledger.rotate\"",
                "\"name\":\"db.user.change_password\"",
                "\"name\":\"db.session.end\"",
            ] {
                assert!(log.contains(span), "the JSON log shows {span}");
            }
        }
    }
}

#[apply(backends)]
async fn graphiql_is_served_whole_by_authgraph(#[case] backend: Backend) {
    let Some(server) = TestServer::start_process(backend).await else {
        return;
    };
    let html = reqwest::Client::new()
        .get(server.url("/graphql"))
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no outside address: {html}"
    );
    let assets: Vec<&str> = html
        .split(['"', '\''])
        .filter(|part| part.starts_with("/graphiql/"))
        .collect();
    assert_eq!(assets.len(), 4, "{assets:?}");
    for asset in assets {
        let response = reqwest::get(server.url(asset)).await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{asset}");
        let kind = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            kind.starts_with("text/javascript") || kind.starts_with("text/css"),
            "{asset}: {kind}"
        );
        assert!(response.bytes().await.unwrap().len() > 1000);
    }
    let missing = reqwest::get(server.url("/graphiql/3.8.3/nope.js"))
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
}

/// Outcomes a client causes (a taken name, a wrong password, a refusal, the
/// last admin) are answered, not alerted on: ERROR is for an operator.
#[apply(backends)]
async fn a_clients_mistakes_leave_no_error_line(#[case] backend: Backend) {
    let Some(server) =
        TestServer::start_process_with(backend, &[("AUTH_RATE_LIMIT_PER_MINUTE", "8")]).await
    else {
        return;
    };
    let boss = server.admin("boss").await;
    let taken = [
        json!({ "username": "boss", "email": "other@example.com", "password": PASSWORD }),
        json!({ "username": "other", "email": "boss@example.com", "password": PASSWORD }),
        json!({ "username": "x", "email": "bad", "password": "short" }),
    ];
    for input in taken {
        let body = server.gql(None, SIGNUP, json!({ "input": input })).await;
        assert!(
            ["CONFLICT", "BAD_USER_INPUT"].contains(&code(&body)),
            "{body}"
        );
    }
    let demote = "mutation($id: ID!) { setRole(userId: $id, role: USER) { role } }";
    let body = server
        .gql(Some(&boss.access), demote, json!({ "id": boss.user_id }))
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "the last admin: {body}");
    let revoke = "mutation { revokeSession(id: \"00000000-0000-0000-0000-000000000000\") }";
    let body = server.gql(Some(&boss.access), revoke, json!({})).await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    let body = server.me("not-a-token").await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    let body = server.refresh(&boss.access).await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    let mut answers = Vec::new();
    for _ in 0..8 {
        answers.push(code(&server.login("boss", "not the password").await).to_owned());
    }
    assert!(
        answers.contains(&"INVALID_CREDENTIALS".to_owned()),
        "{answers:?}"
    );
    assert_eq!(answers.last().unwrap(), "TOO_MANY_REQUESTS", "{answers:?}");
    let body = server.gql(None, "{ nosuchfield }", json!({})).await;
    assert!(body["errors"].is_array(), "{body}");

    // The requests' lines are written by now: the last answer came after them.
    let log = server.log_text();
    let errors: Vec<&str> = log.lines().filter(|line| line.contains("ERROR")).collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

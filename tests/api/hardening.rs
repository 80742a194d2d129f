//! The defects found when authgraph was attacked, one test each.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

const SECRET: &str = "hardening-secret-hardening-secret-0123";

/// Opens `depth` levels of `open`, puts `inner` in the middle, closes them.
fn nest(open: &str, inner: &str, close: &str, depth: usize) -> String {
    format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
}

#[apply(backends)]
async fn deeply_nested_documents_are_refused_and_the_server_stays_up(#[case] backend: Backend) {
    let Some(mut server) = TestServer::start_process(backend).await else {
        return;
    };
    // 10,000 levels of the longer shapes would pass the 64 KiB body limit.
    for depth in [10_000, 3_000, 1_500] {
        let lists = nest("[", "1", "]", depth);
        let objects = nest("{a:", "1", "}", depth.min(8_000));
        let documents = [
            format!("{{ verifyToken(token: {lists}) {{ valid }} }}"),
            format!("{{ verifyToken(token: {objects}) {{ valid }} }}"),
            format!("{{ verifyToken(token: \"x\") @include(if: {lists}) {{ valid }} }}"),
            format!("query($v: String = {lists}) {{ verifyToken(token: \"x\") {{ valid }} }}"),
            format!("{{ verifyToken(token: \"x\", noSuchArgument: {objects}) {{ valid }} }}"),
            nest("{me", "{id}", "}", depth.min(8_000)),
            nest("{...on Query", "{__typename}", "}", depth.min(4_000)),
        ];
        for document in documents {
            let body = server.gql(None, &document, json!({})).await;
            assert_eq!(
                code(&body),
                "GRAPHQL_PARSE_FAILED",
                "{depth}: {}",
                &body.to_string()[..200.min(body.to_string().len())]
            );
            assert!(body["data"].is_null(), "nothing ran");
        }
    }
    assert!(server.is_running(), "the process is alive");
    let body = server.gql(None, "{ __typename }", json!({})).await;
    assert_eq!(body["data"]["__typename"], "Query", "{body}");
}

#[apply(backends)]
async fn brackets_inside_a_string_are_not_nesting(#[case] backend: Backend) {
    let Some(server) = TestServer::start_process(backend).await else {
        return;
    };
    let brackets = "[".repeat(1_000);
    let body = server
        .gql(
            None,
            &format!("{{ verifyToken(token: \"{brackets}\") {{ valid reason }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(
        body["data"]["verifyToken"],
        json!({ "valid": false, "reason": "invalid" }),
        "{body}"
    );
    let body = server
        .gql(
            None,
            &format!("# {brackets}\n{{ verifyToken(token: \"\"\"{brackets}\"\"\") {{ valid }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(body["data"]["verifyToken"]["valid"], false, "{body}");
}

#[apply(backends)]
async fn deeply_nested_json_variables_are_refused_and_the_server_stays_up(
    #[case] backend: Backend,
) {
    let Some(mut server) = TestServer::start_process(backend).await else {
        return;
    };
    let client = reqwest::Client::new();
    for depth in [200, 1_500, 10_000] {
        for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
            let value = nest(open, "1", close, depth);
            let body = format!(
                "{{\"query\": \"query($t: String!) {{ verifyToken(token: $t) {{ valid }} }}\", \"variables\": {{\"t\": {value}}}}}"
            );
            let response = client
                .post(server.url("/graphql"))
                .header("Content-Type", "application/json")
                .body(body)
                .send()
                .await
                .expect("an answer");
            let status = response.status().as_u16();
            assert!((400..500).contains(&status), "{depth}: {status}");
        }
    }
    assert!(server.is_running());
}

#[apply(backends)]
async fn aliased_typenames_count_toward_the_field_limit(#[case] backend: Backend) {
    let Some(server) = TestServer::start_process(backend).await else {
        return;
    };
    let typenames = |n: usize| -> String { (0..n).map(|i| format!("t{i}: __typename ")).collect() };
    let body = server
        .gql(None, &format!("{{ {} }}", typenames(3_000)), json!({}))
        .await;
    assert_eq!(
        code(&body),
        "GRAPHQL_VALIDATION_FAILED",
        "{}",
        &body.to_string()[..200]
    );
    assert!(body["data"].is_null());
    // Through a fragment spread ten times, too.
    let body = server
        .gql(
            None,
            &format!(
                "{{ {} }} fragment F on Query {{ {} }}",
                "...F ".repeat(10),
                typenames(60)
            ),
            json!({}),
        )
        .await;
    assert_eq!(code(&body), "GRAPHQL_VALIDATION_FAILED", "{body}");
    let body = server
        .gql(None, &format!("{{ {} }}", typenames(400)), json!({}))
        .await;
    assert!(body.get("errors").is_none(), "400 are fine");
    assert_eq!(body["data"]["t399"], "Query");
}

#[apply(backends)]
async fn a_token_with_a_crit_header_is_invalid(#[case] backend: Backend) {
    let Some(server) = TestServer::start_process_with(backend, &[("JWT_SECRET", SECRET)]).await
    else {
        return;
    };
    let session = server.signup("critic").await;
    let claims = claims(&session.access);
    // Re-signed as the server signs, the same claims are fine: the key is right.
    let resigned = sign_like(&server, SECRET, &session.access, &claims, |_| {});
    assert!(server.me(&resigned).await["data"]["me"].is_object());

    let add_crit = |header: &mut jsonwebtoken::Header| {
        header.crit = Some(vec!["urn:example:bound".into()]);
        header.extras.insert("urn:example:bound", true);
    };
    let token = sign_like(&server, SECRET, &session.access, &claims, add_crit);
    assert!(header(&token)["crit"].is_array());
    let body = server.me(&token).await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    assert_eq!(reason(&body), "invalid", "{body}");
    let info = server.verify(&token).await;
    assert_eq!(info["valid"], false);
    assert_eq!(info["reason"], "invalid");

    let mut refresh_claims = crate::helpers::claims(&session.refresh);
    refresh_claims["jti"] = json!(uuid::Uuid::new_v4());
    let refresh = sign_like(&server, SECRET, &session.refresh, &refresh_claims, add_crit);
    let body = server.refresh(&refresh).await;
    assert_eq!(reason(&body), "invalid", "{body}");
}

#[apply(backends)]
async fn two_authorization_headers_are_invalid(#[case] backend: Backend) {
    let Some(server) = TestServer::start_process(backend).await else {
        return;
    };
    let session = server.signup("twoheads").await;
    let client = reqwest::Client::new();
    for (first, second) in [
        (
            format!("Bearer {}", session.access),
            "Bearer garbage".to_owned(),
        ),
        (
            "Bearer garbage".to_owned(),
            format!("Bearer {}", session.access),
        ),
        (
            format!("Bearer {}", session.access),
            format!("Bearer {}", session.access),
        ),
    ] {
        let body: Value = client
            .post(server.url("/graphql"))
            .header("Authorization", first)
            .header("Authorization", second)
            .json(&json!({ "query": "{ me { id } }" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
        assert_eq!(reason(&body), "invalid", "{body}");
    }
    assert!(server.me(&session.access).await["data"]["me"].is_object());
}

#[apply(backends)]
async fn responses_refused_by_routing_carry_a_request_id(#[case] backend: Backend) {
    let Some(server) = TestServer::start_process(backend).await else {
        return;
    };
    let client = reqwest::Client::new();
    let not_found = client
        .get(server.url("/no-such-route"))
        .header("X-Request-Id", "lost-1")
        .send()
        .await
        .unwrap();
    assert_eq!(not_found.status().as_u16(), 404);
    assert_eq!(not_found.headers()["x-request-id"], "lost-1");
    let not_allowed = client.delete(server.url("/graphql")).send().await.unwrap();
    assert_eq!(not_allowed.status().as_u16(), 405);
    assert!(not_allowed.headers().contains_key("x-request-id"));
}

/// Hashing runs at the lowest priority, on threads of its own: the blocking
/// threads that checkpoint SQLite's WAL (every 1,024 refreshes) stay at the
/// normal one, so a login flood can't starve refreshes behind a checkpoint.
#[tokio::test]
async fn only_password_hashing_runs_at_low_priority() {
    let Some(server) = TestServer::start_process(Backend::Sqlite).await else {
        return;
    };
    let session = server.signup("nicety").await;
    let logins: Vec<_> = (0..12).map(|_| server.login("nicety", PASSWORD)).collect();
    for body in futures::future::join_all(logins).await {
        assert!(body["data"]["login"].is_object(), "{body}");
    }
    let mut refresh = session.refresh;
    for _ in 0..1_100 {
        let body = server.refresh(&refresh).await;
        refresh = body["data"]["refreshToken"]["refreshToken"]
            .as_str()
            .unwrap_or_else(|| panic!("{body}"))
            .to_owned();
    }
    // Logins after the checkpoints, so no blocking thread sits idle unlowered by chance.
    for _ in 0..4 {
        assert!(server.login("nicety", PASSWORD).await["data"]["login"].is_object());
    }
    let threads = threads(server.pid());
    let base = main_thread(server.pid()).nice;
    let lowered: Vec<&Thread> = threads.iter().filter(|t| t.nice != base).collect();
    assert!(!lowered.is_empty(), "hashing is lowered: {threads:?}");
    assert!(
        lowered
            .iter()
            .all(|t| t.name.starts_with("argon2") && t.nice == 19),
        "only the hashing threads are lowered: {threads:?}"
    );
}

/// Unix seconds now.
fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn sleep_until(unix: i64) {
    let wait = (unix * 1000 - chrono::Utc::now().timestamp_millis()).max(0);
    tokio::time::sleep(Duration::from_millis(wait as u64 + 50)).await;
}

const LOGOUT_ALL: &str = "mutation { logoutAll }";

/// Sessions ended while a refresh of theirs raced the end (logout, reuse
/// detection, logoutAll) stay ended after the blacklist is pruned: no token
/// they ever issued works again, to its last second.
#[apply(backends)]
async fn a_session_ended_during_a_refresh_stays_ended_after_the_prune(#[case] backend: Backend) {
    const TTL: i64 = 12;
    let ttl = TTL.to_string();
    let env = [
        ("ACCESS_TOKEN_TTL", ttl.as_str()),
        ("REFRESH_TOKEN_TTL", ttl.as_str()),
    ];
    let Some(server) = TestServer::start_process_with(backend, &env).await else {
        return;
    };
    const PER_KIND: usize = 12;
    server.signup("racer").await;
    let logins: Vec<_> = (0..3 * PER_KIND)
        .map(|_| server.login("racer", PASSWORD))
        .collect();
    let sessions: Vec<Session> = futures::future::join_all(logins)
        .await
        .iter()
        .map(|body| Session::from_payload(body, "login"))
        .collect();
    let first_expiry = sessions
        .iter()
        .map(|s| claims(&s.refresh)["exp"].as_i64().unwrap())
        .max()
        .unwrap();
    let racing = &sessions;
    let (by_logout, rest) = racing.split_at(PER_KIND);
    let (by_reuse, by_logout_all) = rest.split_at(PER_KIND);
    // The reused tokens are rotated now; the race presents them again.
    let mut reused = Vec::new();
    let mut current = Vec::new();
    for s in by_reuse {
        let body = server.refresh(&s.refresh).await;
        reused.push(s.refresh.clone());
        current.push(Session::from_payload(&body, "refreshToken"));
    }
    // Refreshes in the race then issue tokens that outlive the sessions' first expiry.
    sleep_until(first_expiry - TTL + 3).await;

    let mut seen: Vec<String> = racing.iter().map(|s| s.access.clone()).collect();
    seen.extend(current.iter().map(|s| s.access.clone()));
    // logoutAll goes once one of its sessions' refreshes has won (by
    // causality, not a delay), while the others are still on their way.
    use futures::{FutureExt, StreamExt};
    let logout_all = async {
        let mut refreshes: futures::stream::FuturesUnordered<_> = by_logout_all
            .iter()
            .map(|s| server.refresh(&s.refresh))
            .collect();
        let first = refreshes.next().await.expect("a refresh");
        assert!(
            first["data"]["refreshToken"].is_object(),
            "the first refresh of a live session wins: {first}"
        );
        let (all, rest) = tokio::join!(
            server.gql(Some(&by_logout_all[0].access), LOGOUT_ALL, json!({})),
            refreshes.collect::<Vec<_>>()
        );
        assert!(all["data"]["logoutAll"].is_number(), "{all}");
        (first, rest)
    };
    let refreshes = by_logout
        .iter()
        .chain(&current)
        .map(|s| server.refresh(&s.refresh));
    let ends = futures::future::join_all(
        by_logout
            .iter()
            .map(|s| server.logout(&s.refresh).boxed_local())
            .chain(reused.iter().map(|r| server.refresh(r).boxed_local())),
    );
    let (mut refreshed, ends, (first, rest)) =
        tokio::join!(futures::future::join_all(refreshes), ends, logout_all);
    refreshed.push(first);
    refreshed.extend(rest);
    for end in &ends {
        let ok = end["data"]["logout"] == true || reason(end) == "revoked";
        assert!(ok, "{end}");
    }
    let mut won = 0;
    for body in &refreshed {
        if body["data"]["refreshToken"].is_object() {
            won += 1;
            let s = Session::from_payload(body, "refreshToken");
            seen.push(s.access);
            seen.push(s.refresh);
        } else {
            // Lost to the end of its session; "expired" would mean the race
            // came too late to test anything.
            assert_eq!(reason(body), "revoked", "{body}");
        }
    }
    // Nothing issued before or during logoutAll survives it, even now.
    for token in &seen {
        assert_eq!(server.verify(token).await["valid"], false, "{token}");
    }
    let last_expiry = seen
        .iter()
        .map(|t| claims(t)["exp"].as_i64().unwrap())
        .max()
        .unwrap();
    eprintln!("{won} racing refreshes won; tokens live until {last_expiry}");

    // The prune runs at start: restart once every first expiry is past.
    sleep_until(first_expiry + 1).await;
    let server = server.restart().await;
    let mut rounds = 0;
    while now() < last_expiry {
        for token in &seen {
            let info = server.verify(token).await;
            assert_eq!(info["valid"], false, "a token of an ended session: {info}");
            if info["tokenType"] == "access" {
                assert_eq!(code(&server.me(token).await), "UNAUTHENTICATED");
            }
        }
        rounds += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(rounds > 0, "checked after the prune");
}

const CHANGE_PASSWORD: &str =
    "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) }";

/// Logins verified against the old password while it changes: none of them
/// keeps a session once the change is done.
#[apply(backends)]
async fn no_login_with_the_old_password_outlives_a_password_change(#[case] backend: Backend) {
    let Some(server) = TestServer::start_process(backend).await else {
        return;
    };
    let owner = server.signup("changer").await;
    // Logins arrive before, during and after the change; the hashing queue
    // spreads them further.
    let logins = (0..24).map(|i| {
        let server = &server;
        async move {
            tokio::time::sleep(Duration::from_millis(10 * i)).await;
            server.login("changer", PASSWORD).await
        }
    });
    let change = async {
        tokio::time::sleep(Duration::from_millis(60)).await;
        server
            .gql(
                Some(&owner.access),
                CHANGE_PASSWORD,
                json!({ "c": PASSWORD, "n": "a brand new passphrase" }),
            )
            .await
    };
    let (logins, changed) = tokio::join!(futures::future::join_all(logins), change);
    assert_eq!(changed["data"]["changePassword"], true, "{changed}");
    let mut ok = 0;
    for body in &logins {
        if body["data"]["login"].is_object() {
            ok += 1;
            let s = Session::from_payload(body, "login");
            let me = server.me(&s.access).await;
            assert_eq!(
                code(&me),
                "UNAUTHENTICATED",
                "a login with the old password: {me}"
            );
            assert!(server.refresh(&s.refresh).await["data"]["refreshToken"].is_null());
        } else {
            assert_eq!(code(body), "INVALID_CREDENTIALS", "{body}");
        }
    }
    eprintln!("{ok} of 24 logins with the old password got tokens");
    assert!(
        server.me(&owner.access).await["data"]["me"].is_object(),
        "the changer's session goes on"
    );
    let fresh = server.login("changer", "a brand new passphrase").await;
    assert!(fresh["data"]["login"].is_object(), "{fresh}");
}

/// A variable used where its declared type is not allowed is refused before
/// anything runs, in every position, the second time (a kept document) too:
/// async-graphql's own rule let `[String]` fill `String!`.
#[apply(backends)]
async fn a_variable_of_the_wrong_type_is_refused_wherever_it_is_used(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let signup = "mutation($x: [String]) { signup(input: { username: $x, email: \"v@example.com\", password: \"correct horse battery\" }) { accessToken } }";
    let cases = [
        (
            "query($x: [String]) { verifyToken(token: $x) { valid } }",
            json!("abc"),
        ),
        (
            "query($x: [String]!) { verifyToken(token: $x) { valid } }",
            json!("abc"),
        ),
        (
            "query($x: Int) { verifyToken(token: $x) { valid } }",
            json!(1),
        ),
        (
            "query($x: String) { verifyToken(token: $x) { valid } }",
            json!("abc"),
        ),
        (signup, json!("victim")),
        (
            "query($x: [Boolean]) { verifyToken(token: \"t\") @include(if: $x) { valid } }",
            json!(true),
        ),
        (
            "query($x: [String]) { __type(name: $x) { name } }",
            json!("Query"),
        ),
        (
            "query($x: [String]) { ...F } fragment F on Query { verifyToken(token: $x) { valid } }",
            json!("abc"),
        ),
    ];
    for (query, x) in &cases {
        for round in ["parsed", "kept"] {
            let body = server.gql(None, query, json!({ "x": x })).await;
            assert_eq!(
                code(&body),
                "GRAPHQL_VALIDATION_FAILED",
                "{round}: {query}: {body}"
            );
            assert!(body["data"].is_null(), "nothing ran: {body}");
        }
    }
    let body = server.gql(None, cases[0].0, json!({ "x": "abc" })).await;
    assert_eq!(
        body["errors"][0]["message"],
        "Variable \"$x\" of type \"[String]\" used in position expecting type \"String!\"",
        "{body}"
    );
    // The signup never ran: the name is free.
    server.signup("victim").await;
    // An allowed type runs as before.
    let body = server
        .gql(
            None,
            "query($x: String!) { verifyToken(token: $x) { valid } }",
            json!({ "x": "abc" }),
        )
        .await;
    assert_eq!(body["data"]["verifyToken"]["valid"], false, "{body}");
    let body = server
        .gql(
            None,
            "query($x: String = \"abc\") { verifyToken(token: $x) { valid } }",
            json!({}),
        )
        .await;
    assert_eq!(body["data"]["verifyToken"]["valid"], false, "{body}");
}

//! Security events: every kind's row, its fields and its log line; refused
//! changes leave no success; pages stable while events arrive; the log's
//! order across two servers on one PostgreSQL with a transaction held open.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::databases::TestDatabase;
use crate::helpers::*;
use crate::mfa::{enroll, mfa_token, verify_mfa};

pub const EVENTS: &str = "query($first: Int, $after: String, $filter: SecurityEventFilter) { securityEvents(first: $first, after: $after, filter: $filter) { edges { cursor node { id occurredAt kind outcome userId sessionId actor { kind id } ip userAgent requestId detail } } pageInfo { hasNextPage endCursor } } }";
const CLIENT_IP: &str = "203.0.113.7";
const WRONG: &str = "not-the-password-typed-here";
const TYPED: &str = "a-password-typed-as-a-username";

/// Behind a trusted proxy, logs as JSON, no per-IP limit in the way.
const ENV: &[(&str, &str)] = &[
    ("TRUSTED_PROXIES", "127.0.0.1"),
    ("LOG_FORMAT", "json"),
    ("AUTH_RATE_LIMIT_PER_MINUTE", "0"),
];

fn user_agent() -> String {
    format!("events-test/1.0 {}", "x".repeat(300))
}

/// One operation from the client at [`CLIENT_IP`] with request id `rid`.
async fn from(
    server: &TestServer,
    token: Option<&str>,
    rid: &str,
    query: &str,
    vars: Value,
) -> Value {
    let mut request = reqwest::Client::new()
        .post(server.url("/graphql"))
        .header("X-Forwarded-For", CLIENT_IP)
        .header("User-Agent", user_agent())
        .header("X-Request-Id", rid)
        .json(&json!({ "query": query, "variables": vars }));
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    request.send().await.unwrap().json().await.unwrap()
}

/// Every event `filter` lets through, newest first, page by page.
pub async fn all_events(server: &TestServer, admin: &str, filter: Value) -> Vec<Value> {
    let mut events = Vec::new();
    let mut after = Value::Null;
    loop {
        let body = server
            .gql(
                Some(admin),
                EVENTS,
                json!({ "first": 100, "after": after, "filter": filter }),
            )
            .await;
        let page = &body["data"]["securityEvents"];
        assert!(page.is_object(), "{body}");
        events.extend(
            page["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"].clone()),
        );
        if page["pageInfo"]["hasNextPage"] != true {
            return events;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
}

/// The events of `user_id`, oldest first.
async fn history(server: &TestServer, admin: &str, user_id: &str) -> Vec<Value> {
    let mut events = all_events(server, admin, json!({ "userId": user_id })).await;
    events.reverse();
    events
}

fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e["detail"].get("reason") {
            Some(reason) => format!(
                "{}:{}",
                e["kind"].as_str().unwrap(),
                reason.as_str().unwrap()
            ),
            None => e["kind"].as_str().unwrap().to_owned(),
        })
        .collect()
}

/// The security log lines of a `LOG_FORMAT=json` server, by event id.
fn log_lines(server: &TestServer) -> Vec<Value> {
    server
        .log_text()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["target"] == "authgraph::security")
        .collect()
}

/// Each event has exactly one log line, saying what its row says.
async fn each_logged_once(server: &TestServer, events: &[Value]) {
    let last = events.last().unwrap()["id"].as_str().unwrap().to_owned();
    assert!(server.logs_soon(&last).await, "the last event's line");
    let lines = log_lines(server);
    for event in events {
        let id = event["id"].as_str().unwrap();
        let mine: Vec<&Value> = lines
            .iter()
            .filter(|l| l["fields"]["event_id"] == id)
            .collect();
        assert_eq!(mine.len(), 1, "one line for {event}");
        let fields = &mine[0]["fields"];
        assert_eq!(fields["message"], "security event", "{fields}");
        assert_eq!(mine[0]["level"], "INFO");
        assert_eq!(fields["kind"], event["kind"]);
        assert_eq!(fields["outcome"], event["outcome"]);
        assert_eq!(fields["actor_kind"], event["actor"]["kind"]);
        for (field, key) in [
            ("user_id", "userId"),
            ("session_id", "sessionId"),
            ("ip", "ip"),
            ("user_agent", "userAgent"),
            ("request_id", "requestId"),
        ] {
            assert_eq!(
                fields.get(field).unwrap_or(&Value::Null),
                &event[key],
                "{field} of {event}"
            );
        }
        let detail: Value = serde_json::from_str(fields["detail"].as_str().unwrap()).unwrap();
        assert_eq!(detail, event["detail"]);
    }
}

/// Everything the log table holds, and the server's log, as text: neither
/// may hold any of `secrets`.
async fn holds_none_of(server: &TestServer, secrets: &[&str]) {
    use sea_orm::EntityTrait;
    let db = server.db().await;
    let rows = entity::security_event::Entity::find()
        .all(&db)
        .await
        .unwrap();
    assert!(!rows.is_empty());
    let table = format!("{rows:?}");
    let log = server.log_text();
    for secret in secrets {
        assert!(!table.contains(secret), "the table holds {secret}");
        assert!(!log.contains(secret), "the log holds {secret}");
    }
}

const LOGOUT_ALL: &str = "mutation { logoutAll }";
const REVOKE_SESSION: &str = "mutation($id: ID!) { revokeSession(id: $id) }";

#[apply(backends)]
async fn sign_ins_and_session_ends_are_recorded_with_where_they_came_from(
    #[case] backend: Backend,
) {
    let Some(server) = TestServer::start_process_with(backend, ENV).await else {
        return;
    };
    let signup = json!({ "input": { "username": "alice", "email": "alice@example.com", "password": PASSWORD } });
    let first = from(&server, None, "r-signup", SIGNUP, signup.clone()).await;
    let first = Session::from_payload(&first, "signup");
    // A refused signup (the name is taken) records nothing.
    let taken = from(&server, None, "r-taken", SIGNUP, signup).await;
    assert_eq!(code(&taken), "CONFLICT");
    let login =
        |name: &str, password: &str| json!({ "input": { "username": name, "password": password } });
    let wrong = from(&server, None, "r-wrong", LOGIN, login("alice", WRONG)).await;
    assert_eq!(code(&wrong), "INVALID_CREDENTIALS");
    let unknown = from(&server, None, "r-unknown", LOGIN, login(TYPED, WRONG)).await;
    assert_eq!(code(&unknown), "INVALID_CREDENTIALS");
    let mut sessions = Vec::new();
    for n in 0..4 {
        let body = from(
            &server,
            None,
            &format!("r-login-{n}"),
            LOGIN,
            login("alice", PASSWORD),
        )
        .await;
        sessions.push(Session::from_payload(&body, "login"));
    }
    // Ending an ended session writes nothing the second time.
    for _ in 0..2 {
        let body = from(
            &server,
            None,
            "r-logout",
            "mutation($t: String!) { logout(refreshToken: $t) }",
            json!({ "t": sessions[0].refresh }),
        )
        .await;
        assert_eq!(body["data"]["logout"], true, "{body}");
    }
    // A rotation writes nothing; the rotated token again ends its session.
    let rotated = from(
        &server,
        None,
        "r-rotate",
        REFRESH,
        json!({ "t": sessions[1].refresh }),
    )
    .await;
    assert!(rotated["data"]["refreshToken"].is_object(), "{rotated}");
    let reused = from(
        &server,
        None,
        "r-reuse",
        REFRESH,
        json!({ "t": sessions[1].refresh }),
    )
    .await;
    assert_eq!(reason(&reused), "revoked", "{reused}");
    // Someone else's session: FORBIDDEN, recorded, and that session goes on.
    let bob = server.signup("bob").await;
    let bob_sid = claims(&bob.access)["sid"].as_str().unwrap().to_owned();
    let body = from(
        &server,
        Some(&first.access),
        "r-foreign",
        REVOKE_SESSION,
        json!({ "id": bob_sid }),
    )
    .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    // Three live sessions: the signup's and two logins'.
    let body = from(&server, Some(&first.access), "r-all", LOGOUT_ALL, json!({})).await;
    assert_eq!(body["data"]["logoutAll"], 3, "{body}");

    let root = server.admin("root").await;
    let events = history(&server, &root.access, &first.user_id).await;
    assert_eq!(
        kinds(&events),
        [
            "user.signed_up",
            "login.failed:wrong_password",
            "login.succeeded",
            "login.succeeded",
            "login.succeeded",
            "login.succeeded",
            "session.ended:logout",
            "session.ended:refresh_reused",
            "access.denied",
            "session.ended:logout_all",
            "session.ended:logout_all",
            "session.ended:logout_all",
        ],
        "{events:#?}"
    );
    let sid = |session: &Session| claims(&session.access)["sid"].clone();
    let signed_up = &events[0];
    assert_eq!(signed_up["sessionId"], sid(&first));
    assert_eq!(signed_up["outcome"], "SUCCESS");
    assert_eq!(
        signed_up["actor"],
        json!({ "kind": "USER", "id": first.user_id })
    );
    assert_eq!(
        signed_up["ip"], CLIENT_IP,
        "the client behind the trusted proxy"
    );
    assert_eq!(
        signed_up["userAgent"].as_str().unwrap().chars().count(),
        256
    );
    assert!(user_agent().starts_with(signed_up["userAgent"].as_str().unwrap()));
    assert_eq!(signed_up["requestId"], "r-signup");
    assert_eq!(signed_up["detail"], json!({}));
    let failed = &events[1];
    assert_eq!(
        (&failed["outcome"], &failed["actor"]["kind"]),
        (&json!("FAILURE"), &json!("ANONYMOUS"))
    );
    assert_eq!(
        failed["detail"],
        json!({ "method": "password", "reason": "wrong_password" })
    );
    assert_eq!(failed["requestId"], "r-wrong");
    for (n, event) in events[2..6].iter().enumerate() {
        assert_eq!(event["detail"], json!({ "method": "password" }));
        assert_eq!(event["sessionId"], sid(&sessions[n]));
        assert_eq!(event["requestId"], format!("r-login-{n}"));
    }
    assert_eq!(events[6]["sessionId"], sid(&sessions[0]));
    assert_eq!(events[6]["actor"]["kind"], "USER");
    let reuse = &events[7];
    assert_eq!(
        (&reuse["sessionId"], &reuse["outcome"]),
        (&sid(&sessions[1]), &json!("FAILURE"))
    );
    assert_eq!(reuse["actor"], json!({ "kind": "ANONYMOUS", "id": null }));
    assert_eq!(reuse["requestId"], "r-reuse");
    assert_eq!(events[8]["detail"], json!({ "operation": "revokeSession" }));
    assert_eq!(events[8]["sessionId"], sid(&first));
    let ended: HashSet<String> = events[9..]
        .iter()
        .map(|e| e["sessionId"].as_str().unwrap().to_owned())
        .collect();
    let expected: HashSet<String> = [&first, &sessions[2], &sessions[3]]
        .into_iter()
        .map(|s| sid(s).as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ended, expected, "one session.ended per session");
    // Bob's session did not end.
    assert!(
        !kinds(&history(&server, &root.access, &bob.user_id).await)
            .iter()
            .any(|k| k.starts_with("session.ended"))
    );
    // The unknown account's failure: no user, no identifier.
    let unknown: Vec<Value> =
        all_events(&server, &root.access, json!({ "kinds": ["login.failed"] }))
            .await
            .into_iter()
            .filter(|e| e["userId"].is_null())
            .collect();
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    assert_eq!(
        unknown[0]["detail"],
        json!({ "method": "password", "reason": "unknown_account" })
    );
    assert_eq!(unknown[0]["requestId"], "r-unknown");

    each_logged_once(&server, &events).await;
    let tokens: Vec<&str> = sessions
        .iter()
        .chain([&first])
        .flat_map(|s| [s.access.as_str(), s.refresh.as_str()])
        .collect();
    let mut secrets = vec![PASSWORD, WRONG, TYPED];
    secrets.extend(tokens);
    holds_none_of(&server, &secrets).await;
}

const CHANGE: &str =
    "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) }";
const SET_ROLE: &str = "mutation($id: ID!, $role: Role!, $p: String) { setRole(userId: $id, role: $role, password: $p) { role } }";

#[apply(backends)]
async fn credential_and_role_changes_are_recorded_and_refusals_leave_no_success(
    #[case] backend: Backend,
) {
    let Some(server) = TestServer::start_process_with(backend, ENV).await else {
        return;
    };
    let root = server.admin("root").await;
    let carol = server.signup("carol").await;
    let other = Session::from_payload(&server.login("carol", PASSWORD).await, "login");
    let body = from(
        &server,
        Some(&carol.access),
        "r-bad",
        CHANGE,
        json!({ "c": WRONG, "n": "a-new-long-password-1" }),
    )
    .await;
    assert_eq!(code(&body), "INVALID_CREDENTIALS");
    let body = from(
        &server,
        Some(&carol.access),
        "r-change",
        CHANGE,
        json!({ "c": PASSWORD, "n": "a-new-long-password-1" }),
    )
    .await;
    assert_eq!(body["data"]["changePassword"], true, "{body}");
    let carol = Session::from_payload(
        &server.login("carol", "a-new-long-password-1").await,
        "login",
    );
    let (key, key_id) = {
        // createApiKey asks the password again.
        let body = server
            .gql(Some(&carol.access), "mutation($n: String!, $p: String) { createApiKey(name: $n, password: $p) { key apiKey { id prefix } } }", json!({ "n": "export", "p": "a-new-long-password-1" }))
            .await;
        let made = &body["data"]["createApiKey"];
        assert!(made.is_object(), "{body}");
        (
            made["key"].as_str().unwrap().to_owned(),
            made["apiKey"]["id"].as_str().unwrap().to_owned(),
        )
    };
    // Two uses at once: one first use.
    let as_key = format!("Token {key}");
    let (a, b) = tokio::join!(
        server.gql_with_header(&as_key, "{ me { id } }"),
        server.gql_with_header(&as_key, "{ me { id } }")
    );
    assert!(
        a["data"]["me"].is_object() && b["data"]["me"].is_object(),
        "{a} {b}"
    );
    // The first use is noted off the request's path.
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A key may not see the log: FORBIDDEN, recorded with the key as actor.
    let body = server
        .gql_with_header(&as_key, "{ securityEvents { edges { cursor } } }")
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    let body = server
        .gql(
            Some(&carol.access),
            "mutation($id: ID!) { revokeApiKey(id: $id) }",
            json!({ "id": key_id }),
        )
        .await;
    assert_eq!(body["data"]["revokeApiKey"], true, "{body}");
    // A USER asking for every event: FORBIDDEN, recorded.
    let body = server
        .gql(
            Some(&carol.access),
            "{ securityEvents { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN");
    // Promoted by an admin; the last admin can't be demoted (refused, no event).
    let body = server
        .gql(
            Some(&root.access),
            SET_ROLE,
            json!({ "id": carol.user_id, "role": "ADMIN", "p": PASSWORD }),
        )
        .await;
    assert_eq!(body["data"]["setRole"]["role"], "ADMIN", "{body}");
    let body = server
        .gql(
            Some(&root.access),
            SET_ROLE,
            json!({ "id": carol.user_id, "role": "USER" }),
        )
        .await;
    assert_eq!(body["data"]["setRole"]["role"], "USER", "{body}");
    let body = server
        .gql(
            Some(&root.access),
            SET_ROLE,
            json!({ "id": root.user_id, "role": "USER" }),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "the last admin: {body}");

    let events = history(&server, &root.access, &carol.user_id).await;
    let sid = |session: &Session| claims(&session.access)["sid"].clone();
    let seen = kinds(&events);
    assert_eq!(
        seen,
        [
            "user.signed_up",
            "login.succeeded",
            "reauth.failed",
            "password.changed",
            "session.ended:password_changed",
            "login.succeeded",
            "api_key.created",
            "api_key.first_used",
            "access.denied",
            "api_key.revoked:revoked",
            "access.denied",
            "user.role_changed",
            "user.role_changed",
        ],
        "{events:#?}"
    );
    assert_eq!(
        events[2]["detail"],
        json!({ "operation": "changePassword" })
    );
    assert_eq!(events[2]["outcome"], "FAILURE");
    assert_eq!(events[3]["detail"], json!({ "sessionsEnded": 1 }));
    assert_eq!(events[4]["sessionId"], sid(&other));
    let created = &events[6]["detail"];
    assert_eq!(created["keyId"], key_id);
    assert_eq!(created["name"], "export");
    assert!(key.contains(created["prefix"].as_str().unwrap()));
    assert!(created["expiresAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        events[7]["actor"],
        json!({ "kind": "API_KEY", "id": key_id })
    );
    assert_eq!(
        events[8]["actor"],
        json!({ "kind": "API_KEY", "id": key_id })
    );
    assert_eq!(
        events[8]["detail"],
        json!({ "operation": "securityEvents" })
    );
    assert_eq!(
        events[9]["actor"],
        json!({ "kind": "USER", "id": carol.user_id })
    );
    assert_eq!(
        events[11]["detail"],
        json!({ "from": "USER", "to": "ADMIN" })
    );
    assert_eq!(
        events[11]["actor"],
        json!({ "kind": "ADMIN", "id": root.user_id })
    );
    assert_eq!(events[11]["sessionId"], sid(&root));
    assert_eq!(
        events[12]["detail"],
        json!({ "from": "ADMIN", "to": "USER" })
    );
    // root's own: promoted by the command line (SYSTEM), and the refused demotion's access.denied only.
    let mine = history(&server, &root.access, &root.user_id).await;
    assert_eq!(
        kinds(&mine),
        ["user.signed_up", "user.role_changed", "access.denied"],
        "{mine:#?}"
    );
    assert_eq!(mine[1]["actor"], json!({ "kind": "SYSTEM", "id": null }));
    assert!(mine[1]["ip"].is_null());
    each_logged_once(&server, &events).await;
    holds_none_of(
        &server,
        &[
            PASSWORD,
            WRONG,
            "a-new-long-password-1",
            &key,
            &carol.access,
        ],
    )
    .await;
}

#[apply(backends)]
async fn mfa_is_recorded_through_every_step(#[case] backend: Backend) {
    let Some(server) =
        TestServer::start_with(backend, &[("AUTH_RATE_LIMIT_PER_MINUTE", "0")]).await
    else {
        return;
    };
    let root = server.admin("root").await;
    let enrolled = enroll(&server, "dave").await;
    let token = mfa_token(&server, "dave", PASSWORD).await;
    let body = verify_mfa(&server, &token, "000000").await;
    assert_eq!(code(&body), "INVALID_CREDENTIALS");
    let body = verify_mfa(&server, &token, &enrolled.recovery[0]).await;
    let signed_in = Session::from_payload(&body, "verifyMfa");
    let body = server
        .gql(
            Some(&signed_in.access),
            "mutation($p: String, $c: String!) { regenerateRecoveryCodes(password: $p, code: $c) }",
            json!({ "p": PASSWORD, "c": enrolled.recovery[1] }),
        )
        .await;
    let fresh: Vec<String> = body["data"]["regenerateRecoveryCodes"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    let body = server
        .gql(
            Some(&signed_in.access),
            "mutation($p: String, $c: String!) { disableTotp(password: $p, code: $c) }",
            json!({ "p": PASSWORD, "c": "999999" }),
        )
        .await;
    assert_eq!(code(&body), "INVALID_CREDENTIALS", "{body}");
    let body = server
        .gql(
            Some(&signed_in.access),
            "mutation($p: String, $c: String!) { disableTotp(password: $p, code: $c) }",
            json!({ "p": PASSWORD, "c": fresh[0] }),
        )
        .await;
    assert_eq!(body["data"]["disableTotp"], true, "{body}");
    let events = history(&server, &root.access, &enrolled.session.user_id).await;
    assert_eq!(
        kinds(&events),
        [
            "user.signed_up",
            "mfa.enabled",
            "login.mfa_challenged",
            "mfa.failed",
            "mfa.recovery_code_used",
            "login.succeeded",
            "mfa.recovery_code_used",
            "mfa.recovery_codes_regenerated",
            "mfa.failed",
            "mfa.recovery_code_used",
            "mfa.disabled",
            "session.ended:mfa_changed",
        ],
        "{events:#?}"
    );
    assert_eq!(events[2]["detail"], json!({ "method": "password" }));
    assert_eq!(events[3]["detail"], json!({ "operation": "verifyMfa" }));
    assert_eq!(events[4]["detail"], json!({ "remaining": 9 }));
    assert_eq!(
        events[5]["detail"],
        json!({ "method": "password+recovery_code" })
    );
    assert_eq!(events[5]["sessionId"], claims(&signed_in.access)["sid"]);
    assert_eq!(events[6]["detail"], json!({ "remaining": 8 }));
    assert_eq!(events[8]["detail"], json!({ "operation": "disableTotp" }));
    // Turning MFA off ended the enrollment's session, the caller's stays.
    assert_eq!(
        events[11]["sessionId"],
        claims(&enrolled.session.access)["sid"]
    );
    // No code or secret in any event.
    let text = format!("{events:?}");
    for secret in enrolled
        .recovery
        .iter()
        .chain(&fresh)
        .chain([&enrolled.secret])
    {
        assert!(!text.contains(secret.as_str()), "{secret}");
    }
}

#[apply(backends)]
async fn a_throttled_identifier_records_one_event_per_window(#[case] backend: Backend) {
    let Some(server) = TestServer::start_with(
        backend,
        &[
            ("LOGIN_FAILURES_PER_HOUR", "2"),
            ("AUTH_RATE_LIMIT_PER_MINUTE", "0"),
        ],
    )
    .await
    else {
        return;
    };
    let root = server.admin("root").await;
    let erin = server.signup("erin").await;
    for _ in 0..2 {
        assert_eq!(
            code(&server.login("erin", WRONG).await),
            "INVALID_CREDENTIALS"
        );
    }
    // Refused together: one event, whatever the interleaving.
    let refusals = futures::future::join_all((0..10).map(|_| server.login("erin", WRONG))).await;
    assert!(
        refusals
            .iter()
            .all(|body| code(body) == "TOO_MANY_REQUESTS")
    );
    for _ in 0..2 {
        assert_eq!(
            code(&server.login("nobody-here", WRONG).await),
            "INVALID_CREDENTIALS"
        );
    }
    assert_eq!(
        code(&server.login("nobody-here", WRONG).await),
        "TOO_MANY_REQUESTS"
    );
    let throttled: Vec<Value> =
        all_events(&server, &root.access, json!({ "kinds": ["login.failed"] }))
            .await
            .into_iter()
            .filter(|e| e["detail"]["reason"] == "throttled")
            .collect();
    assert_eq!(throttled.len(), 2, "{throttled:#?}");
    let users: HashSet<Value> = throttled.iter().map(|e| e["userId"].clone()).collect();
    assert_eq!(users, HashSet::from([json!(erin.user_id), Value::Null]));
}

#[apply(backends)]
async fn bad_arguments_are_bad_user_input_naming_the_argument(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let root = server.admin("root").await;
    let user_cursor = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("user:0190ab")
    };
    let cases = [
        (json!({ "first": 0 }), "first"),
        (json!({ "first": 101 }), "first"),
        (json!({ "after": user_cursor }), "after"),
        (json!({ "after": "garbage" }), "after"),
        (json!({ "filter": { "kinds": ["login.nope"] } }), "kinds"),
        (json!({ "filter": { "kinds": ["nope.*"] } }), "kinds"),
        (
            json!({ "filter": { "since": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z" } }),
            "since",
        ),
        (json!({ "filter": { "ip": "300.1.1.1" } }), "ip"),
        (json!({ "filter": { "userId": "not-a-uuid" } }), "userId"),
    ];
    for (vars, field) in cases {
        let body = server.gql(Some(&root.access), EVENTS, vars.clone()).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{vars}: {body}");
        assert_eq!(
            body["errors"][0]["extensions"]["field"], field,
            "{vars}: {body}"
        );
        let message = body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .to_lowercase();
        assert!(
            !message.contains("select") && !message.contains("panic"),
            "{message}"
        );
    }
    // Good filters answer: a prefix, a time range, an IP however spelled.
    for filter in [
        json!({ "kinds": ["user.*", "login.succeeded"] }),
        json!({ "since": "2020-01-01T00:00:00Z", "until": "2999-01-01T00:00:00Z" }),
        json!({ "ip": "::ffff:127.0.0.1" }),
    ] {
        let events = all_events(&server, &root.access, filter.clone()).await;
        assert!(!events.is_empty(), "{filter}");
    }
    let none = all_events(
        &server,
        &root.access,
        json!({ "since": "2999-01-01T00:00:00Z" }),
    )
    .await;
    assert!(none.is_empty());
}

#[apply(backends)]
async fn pages_stay_stable_while_events_arrive(#[case] backend: Backend) {
    let Some(server) =
        TestServer::start_with(backend, &[("AUTH_RATE_LIMIT_PER_MINUTE", "0")]).await
    else {
        return;
    };
    let server = Arc::new(server);
    let root = server.admin("root").await;
    for n in 0..12 {
        server.signup(&format!("early{n}")).await;
    }
    let writer = {
        let server = server.clone();
        tokio::spawn(async move {
            for n in 0..12 {
                server.signup(&format!("late{n}")).await;
            }
        })
    };
    // Page through, five at a time, while the writer signs people up.
    let mut seen = Vec::new();
    let mut after = Value::Null;
    loop {
        let body = server
            .gql(
                Some(&root.access),
                EVENTS,
                json!({ "first": 5, "after": after }),
            )
            .await;
        let page = &body["data"]["securityEvents"];
        seen.extend(
            page["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"]["id"].as_str().unwrap().to_owned()),
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        if page["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
    writer.await.unwrap();
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no repeats");
    // No gap: what the pages showed is exactly the log below its first entry.
    let now: Vec<String> = all_events(&server, &root.access, json!({}))
        .await
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    let top = now
        .iter()
        .position(|id| *id == seen[0])
        .expect("the first entry seen");
    assert_eq!(now[top..], seen[..], "newest first, nothing skipped");
}

/// Follows the log from `server`: the events newer than any seen before,
/// oldest first (pages read newest first down to the last one seen).
async fn follow(server: &TestServer, admin: &str, seen: &mut Vec<String>) -> Vec<String> {
    let known: HashSet<String> = seen.iter().cloned().collect();
    let mut newer = Vec::new();
    let mut after = Value::Null;
    'pages: loop {
        let body = server
            .gql(Some(admin), EVENTS, json!({ "first": 7, "after": after }))
            .await;
        let page = &body["data"]["securityEvents"];
        assert!(page.is_object(), "{body}");
        for edge in page["edges"].as_array().unwrap() {
            let id = edge["node"]["id"].as_str().unwrap().to_owned();
            if known.contains(&id) {
                break 'pages;
            }
            newer.push(id);
        }
        if page["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
    newer.reverse();
    seen.extend(newer.iter().cloned());
    newer
}

#[tokio::test]
async fn readers_on_either_server_miss_nothing_while_a_transaction_is_held_open() {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let Some(database) = TestDatabase::fresh().await else {
        return;
    };
    let database = Arc::new(database);
    // One key for both, under an asymmetric JWT_ALGORITHM too.
    let signing = crate::postgres::shared_signing_key_file();
    let shared = [
        ("JWT_SECRET", "a-secret-the-two-servers-share-0123456789"),
        ("JWT_SIGNING_KEY_FILE", signing.as_str()),
        ("AUTH_RATE_LIMIT_PER_MINUTE", "0"),
    ];
    let one = Arc::new(TestServer::start_on(Some(database.clone()), &shared));
    let two = Arc::new(TestServer::start_on(Some(database.clone()), &shared));
    let root = one.admin("root").await;
    for n in 0..3 {
        one.signup(&format!("alpha{n}")).await;
        two.signup(&format!("beta{n}")).await;
    }
    let (mut from_one, mut from_two) = (Vec::new(), Vec::new());
    follow(&one, &root.access, &mut from_one).await;
    follow(&two, &root.access, &mut from_two).await;
    assert_eq!(from_one, from_two);

    // A writer of its own takes a position the way the servers do, and
    // holds its transaction open. Its event occurred now: an older one
    // would be any server's to prune the moment it commits.
    let db = one.db().await;
    let held = db.begin().await.unwrap();
    let held_id = uuid::Uuid::now_v7();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros();
    held.execute_unprepared(&format!(
        "WITH p AS (UPDATE security_event_positions SET last = last + 1 WHERE id = 1 RETURNING last) \
         INSERT INTO security_events (position, id, occurred_at, kind, failed, actor_kind, detail) \
         SELECT p.last, '{held_id}', {now}, 'email.verified', false, 'SYSTEM', '{{}}' FROM p"
    ))
    .await
    .unwrap();
    // Writers on both servers meanwhile, each queued behind the held one
    // for its position (seen in pg_stat_activity) before anyone reads.
    let writers: Vec<_> = (0..6)
        .map(|n| {
            let server = if n % 2 == 0 { one.clone() } else { two.clone() };
            tokio::spawn(async move { server.signup_as(format!("late{n}")).await })
        })
        .collect();
    let mut queued = 0;
    for _ in 0..600 {
        let row = db
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DatabaseBackend::Postgres,
                "SELECT count(*) AS n FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock' \
                 AND query LIKE '%security_event_positions%'",
            ))
            .await
            .unwrap()
            .unwrap();
        queued = row.try_get::<i64>("", "n").unwrap();
        if queued == 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(queued, 6, "six signups waiting for a position");
    // Nothing after the held event is visible while it is open.
    let early_one = follow(&one, &root.access, &mut from_one).await;
    assert!(early_one.is_empty(), "seen on one: {early_one:?}");
    let early_two = follow(&two, &root.access, &mut from_two).await;
    assert!(early_two.is_empty(), "seen on two: {early_two:?}");
    held.commit().await.unwrap();
    for writer in writers {
        writer.await.unwrap();
    }
    let mut newer_one = follow(&one, &root.access, &mut from_one).await;
    newer_one.extend(follow(&two, &root.access, &mut from_one).await);
    let newer_two = follow(&two, &root.access, &mut from_two).await;
    assert_eq!(
        newer_one.len(),
        7,
        "the held event and six signups: {newer_one:?}"
    );
    assert_eq!(newer_one, newer_two, "both servers, one order");
    assert_eq!(
        newer_one[0],
        held_id.to_string(),
        "the held event, first in the order"
    );
    // Every event of the table, each seen once.
    use sea_orm::EntityTrait;
    let all = entity::security_event::Entity::find()
        .all(&db)
        .await
        .unwrap();
    assert_eq!(all.len(), from_one.len(), "every event of the table seen");
    assert_eq!(
        from_one.iter().collect::<HashSet<_>>().len(),
        from_one.len(),
        "no repeats"
    );
}

#[apply(backends)]
async fn recovery_by_mail_is_recorded(#[case] backend: Backend) {
    use crate::mail::{SmtpSink, VERIFY, mail_server, reset_by_mail, verify_prefix};
    let Some(sink) = SmtpSink::start(None) else {
        return;
    };
    let Some(server) = mail_server(backend, &sink, &[("AUTH_RATE_LIMIT_PER_MINUTE", "0")]).await
    else {
        return;
    };
    let frank = server.signup("frank").await;
    let mails = sink.wait_for(1, Duration::from_secs(15)).await;
    let link = mails[0].token(&verify_prefix());
    for _ in 0..2 {
        server.gql(None, VERIFY, json!({ "t": link })).await;
    }
    let (key, key_id) = crate::api_keys::create_key(&server, &frank, "nightly").await;
    reset_by_mail(&server, &sink, "frank", "a-new-long-password-2").await;
    let root = server.admin("root").await;
    let events = history(&server, &root.access, &frank.user_id).await;
    assert_eq!(
        kinds(&events),
        [
            "user.signed_up",
            "email.verified",
            "api_key.created",
            "password.reset",
            "session.ended:password_reset",
            "api_key.revoked:password_reset",
        ],
        "{events:#?}"
    );
    assert_eq!(
        events[3]["detail"],
        json!({ "sessionsEnded": 1, "apiKeysRevoked": 1 })
    );
    assert_eq!(events[4]["sessionId"], claims(&frank.access)["sid"]);
    assert_eq!(events[5]["detail"]["keyId"], key_id);
    let text = format!("{events:?}");
    for secret in [link.as_str(), key.as_str(), "a-new-long-password-2"] {
        assert!(!text.contains(secret), "{secret}");
    }
}

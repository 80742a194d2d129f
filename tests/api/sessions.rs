use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

const SESSIONS: &str = "{ sessions { id createdAt lastUsedAt expiresAt userAgent current } }";
const CHANGE: &str =
    "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) }";

async fn login_as(server: &TestServer, user: &str, agent: &str) -> Session {
    let body: Value = reqwest::Client::new()
        .post(server.url("/graphql"))
        .header("User-Agent", agent)
        .json(&json!({ "query": LOGIN, "variables": { "input": { "username": user, "password": PASSWORD } } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    Session::from_payload(&body, "login")
}

async fn sessions(server: &TestServer, access: &str) -> Vec<Value> {
    let body = server.gql(Some(access), SESSIONS, json!({})).await;
    body["data"]["sessions"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .clone()
}

#[apply(backends)]
async fn every_account_field_needs_an_access_token(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    for query in [
        SESSIONS,
        "mutation { changePassword(currentPassword: \"a\", newPassword: \"b\") }",
        "mutation { logoutAll }",
        "mutation { revokeSession(id: \"x\") }",
        "{ users { totalCount } }",
        "mutation { setRole(userId: \"x\", role: ADMIN) { id } }",
    ] {
        let body = server.gql(None, query, json!({})).await;
        assert_eq!(
            (code(&body), reason(&body)),
            ("UNAUTHENTICATED", "missing"),
            "{query}: {body}"
        );
    }
}

#[apply(backends)]
async fn sessions_lists_my_live_sessions_newest_first_with_the_current_marked(
    #[case] backend: Backend,
) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    server.signup("sara").await;
    let laptop = login_as(&server, "sara", "laptop-browser/1.0").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let phone = login_as(&server, "sara", "phone-app/2.0").await;
    let ended = login_as(&server, "sara", "ended/0").await;
    server.logout(&ended.refresh).await;
    // Someone else's session never shows.
    server.signup("other").await;

    let list = sessions(&server, &laptop.access).await;
    assert_eq!(list.len(), 3, "signup, laptop, phone: {list:#?}");
    let agents: Vec<&str> = list
        .iter()
        .map(|s| s["userAgent"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(agents[0], "phone-app/2.0", "newest first: {agents:?}");
    assert_eq!(agents[1], "laptop-browser/1.0");
    let current: Vec<&Value> = list.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], claims(&laptop.access)["sid"]);
    let expires =
        chrono::DateTime::parse_from_rfc3339(current[0]["expiresAt"].as_str().unwrap()).unwrap();
    assert_eq!(
        expires.timestamp(),
        claims(&laptop.refresh)["exp"].as_i64().unwrap()
    );
    assert!(!list.iter().any(|s| s["id"] == claims(&ended.access)["sid"]));
    // From the phone, the phone is current.
    let list = sessions(&server, &phone.access).await;
    assert_eq!(list[0]["current"], true);
}

#[apply(backends)]
async fn last_used_at_moves_on_each_refresh(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let session = server.signup("tina").await;
    let before = sessions(&server, &session.access).await[0].clone();
    assert_eq!(before["createdAt"], before["lastUsedAt"]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let refreshed = Session::from_payload(&server.refresh(&session.refresh).await, "refreshToken");
    let after = sessions(&server, &refreshed.access).await[0].clone();
    assert_eq!(after["id"], before["id"]);
    assert_eq!(after["createdAt"], before["createdAt"]);
    assert!(
        after["lastUsedAt"].as_str() > before["lastUsedAt"].as_str(),
        "{before} {after}"
    );
    assert!(after["expiresAt"].as_str() > before["expiresAt"].as_str());
}

#[apply(backends)]
async fn change_password_ends_every_other_session_and_keeps_this_one(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let here = server.signup("ursula").await;
    let elsewhere = Session::from_payload(&server.login("ursula", PASSWORD).await, "login");
    let new = "a brand new password";
    let body = server
        .gql(
            Some(&here.access),
            CHANGE,
            json!({ "c": PASSWORD, "n": new }),
        )
        .await;
    assert_eq!(body["data"]["changePassword"], true, "{body}");

    assert_eq!(reason(&server.me(&elsewhere.access).await), "revoked");
    assert_eq!(reason(&server.refresh(&elsewhere.refresh).await), "revoked");
    assert!(server.me(&here.access).await["data"]["me"].is_object());
    assert!(server.refresh(&here.refresh).await["data"]["refreshToken"].is_object());
    assert_eq!(
        code(&server.login("ursula", PASSWORD).await),
        "INVALID_CREDENTIALS"
    );
    assert!(server.login("ursula", new).await["data"]["login"].is_object());
}

#[apply(backends)]
async fn change_password_checks_the_current_one_and_the_rule(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let session = server.signup("victoria").await;
    let other = Session::from_payload(&server.login("victoria", PASSWORD).await, "login");
    let body = server
        .gql(
            Some(&session.access),
            CHANGE,
            json!({ "c": "wrong password", "n": "valid new password" }),
        )
        .await;
    assert_eq!(code(&body), "INVALID_CREDENTIALS", "{body}");
    let body = server
        .gql(
            Some(&session.access),
            CHANGE,
            json!({ "c": PASSWORD, "n": "short" }),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(body["errors"][0]["extensions"]["field"], "newPassword");
    // Nothing changed, nothing ended.
    assert!(server.login("victoria", PASSWORD).await["data"]["login"].is_object());
    assert!(server.me(&other.access).await["data"]["me"].is_object());
}

#[apply(backends)]
async fn logout_all_ends_every_session_and_counts_them(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let first = server.signup("walter").await;
    let second = Session::from_payload(&server.login("walter", PASSWORD).await, "login");
    let third = Session::from_payload(&server.login("walter", PASSWORD).await, "login");
    server.logout(&third.refresh).await;
    let bystander = server.signup("xena").await;

    let body = server
        .gql(Some(&first.access), "mutation { logoutAll }", json!({}))
        .await;
    assert_eq!(body["data"]["logoutAll"], 2, "{body}");
    for s in [&first, &second] {
        assert_eq!(reason(&server.me(&s.access).await), "revoked");
        assert_eq!(reason(&server.refresh(&s.refresh).await), "revoked");
    }
    assert!(server.me(&bystander.access).await["data"]["me"].is_object());
}

#[apply(backends)]
async fn revoke_session_ends_one_of_mine_and_refuses_anything_else_alike(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let mine = server.signup("yusuf").await;
    let my_other = Session::from_payload(&server.login("yusuf", PASSWORD).await, "login");
    let theirs = server.signup("zoe").await;
    let ended = Session::from_payload(&server.login("yusuf", PASSWORD).await, "login");
    server.logout(&ended.refresh).await;
    let revoke = "mutation($id: ID!) { revokeSession(id: $id) }";

    let mut messages = Vec::new();
    for id in [
        claims(&theirs.access)["sid"].as_str().unwrap().to_owned(),
        uuid::Uuid::new_v4().to_string(),
        claims(&ended.access)["sid"].as_str().unwrap().to_owned(),
        "not-a-uuid".to_owned(),
    ] {
        let body = server
            .gql(Some(&mine.access), revoke, json!({ "id": id }))
            .await;
        assert_eq!(code(&body), "FORBIDDEN", "{id}: {body}");
        messages.push(body["errors"][0]["message"].clone());
    }
    assert!(
        messages.windows(2).all(|w| w[0] == w[1]),
        "one message for all: {messages:?}"
    );
    assert!(server.me(&theirs.access).await["data"]["me"].is_object());

    let body = server
        .gql(
            Some(&mine.access),
            revoke,
            json!({ "id": claims(&my_other.access)["sid"] }),
        )
        .await;
    assert_eq!(body["data"]["revokeSession"], true, "{body}");
    assert_eq!(reason(&server.me(&my_other.access).await), "revoked");
    assert!(server.me(&mine.access).await["data"]["me"].is_object());
}

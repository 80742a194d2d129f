//! The one fresh-proof rule for sensitive fields: the password again, or a
//! session signed in less than REAUTH_WINDOW ago; a refresh never renews
//! it, and an API key never gives it.

use std::time::Duration;

use serde_json::{Value, json};

use crate::api_keys::create_key;
use crate::helpers::*;
use crate::mfa::{enroll, mfa_token, verify_mfa};

/// Seconds a sign-in counts as fresh in these tests.
const WINDOW: &str = "3";

const CREATE_KEY: &str = "mutation($p: String, $c: String) { createApiKey(name: \"ci\", password: $p, code: $c) { key } }";
const START: &str = "mutation($p: String) { startTotpEnrollment(password: $p) { secret } }";
const REGENERATE: &str =
    "mutation($p: String, $c: String!) { regenerateRecoveryCodes(password: $p, code: $c) }";
const DISABLE: &str = "mutation($p: String, $c: String!) { disableTotp(password: $p, code: $c) }";
const GRANT: &str = "mutation($id: ID!, $p: String, $c: String) { setRole(userId: $id, role: ADMIN, password: $p, code: $c) { role } }";

/// A field, called with `password` (null or the account's).
struct Field {
    name: &'static str,
    query: &'static str,
    variables: Value,
}

impl Field {
    async fn call(&self, server: &TestServer, access: &str, password: Option<&str>) -> Value {
        let mut variables = self.variables.clone();
        variables["p"] = json!(password);
        server.gql(Some(access), self.query, variables).await
    }
}

fn assert_ok(field: &Field, body: &Value, when: &str) {
    assert!(
        body["errors"].is_null() && !body["data"][field.name].is_null(),
        "{} {when}: {body}",
        field.name
    );
}

fn assert_stale(field: &Field, body: &Value, when: &str) {
    assert_eq!(code(body), "FORBIDDEN", "{} {when}: {body}", field.name);
    assert_eq!(
        reason(body),
        "reauthentication_required",
        "{} {when}: {body}",
        field.name
    );
}

/// A fresh sign-in of an account with MFA on (through verifyMfa).
async fn mfa_sign_in(server: &TestServer, username: &str, recovery: &str) -> Session {
    let token = mfa_token(server, username, PASSWORD).await;
    Session::from_payload(&verify_mfa(server, &token, recovery).await, "verifyMfa")
}

#[apply(backends)]
async fn each_sensitive_field_takes_the_password_or_a_fresh_session_only(#[case] backend: Backend) {
    let Some(server) = TestServer::start_with(backend, &[("REAUTH_WINDOW", WINDOW)]).await else {
        return;
    };
    // The accounts, each with what its field needs.
    server.signup("keys").await;
    server.signup("enrolls").await;
    let regenerates = enroll(&server, "regenerates").await;
    let disables = enroll(&server, "disables").await;
    server.admin("boss").await;
    let target = server.signup("target").await;
    let fields = [
        (
            "keys",
            Field {
                name: "createApiKey",
                query: CREATE_KEY,
                variables: json!({}),
            },
        ),
        (
            "enrolls",
            Field {
                name: "startTotpEnrollment",
                query: START,
                variables: json!({}),
            },
        ),
        (
            "regenerates",
            Field {
                name: "regenerateRecoveryCodes",
                query: REGENERATE,
                variables: json!({ "c": regenerates.recovery[1] }),
            },
        ),
        (
            "disables",
            Field {
                name: "disableTotp",
                query: DISABLE,
                variables: json!({ "c": disables.recovery[1] }),
            },
        ),
        (
            "boss",
            Field {
                name: "setRole",
                query: GRANT,
                variables: json!({ "id": target.user_id }),
            },
        ),
    ];

    // Signed in just now (a login, or verifyMfa where MFA is on): no password needed.
    let mut sessions = Vec::new();
    let mut new_codes: Vec<String> = Vec::new();
    for (user, field) in &fields {
        let session = match *user {
            "regenerates" => mfa_sign_in(&server, user, &regenerates.recovery[0]).await,
            "disables" => mfa_sign_in(&server, user, &disables.recovery[0]).await,
            _ => Session::from_payload(&server.login(user, PASSWORD).await, "login"),
        };
        let body = field.call(&server, &session.access, None).await;
        assert_ok(field, &body, "in a fresh session");
        if field.name == "regenerateRecoveryCodes" {
            new_codes = serde_json::from_value(body["data"][field.name].clone()).unwrap();
        }
        sessions.push(session);
    }

    // Another account with MFA on, whose session goes stale with the rest.
    let later = enroll(&server, "disableslater").await;
    let later_session = mfa_sign_in(&server, "disableslater", &later.recovery[0]).await;

    // The window passes: null is refused, and a refresh doesn't renew it.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut refreshed = Vec::new();
    for ((_, field), session) in fields.iter().zip(&sessions) {
        // disableTotp turned MFA off in the fresh session: the later account's turn.
        let session = if field.name == "disableTotp" {
            &later_session
        } else {
            session
        };
        let field = &Field {
            name: field.name,
            query: field.query,
            variables: match field.name {
                "disableTotp" => json!({ "c": later.recovery[1] }),
                _ => field.variables.clone(),
            },
        };
        let body = field.call(&server, &session.access, None).await;
        assert_stale(field, &body, "in a stale session");
        let newer = Session::from_payload(&server.refresh(&session.refresh).await, "refreshToken");
        let body = field.call(&server, &newer.access, None).await;
        assert_stale(field, &body, "after a refresh");
        refreshed.push(newer);
    }

    // The password still proves it, in the same stale session.
    let stale_with_password = [
        ("createApiKey", CREATE_KEY, json!({ "p": PASSWORD }), 0),
        (
            "regenerateRecoveryCodes",
            REGENERATE,
            json!({ "p": PASSWORD, "c": new_codes[0] }),
            2,
        ),
        (
            "setRole",
            GRANT,
            json!({ "p": PASSWORD, "id": target.user_id }),
            4,
        ),
    ];
    for (name, query, variables, at) in stale_with_password {
        let body = server
            .gql(Some(&refreshed[at].access), query, variables)
            .await;
        assert!(body["errors"].is_null(), "{name} with the password: {body}");
    }
    let body = server
        .gql(
            Some(&refreshed[3].access),
            DISABLE,
            json!({ "p": PASSWORD, "c": later.recovery[2] }),
        )
        .await;
    assert_eq!(body["data"]["disableTotp"], true, "{body}");
    // startTotpEnrollment with the password (MFA off for that account).
    let body = server
        .gql(Some(&refreshed[1].access), START, json!({ "p": PASSWORD }))
        .await;
    assert!(body["errors"].is_null(), "{body}");
    // A wrong password is INVALID_CREDENTIALS, not a pass.
    let body = server
        .gql(
            Some(&refreshed[0].access),
            CREATE_KEY,
            json!({ "p": "not the password" }),
        )
        .await;
    assert_eq!(code(&body), "INVALID_CREDENTIALS", "{body}");
    // With MFA on, the password alone is not enough.
    let body = server
        .gql(
            Some(&refreshed[2].access),
            REGENERATE,
            json!({ "p": PASSWORD, "c": "000000" }),
        )
        .await;
    assert_eq!(code(&body), "INVALID_CREDENTIALS", "{body}");
}

#[apply(backends)]
async fn an_api_key_never_gives_a_fresh_proof(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let session = server.signup("scripted").await;
    let (key, _) = create_key(&server, &session, "ci").await;
    // The key's session-less request, just after the sign-in, with or without the password.
    for password in [None, Some(PASSWORD)] {
        for query in [CREATE_KEY, START] {
            let body = server
                .gql_as(&format!("Token {key}"), query, json!({ "p": password }))
                .await;
            assert_eq!(code(&body), "FORBIDDEN", "{query}: {body}");
        }
    }
}

#[apply(backends)]
async fn a_window_of_zero_leaves_the_password_alone(#[case] backend: Backend) {
    let Some(server) = TestServer::start_with(backend, &[("REAUTH_WINDOW", "0")]).await else {
        return;
    };
    let session = server.signup("strict").await;
    let body = server
        .gql(Some(&session.access), CREATE_KEY, json!({}))
        .await;
    assert_eq!(reason(&body), "reauthentication_required", "{body}");
    let body = server
        .gql(Some(&session.access), CREATE_KEY, json!({ "p": PASSWORD }))
        .await;
    assert!(body["data"]["createApiKey"]["key"].is_string(), "{body}");
    // With MFA on and no code: refused, and the message says what is missing.
    let enrolled = enroll(&server, "strictmfa").await;
    let body = server
        .gql(
            Some(&enrolled.session.access),
            CREATE_KEY,
            json!({ "p": PASSWORD }),
        )
        .await;
    assert_eq!(code(&body), "INVALID_CREDENTIALS", "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("give a code"),
        "{body}"
    );
}

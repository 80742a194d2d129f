use serde_json::json;

use crate::helpers::*;

#[apply(backends)]
async fn signup_returns_tokens_and_the_normalised_user(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let body = server
        .gql(
            None,
            SIGNUP,
            json!({ "input": { "username": "  Alice_1 ", "email": " Alice@Example.COM ", "password": PASSWORD } }),
        )
        .await;
    let payload = &body["data"]["signup"];
    assert_eq!(payload["tokenType"], "Bearer", "{body}");
    assert_eq!(payload["expiresIn"], 900);
    let user = &payload["user"];
    assert_eq!(user["username"], "Alice_1");
    assert_eq!(user["email"], "alice@example.com");
    assert_eq!(user["role"], "USER");
    let id = user["id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "id is a UUID: {id}");
    let created = user["createdAt"].as_str().unwrap();
    let parsed = chrono::DateTime::parse_from_rfc3339(created).expect("RFC 3339");
    assert_eq!(parsed.offset().local_minus_utc(), 0, "UTC: {created}");
    assert!(created.ends_with('Z'), "{created}");
}

#[apply(backends)]
async fn signup_tokens_carry_the_contract_claims(#[case] backend: Backend) {
    let Some(server) = TestServer::start_with(
        backend,
        &[("ACCESS_TOKEN_TTL", "120"), ("REFRESH_TOKEN_TTL", "3600")],
    )
    .await
    else {
        return;
    };
    let session = server.signup("claimsuser").await;
    let access = claims(&session.access);
    let refresh = claims(&session.refresh);
    assert_eq!(header(&session.access)["alg"], algorithm().as_str());
    assert_eq!(
        header(&session.refresh)["alg"],
        "HS256",
        "refresh tokens: always HS256"
    );
    assert_eq!(access["role"], "USER");
    assert_eq!(access["typ"], "access");
    assert_eq!(refresh["typ"], "refresh");
    assert_eq!(access["sub"], session.user_id.as_str());
    assert_eq!(refresh["sub"], session.user_id.as_str());
    assert_eq!(access["sid"], refresh["sid"], "one session");
    assert_ne!(access["jti"], refresh["jti"], "jti is unique");
    assert_eq!(
        access["exp"].as_i64().unwrap() - access["iat"].as_i64().unwrap(),
        120
    );
    assert_eq!(
        refresh["exp"].as_i64().unwrap() - refresh["iat"].as_i64().unwrap(),
        3600
    );
    let now = chrono::Utc::now().timestamp();
    assert!((access["iat"].as_i64().unwrap() - now).abs() < 30);
}

#[apply(backends)]
async fn signup_refuses_input_that_breaks_a_rule_naming_the_field(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let long_email = format!("{}@example.com", "a".repeat(243));
    let cases = [
        ("ab", "ok@example.com", PASSWORD, "username"),
        (
            &"a".repeat(33) as &str,
            "ok@example.com",
            PASSWORD,
            "username",
        ),
        ("bad name", "ok@example.com", PASSWORD, "username"),
        ("bad@name", "ok@example.com", PASSWORD, "username"),
        ("good", "no-at-sign", PASSWORD, "email"),
        ("good", "a@nodot", PASSWORD, "email"),
        ("good", "a@b@c.com", PASSWORD, "email"),
        ("good", &long_email, PASSWORD, "email"),
        ("good", "ok@example.com", "short", "password"),
        ("good", "ok@example.com", &"p".repeat(129), "password"),
        ("good", "ok@example.com", "😀😀😀😀😀😀😀", "password"),
    ];
    for (username, email, password, field) in cases {
        let body = server
            .gql(
                None,
                SIGNUP,
                json!({ "input": { "username": username, "email": email, "password": password } }),
            )
            .await;
        assert_eq!(
            code(&body),
            "BAD_USER_INPUT",
            "{username:?} {email:?}: {body}"
        );
        assert_eq!(body["errors"][0]["extensions"]["field"], field, "{body}");
    }
    // Boundaries that pass: 8 emoji are 8 characters, a password of 128 characters.
    for (name, password) in [("emoji_pw", "😀".repeat(8)), ("long_pw", "é".repeat(128))] {
        let body = server
            .gql(None, SIGNUP, json!({ "input": { "username": name, "email": format!("{name}@example.com"), "password": password } }))
            .await;
        assert!(body["data"]["signup"].is_object(), "{body}");
    }
}

#[apply(backends)]
async fn usernames_are_unique_ignoring_case_and_emails_are_unique(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    server.signup("Bob").await;
    let body = server
        .gql(None, SIGNUP, json!({ "input": { "username": "bOB", "email": "other@example.com", "password": PASSWORD } }))
        .await;
    assert_eq!(code(&body), "CONFLICT", "{body}");
    assert_eq!(body["errors"][0]["extensions"]["field"], "username");
    let body = server
        .gql(None, SIGNUP, json!({ "input": { "username": "robert", "email": "BOB@example.com", "password": PASSWORD } }))
        .await;
    assert_eq!(code(&body), "CONFLICT", "{body}");
    assert_eq!(body["errors"][0]["extensions"]["field"], "email");
}

#[apply(backends)]
async fn of_twenty_concurrent_signups_of_one_username_exactly_one_wins(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let attempts = (0..20).map(|i| {
        server.gql(
            None,
            SIGNUP,
            json!({ "input": { "username": "race", "email": format!("race{i}@example.com"), "password": PASSWORD } }),
        )
    });
    let results = futures::future::join_all(attempts).await;
    let wins = results
        .iter()
        .filter(|b| b["data"]["signup"].is_object())
        .count();
    let conflicts = results.iter().filter(|b| code(b) == "CONFLICT").count();
    assert_eq!((wins, conflicts), (1, 19), "{results:#?}");
}

#[apply(backends)]
async fn the_password_is_stored_only_as_an_argon2id_hash(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    server.signup("hashcheck").await;
    let hash = server.stored_password_hash("hashcheck").await;
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains(PASSWORD));
}

#[apply(backends)]
async fn hostile_input_never_gives_a_server_error(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let victim = server.signup("victim").await;
    let hostile = [
        "' OR '1'='1",
        "admin'--",
        "\"; DROP TABLE users; --",
        "a\u{0}b",
        "😀😀😀😀",
        "\u{202e}evil",
        &"x".repeat(10_000),
        "%s%s%n",
        "../../etc/passwd",
    ];
    for text in hostile {
        let big_password = "p".repeat(10_000);
        let operations = [
            (
                SIGNUP,
                json!({ "input": { "username": text, "email": text, "password": text } }),
            ),
            (
                SIGNUP,
                json!({ "input": { "username": "okname", "email": "ok@example.com", "password": big_password } }),
            ),
            (
                LOGIN,
                json!({ "input": { "username": text, "password": text } }),
            ),
            (
                LOGIN,
                json!({ "input": { "username": "victim", "password": big_password } }),
            ),
            (REFRESH, json!({ "t": text })),
            (
                "mutation($t: String!) { logout(refreshToken: $t) }",
                json!({ "t": text }),
            ),
            (
                "query($t: String!) { verifyToken(token: $t) { valid reason } }",
                json!({ "t": text }),
            ),
        ];
        for (query, variables) in operations {
            let (status, body) = server
                .post_json(None, &json!({ "query": query, "variables": variables }))
                .await;
            assert!(status < 500, "{status}: {body}");
            assert_ne!(code(&body), "INTERNAL_SERVER_ERROR", "{body}");
        }
        let body = server
            .gql_with_header(
                &format!("Bearer {}", text.replace('\0', "")),
                "{ me { id } }",
            )
            .await;
        assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    }
    // The tables are intact and the victim can still use their session.
    let body = server.me(&victim.access).await;
    assert_eq!(body["data"]["me"]["username"], "victim", "{body}");
}

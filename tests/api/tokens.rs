use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::helpers::*;

const SECRET: &str = "test-secret-that-is-at-least-32-bytes-long";

fn sign(alg: Algorithm, key: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(key.as_bytes()),
    )
    .unwrap()
}

#[apply(backends)]
async fn me_returns_the_caller(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let session = server.signup("grace").await;
    let body = server.me(&session.access).await;
    assert_eq!(body["data"]["me"]["id"], session.user_id.as_str(), "{body}");
    assert_eq!(body["data"]["me"]["email"], "grace@example.com");
}

#[apply(backends)]
async fn the_authorization_header_is_missing_or_invalid(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let session = server.signup("heidi").await;
    let body = server.gql(None, "{ me { id } }", json!({})).await;
    assert_eq!(
        (code(&body), reason(&body)),
        ("UNAUTHENTICATED", "missing"),
        "{body}"
    );
    for header in [
        "Basic dXNlcjpwYXNz".to_owned(),
        "Bearer".to_owned(),
        session.access.clone(),
        format!("Bearer {} extra", session.access),
        "Bearer garbage".to_owned(),
    ] {
        let body = server.gql_with_header(&header, "{ me { id } }").await;
        assert_eq!(
            (code(&body), reason(&body)),
            ("UNAUTHENTICATED", "invalid"),
            "{header}: {body}"
        );
    }
    for scheme in ["bearer", "BEARER", "BeArEr"] {
        let body = server
            .gql_with_header(&format!("{scheme} {}", session.access), "{ me { id } }")
            .await;
        assert_eq!(
            body["data"]["me"]["id"],
            session.user_id.as_str(),
            "{scheme}: {body}"
        );
    }
}

#[apply(backends)]
async fn access_and_refresh_tokens_are_not_interchangeable(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let session = server.signup("ivan").await;
    let body = server.me(&session.refresh).await;
    assert_eq!(reason(&body), "invalid", "refresh token as bearer: {body}");
    let body = server.refresh(&session.access).await;
    assert_eq!(
        reason(&body),
        "invalid",
        "access token to refreshToken: {body}"
    );
    let body = server.logout(&session.access).await;
    assert_eq!(reason(&body), "invalid", "access token to logout: {body}");
    // Nothing was revoked by those attempts.
    assert!(server.me(&session.access).await["data"]["me"].is_object());
}

#[apply(backends)]
async fn forged_tokens_are_invalid(#[case] backend: Backend) {
    let Some(server) = TestServer::start_with(backend, &[("JWT_SECRET", SECRET)]).await else {
        return;
    };
    let session = server.signup("judy").await;
    let good = claims(&session.access);

    // The test can mint what the server mints: the forgeries below fail for their flaw alone.
    let minted = sign_like(&server, SECRET, &session.access, &good, |_| {});
    assert!(server.me(&minted).await["data"]["me"].is_object());

    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(good.to_string());
    let mut admin_claims = good.clone();
    admin_claims["sub"] = json!(uuid::Uuid::new_v4().to_string());
    let parts: Vec<&str> = session.access.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(admin_claims.to_string()),
        parts[2]
    );
    let forgeries = [
        ("alg none", format!("{none_header}.{payload}.")),
        (
            "alg none with signature",
            format!("{none_header}.{payload}.{}", parts[2]),
        ),
        (
            "another key",
            sign(
                Algorithm::HS256,
                "another-secret-that-is-32-bytes-long!!",
                &good,
            ),
        ),
        ("HS384 with our key", sign(Algorithm::HS384, SECRET, &good)),
        ("HS512 with our key", sign(Algorithm::HS512, SECRET, &good)),
        ("tampered payload", tampered),
        (
            "truncated signature",
            session.access[..session.access.len() - 4].to_owned(),
        ),
        ("garbage", "not.a.jwt".to_owned()),
    ];
    for (what, token) in &forgeries {
        let body = server.me(token).await;
        assert_eq!(
            (code(&body), reason(&body)),
            ("UNAUTHENTICATED", "invalid"),
            "{what}: {body}"
        );
        assert_eq!(server.verify(token).await["reason"], "invalid", "{what}");
    }
    // Claims missing or of the wrong shape, signed with our key, are invalid too.
    let mut no_typ = good.clone();
    no_typ.as_object_mut().unwrap().remove("typ");
    let mut no_exp = good.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    let mut bad_sub = good.clone();
    bad_sub["sub"] = json!(42);
    for (what, c) in [
        ("no typ", no_typ),
        ("no exp", no_exp),
        ("numeric sub", bad_sub),
    ] {
        let body = server
            .me(&sign_like(&server, SECRET, &session.access, &c, |_| {}))
            .await;
        assert_eq!(reason(&body), "invalid", "{what}: {body}");
    }
}

#[apply(backends)]
async fn tokens_expire_exactly_with_no_leeway(#[case] backend: Backend) {
    let Some(server) = TestServer::start_with(
        backend,
        &[("ACCESS_TOKEN_TTL", "2"), ("REFRESH_TOKEN_TTL", "2")],
    )
    .await
    else {
        return;
    };
    let session = server.signup("kate").await;
    assert!(server.me(&session.access).await["data"]["me"].is_object());
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let body = server.me(&session.access).await;
    assert_eq!(
        (code(&body), reason(&body)),
        ("UNAUTHENTICATED", "expired"),
        "{body}"
    );
    let body = server.refresh(&session.refresh).await;
    assert_eq!(reason(&body), "expired", "{body}");
    let info = server.verify(&session.access).await;
    assert_eq!(info["valid"], false);
    assert_eq!(info["reason"], "expired");
    assert_eq!(info["tokenType"], "access");
    assert_eq!(info["userId"], session.user_id.as_str());
    let exp = chrono::DateTime::parse_from_rfc3339(info["expiresAt"].as_str().unwrap()).unwrap();
    assert_eq!(
        exp.timestamp(),
        claims(&session.access)["exp"].as_i64().unwrap()
    );
}

#[apply(backends)]
async fn the_leeway_setting_accepts_a_just_expired_token(#[case] backend: Backend) {
    let Some(server) =
        TestServer::start_with(backend, &[("ACCESS_TOKEN_TTL", "1"), ("JWT_LEEWAY", "2")]).await
    else {
        return;
    };
    let session = server.signup("leeway").await;
    assert!(server.me(&session.access).await["data"]["me"].is_object());
    // Past `exp` (iat + 1), within the leeway (up to iat + 3).
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(server.me(&session.access).await["data"]["me"].is_object());
    // Past the leeway too: the same token, used just before, is expired now.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let body = server.me(&session.access).await;
    assert_eq!(reason(&body), "expired", "{body}");
}

#[apply(backends)]
async fn refresh_rotates_within_the_session(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let first = server.signup("liam").await;
    let body = server.refresh(&first.refresh).await;
    let second = Session::from_payload(&body, "refreshToken");
    assert_eq!(body["data"]["refreshToken"]["tokenType"], "Bearer");
    assert_ne!(second.refresh, first.refresh);
    assert_ne!(second.access, first.access);
    assert_eq!(claims(&second.access)["sid"], claims(&first.access)["sid"]);
    assert_eq!(second.user_id, first.user_id);
    assert!(server.me(&second.access).await["data"]["me"].is_object());
    // The new refresh token rotates in turn.
    let third = Session::from_payload(&server.refresh(&second.refresh).await, "refreshToken");
    assert!(server.me(&third.access).await["data"]["me"].is_object());
    assert_eq!(server.verify(&second.refresh).await["reason"], "revoked");
}

#[apply(backends)]
async fn reusing_a_rotated_refresh_token_ends_the_whole_session(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let victim = server.signup("mallory").await;
    let other = Session::from_payload(&server.login("mallory", PASSWORD).await, "login");
    let rotated = Session::from_payload(&server.refresh(&victim.refresh).await, "refreshToken");

    // The thief replays the old refresh token.
    let body = server.refresh(&victim.refresh).await;
    assert_eq!(
        (code(&body), reason(&body)),
        ("UNAUTHENTICATED", "revoked"),
        "{body}"
    );

    // Every token of that session is now refused, the newest included.
    assert_eq!(reason(&server.me(&rotated.access).await), "revoked");
    assert_eq!(reason(&server.me(&victim.access).await), "revoked");
    assert_eq!(reason(&server.refresh(&rotated.refresh).await), "revoked");
    assert_eq!(server.verify(&rotated.access).await["reason"], "revoked");
    // The user's other session goes on.
    assert!(server.me(&other.access).await["data"]["me"].is_object());
}

#[apply(backends)]
async fn of_ten_concurrent_refreshes_of_one_token_exactly_one_wins(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let session = server.signup("nina").await;
    let results =
        futures::future::join_all((0..10).map(|_| server.refresh(&session.refresh))).await;
    let wins = results
        .iter()
        .filter(|b| b["data"]["refreshToken"].is_object())
        .count();
    let revoked = results.iter().filter(|b| reason(b) == "revoked").count();
    assert_eq!((wins, revoked), (1, 9), "{results:#?}");
}

#[apply(backends)]
async fn logout_ends_the_session_at_once(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let session = server.signup("oscar").await;
    let other = Session::from_payload(&server.login("oscar", PASSWORD).await, "login");
    assert_eq!(
        server.logout(&session.refresh).await["data"]["logout"],
        true
    );
    let body = server.me(&session.access).await;
    assert_eq!(
        (code(&body), reason(&body)),
        ("UNAUTHENTICATED", "revoked"),
        "{body}"
    );
    assert_eq!(reason(&server.refresh(&session.refresh).await), "revoked");
    assert_eq!(server.verify(&session.refresh).await["reason"], "revoked");
    assert!(
        server.me(&other.access).await["data"]["me"].is_object(),
        "other sessions go on"
    );
    // Ending an ended session is fine.
    assert_eq!(
        server.logout(&session.refresh).await["data"]["logout"],
        true
    );
}

#[apply(backends)]
async fn logout_with_a_forged_token_is_invalid_and_revokes_nothing(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let session = server.signup("peggy").await;
    let mut c = claims(&session.refresh);
    c["jti"] = json!(uuid::Uuid::new_v4().to_string());
    let forged = sign(
        Algorithm::HS256,
        "a-key-that-is-not-the-servers-key-000",
        &c,
    );
    for token in [forged.as_str(), "garbage"] {
        let body = server.logout(token).await;
        assert_eq!(
            (code(&body), reason(&body)),
            ("UNAUTHENTICATED", "invalid"),
            "{body}"
        );
    }
    assert!(server.me(&session.access).await["data"]["me"].is_object());
}

#[apply(backends)]
async fn a_logout_in_a_batch_is_seen_by_the_next_operation(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let session = server.signup("quinn").await;
    let batch = json!([
        { "query": "{ me { username } }" },
        { "query": "mutation($t: String!) { logout(refreshToken: $t) }", "variables": { "t": session.refresh } },
        { "query": "{ me { username } }" },
    ]);
    let (status, body) = server.post_json(Some(&session.access), &batch).await;
    assert_eq!(status, 200);
    assert_eq!(body[0]["data"]["me"]["username"], "quinn", "{body}");
    assert_eq!(body[1]["data"]["logout"], true);
    assert_eq!(reason(&body[2]), "revoked", "{body}");
}

#[apply(backends)]
async fn verify_token_describes_good_and_bad_tokens_without_errors(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let session = server.signup("rupert").await;
    for (token, typ) in [(&session.access, "access"), (&session.refresh, "refresh")] {
        let info = server.verify(token).await;
        assert_eq!(info["valid"], true, "{info}");
        assert!(info["reason"].is_null());
        assert_eq!(info["tokenType"], typ);
        assert_eq!(info["userId"], session.user_id.as_str());
        let exp =
            chrono::DateTime::parse_from_rfc3339(info["expiresAt"].as_str().unwrap()).unwrap();
        assert_eq!(exp.timestamp(), claims(token)["exp"].as_i64().unwrap());
    }
    let info = server.verify("").await;
    assert_eq!(
        info,
        json!({ "valid": false, "reason": "invalid", "tokenType": null, "userId": null, "expiresAt": null })
    );
}

#[apply(backends)]
async fn logout_with_an_expired_refresh_token_says_expired(#[case] backend: Backend) {
    let Some(server) = TestServer::start_with(
        backend,
        &[("ACCESS_TOKEN_TTL", "1"), ("REFRESH_TOKEN_TTL", "1")],
    )
    .await
    else {
        return;
    };
    let session = server.signup("late-leaver").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let body = server.logout(&session.refresh).await;
    assert_eq!(
        (code(&body), reason(&body)),
        ("UNAUTHENTICATED", "expired"),
        "{body}"
    );
}

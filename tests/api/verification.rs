//! `EMAIL_VERIFICATION=required`: what an unverified account's tokens open,
//! its login and its refresh, field by field, with a real SMTP server
//! receiving the links (see `mail.rs`).

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;
use crate::mail::{SmtpSink, VERIFY, mail_server, verify_prefix};

const REQUIRED: &[(&str, &str)] = &[("EMAIL_VERIFICATION", "required")];
const ME: &str = "{ me { username emailVerified } }";

/// The fields an access token opens, and what each answered.
async fn fields(server: &TestServer, access: &str) -> Vec<(&'static str, Value)> {
    let cases: [(&'static str, &'static str, Value); 6] = [
        ("me", ME, json!({})),
        (
            "requestEmailVerification",
            "mutation { requestEmailVerification }",
            json!({}),
        ),
        ("sessions", "{ sessions { id } }", json!({})),
        (
            "changePassword",
            "mutation($o: String!, $n: String!) { changePassword(currentPassword: $o, newPassword: $n) }",
            json!({ "o": PASSWORD, "n": "a brand new passphrase" }),
        ),
        (
            "revokeSession",
            "mutation { revokeSession(id: \"00000000-0000-0000-0000-000000000000\") }",
            json!({}),
        ),
        ("users", "{ users { totalCount } }", json!({})),
    ];
    let mut answers = Vec::new();
    for (field, query, variables) in cases {
        answers.push((field, server.gql(Some(access), query, variables).await));
    }
    answers
}

#[apply(backends)]
async fn an_unverified_account_opens_only_four_fields_until_its_address_is_verified(
    #[case] backend: Backend,
) {
    let Some(sink) = SmtpSink::start(None) else {
        return;
    };
    let Some(server) = mail_server(backend, &sink, REQUIRED).await else {
        return;
    };
    // Signup still starts a session: its tokens are how the user asks for a link.
    let session = server.signup("pending").await;
    // Other services see it too: the access token says so (the refresh
    // token, which no other service reads, does not).
    assert_eq!(claims(&session.access)["email_verified"], false);
    assert!(claims(&session.refresh).get("email_verified").is_none());
    let first = sink.wait_for(1, Duration::from_secs(15)).await[0].token(&verify_prefix());

    for (field, body) in fields(&server, &session.access).await {
        match field {
            "me" => assert_eq!(body["data"]["me"]["emailVerified"], false, "{body}"),
            "requestEmailVerification" => {
                assert_eq!(body["data"][field], true, "{body}");
            }
            _ => {
                assert_eq!(code(&body), "EMAIL_NOT_VERIFIED", "{field}: {body}");
                assert!(body["data"].is_null() || body["data"][field].is_null());
            }
        }
    }
    // requestEmailVerification sent a second link, which voids the first.
    let second = sink.wait_for(2, Duration::from_secs(15)).await[1].token(&verify_prefix());
    assert_ne!(first, second);

    // refreshToken: refused, and not rotated (the same token works later).
    let body = server.refresh(&session.refresh).await;
    assert_eq!(code(&body), "EMAIL_NOT_VERIFIED", "{body}");
    let info = server.verify(&session.refresh).await;
    assert_eq!(info["valid"], true, "not revoked: {info}");

    // login: a wrong password is still INVALID_CREDENTIALS, and mails nothing.
    let body = server.login("pending", "not the password").await;
    assert_eq!(code(&body), "INVALID_CREDENTIALS", "{body}");
    // The right one passes the check, then EMAIL_NOT_VERIFIED and a new link.
    let body = server.login("pending", PASSWORD).await;
    assert_eq!(code(&body), "EMAIL_NOT_VERIFIED", "{body}");
    assert!(body["data"].is_null(), "no tokens: {body}");
    let mails = sink.wait_for(3, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(sink.mails().len(), 3, "the wrong password mailed nothing");
    let third = mails[2].token(&verify_prefix());
    assert_eq!(mails[2].to, ["pending@example.com"]);

    for older in [&first, &second] {
        let body = server.gql(None, VERIFY, json!({ "t": older })).await;
        assert_eq!(
            code(&body),
            "BAD_USER_INPUT",
            "a newer link voids it: {body}"
        );
    }
    let body = server.gql(None, VERIFY, json!({ "t": third })).await;
    assert_eq!(body["data"]["verifyEmail"], true, "{body}");

    // Verified: the same access token opens everything, the same refresh
    // token rotates, and login starts a session.
    for (field, body) in fields(&server, &session.access).await {
        match field {
            "me" => assert_eq!(body["data"]["me"]["emailVerified"], true, "{body}"),
            "revokeSession" | "users" => assert_eq!(code(&body), "FORBIDDEN", "{field}: {body}"),
            _ => assert!(body["errors"].is_null(), "{field}: {body}"),
        }
    }
    let body = server.refresh(&session.refresh).await;
    let refreshed = Session::from_payload(&body, "refreshToken");
    assert_eq!(claims(&refreshed.access)["email_verified"], true);
    let body = server.login("pending", "a brand new passphrase").await;
    let login = Session::from_payload(&body, "login");
    assert_eq!(claims(&login.access)["email_verified"], true);
}

#[apply(backends)]
async fn an_unverified_account_can_still_log_out(#[case] backend: Backend) {
    let Some(sink) = SmtpSink::start(None) else {
        return;
    };
    let Some(server) = mail_server(backend, &sink, REQUIRED).await else {
        return;
    };
    let one = server.signup("leaving").await;
    let body = server.logout(&one.refresh).await;
    assert_eq!(body["data"]["logout"], true, "{body}");
    assert_eq!(reason(&server.me(&one.access).await), "revoked");

    let two = server.signup("leaving2").await;
    let body = server
        .gql(Some(&two.access), "mutation { logoutAll }", json!({}))
        .await;
    assert_eq!(body["data"]["logoutAll"], 1, "{body}");
    assert_eq!(reason(&server.me(&two.access).await), "revoked");
    assert_eq!(reason(&server.refresh(&two.refresh).await), "revoked");
}

#[apply(backends)]
async fn logins_of_an_unverified_account_mail_within_the_hourly_limit(#[case] backend: Backend) {
    let Some(sink) = SmtpSink::start(None) else {
        return;
    };
    let Some(server) = mail_server(backend, &sink, REQUIRED).await else {
        return;
    };
    server.signup("eager").await;
    for _ in 0..7 {
        let body = server.login("eager@example.com", PASSWORD).await;
        assert_eq!(code(&body), "EMAIL_NOT_VERIFIED", "{body}");
    }
    sink.wait_for(5, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    assert_eq!(
        sink.mails().len(),
        5,
        "the signup's link and four from logins: five an hour"
    );
}

#[apply(backends)]
async fn optional_mode_lets_an_unverified_account_in(#[case] backend: Backend) {
    let Some(sink) = SmtpSink::start(None) else {
        return;
    };
    let Some(server) = mail_server(backend, &sink, &[]).await else {
        return;
    };
    let session = server.signup("relaxed").await;
    assert!(
        claims(&session.access).get("email_verified").is_none(),
        "the claim is EMAIL_VERIFICATION=required's"
    );
    for (field, body) in fields(&server, &session.access).await {
        match field {
            "revokeSession" | "users" => assert_eq!(code(&body), "FORBIDDEN", "{field}: {body}"),
            _ => assert!(body["errors"].is_null(), "{field}: {body}"),
        }
    }
    Session::from_payload(&server.refresh(&session.refresh).await, "refreshToken");
    Session::from_payload(
        &server.login("relaxed", "a brand new passphrase").await,
        "login",
    );
}

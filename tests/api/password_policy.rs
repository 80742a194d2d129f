//! The password rules (common passwords, identity words) and the
//! per-account throttle (`LOGIN_FAILURES_PER_HOUR`).

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};

use crate::helpers::*;

const CHANGE: &str =
    "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) }";

async fn signup_with(server: &TestServer, username: &str, email: &str, password: &str) -> Value {
    server
        .gql(
            None,
            SIGNUP,
            json!({ "input": { "username": username, "email": email, "password": password } }),
        )
        .await
}

fn refusal(body: &Value) -> (&str, &str, &str) {
    let ext = &body["errors"][0]["extensions"];
    (
        ext["code"].as_str().unwrap_or(""),
        ext["field"].as_str().unwrap_or(""),
        ext["reason"].as_str().unwrap_or(""),
    )
}

#[apply(backends)]
async fn common_passwords_are_refused_as_given_ignoring_case(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    for (i, common) in [
        "password1",
        "PassWord1",
        "iloveyou",
        "QWERTYUIOP",
        "sunshine",
    ]
    .iter()
    .enumerate()
    {
        let body = signup_with(
            &server,
            &format!("common{i}"),
            &format!("common{i}@example.com"),
            common,
        )
        .await;
        assert_eq!(
            refusal(&body),
            ("BAD_USER_INPUT", "password", "common"),
            "{common}: {body}"
        );
        assert!(body["data"].is_null(), "no account: {body}");
    }
    // The password as given: spaces around a common word make another one.
    let body = signup_with(&server, "spaced", "spaced@example.com", "  password1  ").await;
    assert!(body["data"]["signup"]["accessToken"].is_string(), "{body}");

    let session = server.signup("changer").await;
    let body = server
        .gql(
            Some(&session.access),
            CHANGE,
            json!({ "c": PASSWORD, "n": "Football1" }),
        )
        .await;
    assert_eq!(
        refusal(&body),
        ("BAD_USER_INPUT", "newPassword", "common"),
        "{body}"
    );
    // Nothing changed: the old password still logs in.
    assert!(server.login("changer", PASSWORD).await["data"]["login"].is_object());
}

#[apply(backends)]
async fn passwords_containing_the_username_or_the_email_are_refused(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let cases = [
        (
            "Marvin",
            "marvin@example.com",
            "xx-MARVIN-rocks-42",
            "the username",
        ),
        (
            "zorro",
            "DonDiego@example.com",
            "the dondiego of 1919",
            "the email's local part",
        ),
    ];
    for (username, email, password, what) in cases {
        let body = signup_with(&server, username, email, password).await;
        assert_eq!(
            refusal(&body),
            ("BAD_USER_INPUT", "password", "contains_identity"),
            "{what}: {body}"
        );
    }
    // A local part under three characters does not count.
    let body = signup_with(&server, "shorty", "ab@example.com", "lab coats everywhere").await;
    assert!(body["data"]["signup"].is_object(), "{body}");

    let session = server.signup("keanu").await;
    let body = server
        .gql(
            Some(&session.access),
            CHANGE,
            json!({ "c": PASSWORD, "n": "i am KEANU reeves" }),
        )
        .await;
    assert_eq!(
        refusal(&body),
        ("BAD_USER_INPUT", "newPassword", "contains_identity"),
        "{body}"
    );
    let body = server
        .gql(
            Some(&session.access),
            CHANGE,
            json!({ "c": PASSWORD, "n": "a much better one" }),
        )
        .await;
    assert_eq!(body["data"]["changePassword"], true, "{body}");
}

async fn login_code(server: &TestServer, who: &str, password: &str) -> (String, Value) {
    let body = server.login(who, password).await;
    (code(&body).to_owned(), body)
}

#[apply(backends)]
async fn past_the_limit_even_the_right_password_waits_for_that_identifier_alone(
    #[case] backend: Backend,
) {
    let Some(server) = TestServer::start_with(backend, &[("LOGIN_FAILURES_PER_HOUR", "3")]).await
    else {
        return;
    };
    let owner = server.signup("victim").await;
    server.signup("bystander").await;
    for _ in 0..3 {
        assert_eq!(
            login_code(&server, "victim", "wrong password!").await.0,
            "INVALID_CREDENTIALS"
        );
    }
    let (code, body) = login_code(&server, "Victim", PASSWORD).await;
    assert_eq!(
        code, "TOO_MANY_REQUESTS",
        "the right password, as typed in another case: {body}"
    );
    let retry = body["errors"][0]["extensions"]["retryAfter"]
        .as_u64()
        .unwrap();
    assert!((3_500..=3_600).contains(&retry), "{retry}");
    assert!(body["data"].is_null());

    // The owner's existing session goes on; another identifier is not affected.
    assert_eq!(
        server.me(&owner.access).await["data"]["me"]["username"],
        "victim"
    );
    assert!(server.refresh(&owner.refresh).await["data"]["refreshToken"].is_object());
    assert!(server.login("bystander", PASSWORD).await["data"]["login"].is_object());
    // A right password does not count as a failure.
    for _ in 0..5 {
        assert!(server.login("bystander", PASSWORD).await["data"]["login"].is_object());
    }

    // An identifier with no account behaves the same.
    for _ in 0..3 {
        assert_eq!(
            login_code(&server, "nobody-here", "wrong password!")
                .await
                .0,
            "INVALID_CREDENTIALS"
        );
    }
    assert_eq!(
        login_code(&server, "nobody-here", PASSWORD).await.0,
        "TOO_MANY_REQUESTS"
    );
}

#[apply(backends)]
async fn a_throttled_identifier_answers_in_the_same_time_with_or_without_an_account(
    #[case] backend: Backend,
) {
    let Some(server) = TestServer::start_with(backend, &[("LOGIN_FAILURES_PER_HOUR", "2")]).await
    else {
        return;
    };
    server.signup("timed").await;
    // Failures of a known and an unknown identifier, interleaved, then refusals.
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for round in 0..12 {
        for (who, times) in [("timed", &mut known), ("untimed", &mut unknown)] {
            let start = Instant::now();
            let (code, body) = login_code(&server, who, "wrong password!").await;
            let expected = if round < 2 {
                "INVALID_CREDENTIALS"
            } else {
                "TOO_MANY_REQUESTS"
            };
            assert_eq!(code, expected, "{who} round {round}: {body}");
            if round >= 2 {
                times.push(start.elapsed().as_secs_f64());
            }
        }
    }
    let (known, unknown) = (median(&mut known), median(&mut unknown));
    let ratio = known / unknown;
    assert!(
        (0.33..3.0).contains(&ratio),
        "known {known:.5}s, unknown {unknown:.5}s"
    );
}

/// Two servers on one PostgreSQL count one identifier's failures together.
#[tokio::test]
async fn servers_sharing_postgresql_share_the_count() {
    let Some(database) = TestDatabase::fresh().await else {
        return;
    };
    let database = Arc::new(database);
    let env = [("LOGIN_FAILURES_PER_HOUR", "3")];
    let a = TestServer::start_on(Some(database.clone()), &env);
    let b = TestServer::start_on(Some(database), &env);
    a.signup("shared").await;
    assert_eq!(
        login_code(&a, "shared", "wrong password!").await.0,
        "INVALID_CREDENTIALS"
    );
    assert_eq!(
        login_code(&b, "shared", "wrong password!").await.0,
        "INVALID_CREDENTIALS"
    );
    assert_eq!(
        login_code(&a, "shared", "wrong password!").await.0,
        "INVALID_CREDENTIALS"
    );
    assert_eq!(
        login_code(&b, "shared", PASSWORD).await.0,
        "TOO_MANY_REQUESTS"
    );
    assert_eq!(
        login_code(&a, "shared", PASSWORD).await.0,
        "TOO_MANY_REQUESTS"
    );
}

/// Concurrent guesses can't slip past the limit together: each attempt is
/// counted before its password is checked.
#[apply(backends)]
async fn concurrent_guesses_get_no_more_than_the_limit(#[case] backend: Backend) {
    let Some(server) = TestServer::start_with(backend, &[("LOGIN_FAILURES_PER_HOUR", "4")]).await
    else {
        return;
    };
    server.signup("crowded").await;
    let server = Arc::new(server);
    let guesses: Vec<_> = (0..16)
        .map(|i| {
            let server = server.clone();
            tokio::spawn(async move {
                login_code(&server, "crowded", &format!("guess number {i}"))
                    .await
                    .0
            })
        })
        .collect();
    let mut checked = 0;
    for guess in guesses {
        match guess.await.unwrap().as_str() {
            "INVALID_CREDENTIALS" => checked += 1,
            "TOO_MANY_REQUESTS" => {}
            other => panic!("{other}"),
        }
    }
    assert_eq!(
        checked, 4,
        "exactly the limit's worth of passwords were checked"
    );
}

use std::time::Instant;

use crate::helpers::*;

#[apply(backends)]
async fn login_accepts_the_username_in_any_case_or_the_email(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let signup = server.signup("Carol").await;
    for identifier in [
        "Carol",
        "carol",
        "CAROL",
        " carol ",
        "carol@example.com",
        "Carol@Example.com",
    ] {
        let body = server.login(identifier, PASSWORD).await;
        let session = Session::from_payload(&body, "login");
        assert_eq!(session.user_id, signup.user_id, "{identifier}");
        assert_eq!(body["data"]["login"]["user"]["username"], "Carol");
    }
}

#[apply(backends)]
async fn a_wrong_password_and_an_unknown_user_get_the_same_error(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    server.signup("dave").await;
    let wrong = server.login("dave", "wrong password!").await;
    let unknown = server.login("nobody", "wrong password!").await;
    let padded = server.login("dave", &format!(" {PASSWORD}")).await;
    for body in [&wrong, &unknown, &padded] {
        assert_eq!(code(body), "INVALID_CREDENTIALS", "{body}");
        assert!(body["data"].is_null());
    }
    assert_eq!(
        wrong["errors"][0]["message"],
        unknown["errors"][0]["message"]
    );
}

/// Without the dummy verification an unknown user answers in about 1 ms and a
/// known one in one Argon2 verification: a ratio far outside these bounds.
#[apply(backends)]
async fn login_takes_about_as_long_whether_the_user_exists_or_not(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    server.signup("erin").await;
    // Interleaved, so a change of load on the machine hits both alike.
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for _ in 0..9 {
        for (user, times) in [("erin", &mut known), ("nobody-at-all", &mut unknown)] {
            let start = Instant::now();
            let body = server.login(user, "not the password").await;
            times.push(start.elapsed().as_secs_f64());
            assert_eq!(code(&body), "INVALID_CREDENTIALS");
        }
    }
    let (known, unknown) = (median(&mut known), median(&mut unknown));
    let ratio = known / unknown;
    assert!(
        (0.33..3.0).contains(&ratio),
        "known {known:.4}s, unknown {unknown:.4}s"
    );
}

#[apply(backends)]
async fn each_login_is_its_own_session(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let first = server.signup("frank").await;
    let second = Session::from_payload(&server.login("frank", PASSWORD).await, "login");
    assert_ne!(claims(&first.access)["sid"], claims(&second.access)["sid"]);
    // Ending one leaves the other going.
    assert_eq!(server.logout(&first.refresh).await["data"]["logout"], true);
    assert_eq!(reason(&server.me(&first.access).await), "revoked");
    assert_eq!(
        server.me(&second.access).await["data"]["me"]["username"],
        "frank"
    );
}

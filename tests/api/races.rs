//! Requests that arrive together: every limit, counter and single-use token
//! is decided by one conditional write, whatever the interleaving.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;
use crate::mail::{REQUEST_RESET, SmtpSink, mail_server};
use crate::mfa::{enroll, mfa_token, verify_mfa};

#[apply(backends)]
async fn concurrent_wrong_codes_check_at_most_five_on_one_mfa_token(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let enrolled = enroll(&server, "swarm").await;
    let token = mfa_token(&server, "swarm", PASSWORD).await;
    let guesses: Vec<String> = (0..20).map(|n| format!("{:06}", 100_000 + n)).collect();
    let bodies = futures::future::join_all(
        guesses
            .iter()
            .map(|guess| verify_mfa(&server, &token, guess)),
    )
    .await;
    let answers: Vec<&str> = bodies.iter().map(code).collect();
    let checked = bodies
        .iter()
        .filter(|body| code(body) == "INVALID_CREDENTIALS")
        .count();
    let refused = bodies
        .iter()
        .filter(|body| code(body) == "UNAUTHENTICATED" && reason(body) == "revoked")
        .count();
    assert_eq!(checked, 5, "at most five codes checked: {answers:?}");
    assert_eq!(checked + refused, 20, "{answers:?}");
    // Dead for a right code too.
    let body = verify_mfa(&server, &token, &enrolled.recovery[0]).await;
    assert_eq!(reason(&body), "revoked", "{body}");
    // That recovery code was never used: it still signs in.
    let token = mfa_token(&server, "swarm", PASSWORD).await;
    let body = verify_mfa(&server, &token, &enrolled.recovery[0]).await;
    assert!(body["data"]["verifyMfa"].is_object(), "{body}");
}

#[apply(backends)]
async fn a_recovery_code_that_lost_the_race_is_not_spent(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let enrolled = enroll(&server, "loser").await;
    for round in 0..2 {
        // Five recovery codes at once on one mfaToken: one signs in.
        let token = mfa_token(&server, "loser", PASSWORD).await;
        let codes = &enrolled.recovery[round * 5..round * 5 + 5];
        let bodies =
            futures::future::join_all(codes.iter().map(|code| verify_mfa(&server, &token, code)))
                .await;
        let winners: Vec<usize> = (0..5)
            .filter(|n| bodies[*n]["data"]["verifyMfa"].is_object())
            .collect();
        assert_eq!(winners.len(), 1, "{bodies:?}");
        for (n, body) in bodies.iter().enumerate() {
            if n != winners[0] {
                assert_eq!(reason(body), "revoked", "the loser's answer: {body}");
            }
        }
        // Each loser's code still signs in once: no session came of it.
        for (n, code) in codes.iter().enumerate().filter(|(n, _)| *n != winners[0]) {
            let token = mfa_token(&server, "loser", PASSWORD).await;
            let body = verify_mfa(&server, &token, code).await;
            assert!(
                body["data"]["verifyMfa"].is_object(),
                "code {n} of round {round} was spent by a lost race: {body}"
            );
        }
        // And the winner's is spent.
        let token = mfa_token(&server, "loser", PASSWORD).await;
        let body = verify_mfa(&server, &token, &codes[winners[0]]).await;
        assert_eq!(code(&body), "INVALID_CREDENTIALS", "{body}");
    }
}

#[apply(backends)]
async fn concurrent_mail_requests_for_one_address_send_five_an_hour(#[case] backend: Backend) {
    let Some(sink) = SmtpSink::start(None) else {
        return;
    };
    let Some(server) = mail_server(backend, &sink, &[]).await else {
        return;
    };
    server.signup("crowded").await;
    let bodies = futures::future::join_all(
        (0..20).map(|_| server.gql(None, REQUEST_RESET, json!({ "e": "crowded@example.com" }))),
    )
    .await;
    assert!(
        bodies
            .iter()
            .all(|body| body["data"]["requestPasswordReset"] == true),
        "{bodies:?}"
    );
    sink.wait_for(5, Duration::from_secs(20)).await;
    // The worker polls every 2 s: give a sixth mail time to show up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        sink.mails().len(),
        5,
        "the verification and four resets, however many ask at once"
    );
}

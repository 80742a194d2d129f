//! Multi-factor authentication, black-box: codes are computed by another
//! TOTP implementation (the `totp-lite` crate) from the secret the server
//! showed, as an authenticator app would; the QR code is decoded back with
//! `rqrr`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::helpers::*;

const START: &str =
    "mutation($p: String!) { startTotpEnrollment(password: $p) { secret otpauthUri qrCodeSvg } }";
const CONFIRM: &str = "mutation($c: String!) { confirmTotpEnrollment(code: $c) }";
const VERIFY_MFA: &str = "mutation($t: String!, $c: String!) { verifyMfa(mfaToken: $t, code: $c) { accessToken refreshToken tokenType expiresIn user { id username email role createdAt } } }";
const REGENERATE: &str =
    "mutation($p: String!, $c: String!) { regenerateRecoveryCodes(password: $p, code: $c) }";
const DISABLE: &str = "mutation($p: String!, $c: String!) { disableTotp(password: $p, code: $c) }";
const MFA_ENABLED: &str = "{ me { mfaEnabled } }";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The code an authenticator app shows at `time` for a base32 secret.
pub fn code_at(secret: &str, time: u64) -> String {
    let bytes = data_encoding::BASE32_NOPAD
        .decode(secret.trim_end_matches('=').as_bytes())
        .expect("a base32 secret");
    totp_lite::totp_custom::<totp_lite::Sha1>(30, 6, &bytes, time)
}

/// Waits until at least `seconds` of the current 30 s step are left, so
/// what follows runs within one step.
async fn steady(seconds: u64) {
    let left = 30 - now() % 30;
    if left < seconds {
        tokio::time::sleep(Duration::from_secs(left) + Duration::from_millis(200)).await;
    }
}

/// A user with MFA on: their first session, secret and recovery codes.
pub struct Enrolled {
    pub session: Session,
    pub secret: String,
    pub recovery: Vec<String>,
}

/// Signs `username` up and turns MFA on with the current step's code.
pub async fn enroll(server: &TestServer, username: &str) -> Enrolled {
    let session = server.signup(username).await;
    let body = server
        .gql(Some(&session.access), START, json!({ "p": PASSWORD }))
        .await;
    let secret = body["data"]["startTotpEnrollment"]["secret"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();
    steady(5).await;
    let body = server
        .gql(
            Some(&session.access),
            CONFIRM,
            json!({ "c": code_at(&secret, now()) }),
        )
        .await;
    let recovery = body["data"]["confirmTotpEnrollment"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|code| code.as_str().unwrap().to_owned())
        .collect();
    Enrolled {
        session,
        secret,
        recovery,
    }
}

/// Logs in with the password: the `mfaToken` of the `MFA_REQUIRED` answer.
pub async fn mfa_token(server: &TestServer, username: &str, password: &str) -> String {
    let body = server.login(username, password).await;
    assert_eq!(code(&body), "MFA_REQUIRED", "{body}");
    assert!(
        body["data"].is_null(),
        "no tokens before the second factor: {body}"
    );
    body["errors"][0]["extensions"]["mfaToken"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned()
}

pub async fn verify_mfa(server: &TestServer, token: &str, code: &str) -> Value {
    server
        .gql(None, VERIFY_MFA, json!({ "t": token, "c": code }))
        .await
}

/// The QR code in `svg` (as `qrcode` draws it: one path of rectangles),
/// decoded.
fn decode_qr(svg: &str) -> String {
    let attribute = |name: &str| -> usize {
        let start = svg.find(&format!("{name}=\"")).expect(name) + name.len() + 2;
        svg[start..].split('"').next().unwrap().parse().unwrap()
    };
    let (width, height) = (attribute("width"), attribute("height"));
    let mut dark = vec![false; width * height];
    let path_start = svg.find("d=\"").expect("a path") + 3;
    let path = svg[path_start..].split('"').next().unwrap();
    // M{left} {top}h{width}v{height}H{left}V{top}, repeated.
    for rect in path.split('M').filter(|r| !r.is_empty()) {
        let numbers: Vec<usize> = rect
            .split(|c: char| !c.is_ascii_digit())
            .filter(|n| !n.is_empty())
            .map(|n| n.parse().unwrap())
            .collect();
        let (left, top, w, h) = (numbers[0], numbers[1], numbers[2], numbers[3]);
        for y in top..top + h {
            for x in left..left + w {
                dark[y * width + x] = true;
            }
        }
    }
    let mut image =
        rqrr::PreparedImage::prepare_from_bitmap(width, height, |x, y| dark[y * width + x]);
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code");
    grids[0].decode().expect("a readable QR code").1
}

#[apply(backends)]
async fn enrollment_then_logins_with_totp_and_recovery_codes(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let session = server.signup("secure").await;
    let other = Session::from_payload(&server.login("secure", PASSWORD).await, "login");
    let body = server
        .gql(Some(&session.access), MFA_ENABLED, json!({}))
        .await;
    assert_eq!(body["data"]["me"]["mfaEnabled"], false, "{body}");

    let body = server
        .gql(
            Some(&session.access),
            START,
            json!({ "p": "not the password" }),
        )
        .await;
    assert_eq!(code(&body), "INVALID_CREDENTIALS", "{body}");
    let body = server
        .gql(Some(&session.access), START, json!({ "p": PASSWORD }))
        .await;
    let enrollment = &body["data"]["startTotpEnrollment"];
    let secret = enrollment["secret"].as_str().expect("a secret").to_owned();
    assert_eq!(secret.len(), 32, "160 bits: {secret}");
    let uri = enrollment["otpauthUri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/authgraph:secure?"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")) && uri.contains("issuer=authgraph"));
    assert_eq!(decode_qr(enrollment["qrCodeSvg"].as_str().unwrap()), uri);

    // Not on before a first correct code.
    let body = server
        .gql(Some(&session.access), CONFIRM, json!({ "c": "000000" }))
        .await;
    assert_eq!(code(&body), "INVALID_CREDENTIALS", "{body}");
    Session::from_payload(&server.login("secure", PASSWORD).await, "login");

    // One step early is accepted.
    steady(8).await;
    let body = server
        .gql(
            Some(&session.access),
            CONFIRM,
            json!({ "c": code_at(&secret, now() - 30) }),
        )
        .await;
    let recovery: Vec<String> = body["data"]["confirmTotpEnrollment"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(recovery.len(), 10);
    assert!(recovery.iter().all(|c| c.len() == 19), "{recovery:?}");
    let body = server
        .gql(Some(&session.access), MFA_ENABLED, json!({}))
        .await;
    assert_eq!(body["data"]["me"]["mfaEnabled"], true, "{body}");
    assert_eq!(
        reason(&server.me(&other.access).await),
        "revoked",
        "other sessions end"
    );
    assert!(
        server.me(&session.access).await["data"]["me"].is_object(),
        "this one goes on"
    );
    let body = server
        .gql(Some(&session.access), START, json!({ "p": PASSWORD }))
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "MFA is on: {body}");

    // Login: MFA_REQUIRED, then the current step's code finishes it.
    let token = mfa_token(&server, "secure", PASSWORD).await;
    assert_eq!(token.split('.').count(), 1, "opaque, not a JWT: {token}");
    let body = verify_mfa(&server, &token, "123456").await;
    assert_eq!(code(&body), "INVALID_CREDENTIALS", "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("code") && !message.contains("password"),
        "{message}"
    );
    let current = code_at(&secret, now());
    let body = verify_mfa(&server, &token, &current).await;
    let signed_in = Session::from_payload(&body, "verifyMfa");
    assert_eq!(
        server.me(&signed_in.access).await["data"]["me"]["username"],
        "secure"
    );
    let body = verify_mfa(&server, &token, &code_at(&secret, now() + 30)).await;
    assert_eq!(reason(&body), "revoked", "single use: {body}");

    // The same code again is a replay; one step late is accepted; two
    // steps either way are not.
    let token = mfa_token(&server, "secure", PASSWORD).await;
    let body = verify_mfa(&server, &token, &current).await;
    assert_eq!(code(&body), "INVALID_CREDENTIALS", "replayed: {body}");
    for far in [now() + 60, now() - 60] {
        let body = verify_mfa(&server, &token, &code_at(&secret, far)).await;
        assert_eq!(code(&body), "INVALID_CREDENTIALS", "two steps off: {body}");
    }
    let body = verify_mfa(&server, &token, &code_at(&secret, now() + 30)).await;
    Session::from_payload(&body, "verifyMfa");

    // Recovery codes: each once, in any case and spacing.
    let token = mfa_token(&server, "secure", PASSWORD).await;
    let typed = recovery[0].to_uppercase().replace('-', " ");
    Session::from_payload(&verify_mfa(&server, &token, &typed).await, "verifyMfa");
    let token = mfa_token(&server, "secure", PASSWORD).await;
    let body = verify_mfa(&server, &token, &recovery[0]).await;
    assert_eq!(code(&body), "INVALID_CREDENTIALS", "used: {body}");

    // Regenerated: the old codes are gone, the new ones work.
    let body = server
        .gql(
            Some(&session.access),
            REGENERATE,
            json!({ "p": PASSWORD, "c": recovery[1] }),
        )
        .await;
    let fresh: Vec<String> = body["data"]["regenerateRecoveryCodes"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fresh.len(), 10);
    let body = verify_mfa(&server, &token, &recovery[2]).await;
    assert_eq!(code(&body), "INVALID_CREDENTIALS", "replaced: {body}");
    Session::from_payload(&verify_mfa(&server, &token, &fresh[0]).await, "verifyMfa");

    // Off, with the password and a code: logins need the password alone.
    let body = server
        .gql(
            Some(&session.access),
            DISABLE,
            json!({ "p": PASSWORD, "c": "000000" }),
        )
        .await;
    assert_eq!(code(&body), "INVALID_CREDENTIALS", "{body}");
    let body = server
        .gql(
            Some(&session.access),
            DISABLE,
            json!({ "p": PASSWORD, "c": fresh[1] }),
        )
        .await;
    assert_eq!(body["data"]["disableTotp"], true, "{body}");
    assert_eq!(
        reason(&server.me(&signed_in.access).await),
        "revoked",
        "other sessions end"
    );
    let body = server
        .gql(Some(&session.access), MFA_ENABLED, json!({}))
        .await;
    assert_eq!(body["data"]["me"]["mfaEnabled"], false, "{body}");
    Session::from_payload(&server.login("secure", PASSWORD).await, "login");
}

#[apply(backends)]
async fn of_concurrent_uses_of_one_code_exactly_one_wins(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let enrolled = enroll(&server, "racer").await;
    let tokens =
        futures::future::join_all((0..6).map(|_| mfa_token(&server, "racer", PASSWORD))).await;
    steady(5).await;
    let next = code_at(&enrolled.secret, now() + 30);
    let bodies =
        futures::future::join_all(tokens.iter().map(|token| verify_mfa(&server, token, &next)))
            .await;
    let won = bodies
        .iter()
        .filter(|body| body["data"]["verifyMfa"].is_object())
        .count();
    assert_eq!(won, 1, "{bodies:?}");
    assert!(
        bodies
            .iter()
            .filter(|body| body["data"]["verifyMfa"].is_null())
            .all(|body| code(body) == "INVALID_CREDENTIALS"),
        "{bodies:?}"
    );
    // A recovery code, concurrently: once.
    let tokens =
        futures::future::join_all((0..6).map(|_| mfa_token(&server, "racer", PASSWORD))).await;
    let bodies = futures::future::join_all(
        tokens
            .iter()
            .map(|token| verify_mfa(&server, token, &enrolled.recovery[0])),
    )
    .await;
    let won = bodies
        .iter()
        .filter(|body| body["data"]["verifyMfa"].is_object())
        .count();
    assert_eq!(won, 1, "{bodies:?}");
}

#[apply(backends)]
async fn five_wrong_codes_end_the_mfa_token_and_wrong_codes_count_as_failed_logins(
    #[case] backend: Backend,
) {
    let Some(server) = TestServer::start_with(backend, &[("LOGIN_FAILURES_PER_HOUR", "8")]).await
    else {
        return;
    };
    let enrolled = enroll(&server, "guesser").await;
    let token = mfa_token(&server, "guesser", PASSWORD).await;
    for guess in 0..5 {
        let body = verify_mfa(&server, &token, &format!("{guess:06}")).await;
        assert_eq!(code(&body), "INVALID_CREDENTIALS", "{body}");
    }
    let body = verify_mfa(&server, &token, &enrolled.recovery[0]).await;
    assert_eq!(reason(&body), "revoked", "five tries: {body}");
    // Five wrong codes counted; three more failures reach the limit of 8.
    let token = mfa_token(&server, "guesser", PASSWORD).await;
    for guess in 0..3 {
        let body = verify_mfa(&server, &token, &format!("{guess:06}")).await;
        assert_eq!(code(&body), "INVALID_CREDENTIALS", "{body}");
    }
    let body = server.login("guesser", PASSWORD).await;
    assert_eq!(code(&body), "TOO_MANY_REQUESTS", "{body}");
    let body = verify_mfa(&server, &token, &enrolled.recovery[1]).await;
    assert_eq!(code(&body), "TOO_MANY_REQUESTS", "{body}");
}

#[apply(backends)]
async fn an_mfa_token_expires(#[case] backend: Backend) {
    let Some(server) = TestServer::start_with(backend, &[("MFA_TOKEN_TTL", "1")]).await else {
        return;
    };
    let enrolled = enroll(&server, "slow").await;
    let token = mfa_token(&server, "slow", PASSWORD).await;
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let body = verify_mfa(&server, &token, &enrolled.recovery[0]).await;
    assert_eq!(reason(&body), "expired", "{body}");
    let body = verify_mfa(&server, "made-up", &enrolled.recovery[0]).await;
    assert_eq!(reason(&body), "invalid", "{body}");
}

#[apply(backends)]
async fn a_password_change_voids_pending_mfa_tokens_and_keys_need_the_code(
    #[case] backend: Backend,
) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let enrolled = enroll(&server, "changer").await;
    let pending = mfa_token(&server, "changer", PASSWORD).await;
    let body = server
        .gql(
            Some(&enrolled.session.access),
            "mutation($o: String!, $n: String!) { changePassword(currentPassword: $o, newPassword: $n) }",
            json!({ "o": PASSWORD, "n": "a brand new passphrase" }),
        )
        .await;
    assert_eq!(body["data"]["changePassword"], true, "{body}");
    let body = verify_mfa(&server, &pending, &enrolled.recovery[0]).await;
    assert_eq!(reason(&body), "revoked", "{body}");

    // createApiKey needs the second factor too, and an API key opens none
    // of the MFA fields.
    let create = "mutation($p: String!, $c: String) { createApiKey(name: \"ci\", password: $p, code: $c) { key } }";
    let access = enrolled.session.access.as_str();
    let body = server
        .gql(
            Some(access),
            create,
            json!({ "p": "a brand new passphrase" }),
        )
        .await;
    assert_eq!(code(&body), "INVALID_CREDENTIALS", "no code: {body}");
    let body = server
        .gql(
            Some(access),
            create,
            json!({ "p": "a brand new passphrase", "c": enrolled.recovery[0] }),
        )
        .await;
    let key = body["data"]["createApiKey"]["key"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();
    for (query, variables) in [
        (START, json!({ "p": "a brand new passphrase" })),
        (CONFIRM, json!({ "c": "123456" })),
        (
            REGENERATE,
            json!({ "p": "a brand new passphrase", "c": enrolled.recovery[1] }),
        ),
        (
            DISABLE,
            json!({ "p": "a brand new passphrase", "c": enrolled.recovery[1] }),
        ),
    ] {
        let body = server
            .gql_as(&format!("Token {key}"), query, variables)
            .await;
        assert_eq!(code(&body), "FORBIDDEN", "{query}: {body}");
    }
    // The recovery code the key's fields were given was not used up.
    let token = mfa_token(&server, "changer", "a brand new passphrase").await;
    Session::from_payload(
        &verify_mfa(&server, &token, &enrolled.recovery[1]).await,
        "verifyMfa",
    );
}

#[apply(backends)]
async fn a_restart_keeps_mfa(#[case] backend: Backend) {
    let Some(server) = TestServer::start_process(backend).await else {
        return;
    };
    let enrolled = enroll(&server, "durable").await;
    let server = server.restart().await;
    let token = mfa_token(&server, "durable", PASSWORD).await;
    let body = verify_mfa(&server, &token, &code_at(&enrolled.secret, now() + 30)).await;
    Session::from_payload(&body, "verifyMfa");
    let token = mfa_token(&server, "durable", PASSWORD).await;
    Session::from_payload(
        &verify_mfa(&server, &token, &enrolled.recovery[0]).await,
        "verifyMfa",
    );
}

/// Every encoding of `secret` a dump could hold it in.
fn encodings(secret_base32: &str) -> Vec<Vec<u8>> {
    let raw = data_encoding::BASE32_NOPAD
        .decode(secret_base32.as_bytes())
        .unwrap();
    let mut all = vec![
        raw.clone(),
        secret_base32.as_bytes().to_vec(),
        secret_base32.to_lowercase().into_bytes(),
        data_encoding::BASE32.encode(&raw).into_bytes(),
        data_encoding::HEXLOWER.encode(&raw).into_bytes(),
        data_encoding::HEXUPPER.encode(&raw).into_bytes(),
        data_encoding::BASE64.encode(&raw).into_bytes(),
        data_encoding::BASE64_NOPAD.encode(&raw).into_bytes(),
        data_encoding::BASE64URL.encode(&raw).into_bytes(),
        data_encoding::BASE64URL_NOPAD.encode(&raw).into_bytes(),
    ];
    // Base64 of a value need not start at its first byte's boundary in a
    // longer one: the inner 24 characters of each form stand for it too.
    let inner: Vec<Vec<u8>> = all[6..]
        .iter()
        .map(|form| form[2..form.len().min(26)].to_vec())
        .collect();
    all.extend(inner);
    all
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

#[apply(backends)]
async fn a_dump_of_the_database_holds_no_totp_secret(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let enrolled = enroll(&server, "dumped").await;
    let token = mfa_token(&server, "dumped", PASSWORD).await;
    Session::from_payload(
        &verify_mfa(&server, &token, &enrolled.recovery[0]).await,
        "verifyMfa",
    );
    let dump: Vec<u8> = match backend {
        Backend::Postgres => {
            let out = std::process::Command::new("pg_dump")
                .args(["--data-only", "--inserts", &server.database_url()])
                .output()
                .expect("pg_dump");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            out.stdout
        }
        Backend::Sqlite => {
            // The file and its WAL: every byte SQLite holds.
            let path = server.database_path();
            let mut bytes = std::fs::read(&path).unwrap();
            let wal = path.with_extension("db-wal");
            if let Ok(more) = std::fs::read(wal) {
                bytes.extend(more);
            }
            bytes
        }
    };
    let text = String::from_utf8_lossy(&dump);
    assert!(text.contains("dumped"), "the dump holds the account");
    assert!(
        text.contains("totp_credentials") || backend == Backend::Sqlite,
        "the dump holds the TOTP table"
    );
    for form in encodings(&enrolled.secret) {
        assert!(
            !contains(&dump, &form),
            "the dump holds the secret as {}",
            String::from_utf8_lossy(&form)
        );
    }
    for code in &enrolled.recovery {
        assert!(!text.contains(code.as_str()) && !text.contains(&code.replace('-', "")));
    }
}

#[apply(backends)]
async fn a_password_reset_keeps_mfa_on_and_voids_pending_mfa_tokens(#[case] backend: Backend) {
    use crate::mail::{SmtpSink, mail_server, reset_by_mail};
    let Some(sink) = SmtpSink::start(None) else {
        return;
    };
    let Some(server) = mail_server(backend, &sink, &[]).await else {
        return;
    };
    let enrolled = enroll(&server, "resetter").await;
    let pending = mfa_token(&server, "resetter", PASSWORD).await;
    reset_by_mail(&server, &sink, "resetter", "a brand new passphrase").await;
    let body = verify_mfa(&server, &pending, &enrolled.recovery[0]).await;
    assert_eq!(reason(&body), "revoked", "{body}");
    // MFA stays on: the new password alone does not sign in.
    let token = mfa_token(&server, "resetter", "a brand new passphrase").await;
    Session::from_payload(
        &verify_mfa(&server, &token, &enrolled.recovery[0]).await,
        "verifyMfa",
    );
}

#[apply(backends)]
async fn verify_mfa_counts_against_the_ip_limit(#[case] backend: Backend) {
    let Some(server) =
        TestServer::start_with(backend, &[("AUTH_RATE_LIMIT_PER_MINUTE", "6")]).await
    else {
        return;
    };
    // signup, startTotpEnrollment, confirmTotpEnrollment and login: four.
    let enrolled = enroll(&server, "limited").await;
    let token = mfa_token(&server, "limited", PASSWORD).await;
    let body = verify_mfa(&server, &token, "000000").await;
    assert_eq!(code(&body), "INVALID_CREDENTIALS", "the fifth: {body}");
    let body = verify_mfa(&server, &token, "000001").await;
    assert_eq!(code(&body), "INVALID_CREDENTIALS", "the sixth: {body}");
    let body = verify_mfa(&server, &token, &enrolled.recovery[0]).await;
    assert_eq!(code(&body), "TOO_MANY_REQUESTS", "the seventh: {body}");
}

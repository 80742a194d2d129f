//! Account recovery by mail, with a real SMTP server process (aiosmtpd,
//! `tests/support/smtp_sink.py`) receiving what authgraph sends. The Python
//! that has aiosmtpd is `AUTHGRAPH_TEST_SMTP_PYTHON`; without it these tests
//! say so and pass, unless `AUTHGRAPH_TEST_REQUIRE_SMTP` is set (`.ci/run`).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::*;

/// A received mail, as the SMTP server parsed it.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: Vec<String>,
    pub headers: Value,
    pub text: String,
    pub html: String,
}

impl Mail {
    /// The link in the plain-text body that starts with `prefix`.
    pub fn link(&self, prefix: &str) -> String {
        self.text
            .split_whitespace()
            .find(|word| word.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} link in: {}", self.text))
            .to_owned()
    }

    /// The token of the link that starts with `prefix`.
    pub fn token(&self, prefix: &str) -> String {
        let link = self.link(prefix);
        link.split_once("#token=")
            .expect("a token in the fragment")
            .1
            .to_owned()
    }
}

pub struct SmtpSink {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> Option<String> {
    match std::env::var("AUTHGRAPH_TEST_SMTP_PYTHON") {
        Ok(python) => Some(python),
        Err(_) if std::env::var_os("AUTHGRAPH_TEST_REQUIRE_SMTP").is_some() => {
            panic!("AUTHGRAPH_TEST_REQUIRE_SMTP is set but AUTHGRAPH_TEST_SMTP_PYTHON is not")
        }
        Err(_) => {
            eprintln!("skipped: set AUTHGRAPH_TEST_SMTP_PYTHON to a Python with aiosmtpd");
            None
        }
    }
}

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

impl SmtpSink {
    /// An SMTP server on `port` (a free one for `None`); `None` when there
    /// is no aiosmtpd here.
    pub fn start(port: Option<u16>) -> Option<Self> {
        Self::spawn(port, &[])
    }

    /// An SMTP server on `port` that takes each mail's data and never
    /// answers: a send that hangs until the sender dies.
    pub fn start_stalling(port: u16) -> Option<Self> {
        Self::spawn(Some(port), &["--stall"])
    }

    /// An SMTP server that answers each mail's data `seconds` late.
    pub fn start_slow(seconds: f64) -> Option<Self> {
        Self::spawn(None, &["--delay", &seconds.to_string()])
    }

    fn spawn(port: Option<u16>, args: &[&str]) -> Option<Self> {
        let python = python()?;
        let port = port.unwrap_or_else(free_port);
        let dir = tempfile::tempdir().expect("temp dir");
        let script: PathBuf = [
            env!("CARGO_MANIFEST_DIR"),
            "tests",
            "support",
            "smtp_sink.py",
        ]
        .iter()
        .collect();
        let mut child = Command::new(python)
            .arg(script)
            .arg(port.to_string())
            .arg(dir.path())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the SMTP server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the SMTP server's first line");
        assert!(
            line.contains("smtp listening"),
            "the SMTP server said: {line}"
        );
        Some(Self { child, port, dir })
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every mail received so far, oldest first.
    pub fn mails(&self) -> Vec<Mail> {
        let mut files: Vec<_> = std::fs::read_dir(self.dir.path())
            .expect("the mail directory")
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|path| {
                let record: Value =
                    serde_json::from_str(&std::fs::read_to_string(path).expect("a mail"))
                        .expect("JSON");
                Mail {
                    to: record["rcpt_tos"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|to| to.as_str().unwrap().to_owned())
                        .collect(),
                    headers: record["headers"].clone(),
                    text: record["text"].as_str().unwrap_or("").to_owned(),
                    html: record["html"].as_str().unwrap_or("").to_owned(),
                }
            })
            .collect()
    }

    /// How many mails a stalling server holds unanswered.
    pub fn stalled(&self) -> usize {
        std::fs::read_dir(self.dir.path())
            .expect("the mail directory")
            .filter_map(Result::ok)
            .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "stalled"))
            .count()
    }

    /// Waits (at most `limit`) until `count` mails arrived; returns them all.
    pub async fn wait_for(&self, count: usize, limit: Duration) -> Vec<Mail> {
        let start = Instant::now();
        loop {
            let mails = self.mails();
            if mails.len() >= count || start.elapsed() > limit {
                assert!(
                    mails.len() >= count,
                    "{} of {count} mails after {limit:?}",
                    mails.len()
                );
                return mails;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub const PUBLIC: &str = "http://localhost:8000";
pub const REQUEST_RESET: &str = "mutation($e: String!) { requestPasswordReset(email: $e) }";
pub const RESET: &str =
    "mutation($t: String!, $p: String!) { resetPassword(token: $t, newPassword: $p) }";
pub const VERIFY: &str = "mutation($t: String!) { verifyEmail(token: $t) }";
const ME_VERIFIED: &str = "{ me { username emailVerified } }";

pub async fn mail_server(
    backend: Backend,
    sink: &SmtpSink,
    extra: &[(&str, &str)],
) -> Option<TestServer> {
    let url = sink.url();
    let mut env = vec![("SMTP_URL", url.as_str()), ("PUBLIC_URL", PUBLIC)];
    env.extend_from_slice(extra);
    TestServer::start_with(backend, &env).await
}

pub fn reset_prefix() -> String {
    format!("{PUBLIC}/reset-password#token=")
}

pub fn verify_prefix() -> String {
    format!("{PUBLIC}/verify-email#token=")
}

/// Resets `username`'s password to `new_password` as its owner would:
/// asks for a link, reads it out of the mail (the signup's verification
/// mail came first), and follows it.
pub async fn reset_by_mail(
    server: &TestServer,
    sink: &SmtpSink,
    username: &str,
    new_password: &str,
) {
    let body = server
        .gql(
            None,
            REQUEST_RESET,
            json!({ "e": format!("{username}@example.com") }),
        )
        .await;
    assert_eq!(body["data"]["requestPasswordReset"], true, "{body}");
    let mails = sink.wait_for(2, Duration::from_secs(15)).await;
    let reset = mails
        .iter()
        .find(|m| m.headers["Subject"] == "Reset your password")
        .expect("the reset mail");
    let body = server
        .gql(
            None,
            RESET,
            json!({ "t": reset.token(&reset_prefix()), "p": new_password }),
        )
        .await;
    assert_eq!(body["data"]["resetPassword"], true, "{body}");
}

#[apply(backends)]
async fn signup_mails_a_verification_link_that_verifies_the_address_once(#[case] backend: Backend) {
    let Some(sink) = SmtpSink::start(None) else {
        return;
    };
    let Some(server) = mail_server(backend, &sink, &[]).await else {
        return;
    };
    let session = server.signup("verifier").await;
    let before = server
        .gql(Some(&session.access), ME_VERIFIED, json!({}))
        .await;
    assert_eq!(before["data"]["me"]["emailVerified"], false, "{before}");

    let mails = sink.wait_for(1, Duration::from_secs(15)).await;
    let mail = &mails[0];
    assert_eq!(mail.to, ["verifier@example.com"]);
    assert_eq!(mail.headers["Subject"], "Confirm your address");
    // Under PUBLIC_URL's host, never the machine's name.
    let id = mail.headers["Message-ID"].as_str().expect("a Message-ID");
    let local = id
        .strip_prefix('<')
        .and_then(|id| id.strip_suffix("@localhost>"))
        .unwrap_or_else(|| panic!("{id}"));
    assert!(
        local.len() == 32 && local.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    assert!(
        mail.headers["From"]
            .as_str()
            .unwrap()
            .contains("no-reply@localhost"),
        "{:?}",
        mail.headers
    );
    let token = mail.token(&verify_prefix());
    assert!(token.len() >= 43, "256 bits: {token}");
    assert!(
        mail.html.contains(&format!("{}{token}", verify_prefix())),
        "the HTML part links too"
    );

    let body = server.gql(None, VERIFY, json!({ "t": token })).await;
    assert_eq!(body["data"]["verifyEmail"], true, "{body}");
    let after = server
        .gql(Some(&session.access), ME_VERIFIED, json!({}))
        .await;
    assert_eq!(after["data"]["me"]["emailVerified"], true);
    let again = server.gql(None, VERIFY, json!({ "t": token })).await;
    assert_eq!(code(&again), "BAD_USER_INPUT", "single use: {again}");
    assert_eq!(again["errors"][0]["extensions"]["field"], "token");

    // Verified already: asking again sends nothing.
    let body = server
        .gql(
            Some(&session.access),
            "mutation { requestEmailVerification }",
            json!({}),
        )
        .await;
    assert_eq!(body["data"]["requestEmailVerification"], true, "{body}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sink.mails().len(), 1);
}

#[apply(backends)]
async fn a_reset_link_sets_a_new_password_once_and_ends_every_session(#[case] backend: Backend) {
    let Some(sink) = SmtpSink::start(None) else {
        return;
    };
    let Some(server) = mail_server(backend, &sink, &[]).await else {
        return;
    };
    let first = server.signup("forgetful").await;
    let second = Session::from_payload(&server.login("forgetful", PASSWORD).await, "login");
    sink.wait_for(1, Duration::from_secs(15)).await;

    let body = server
        .gql(None, REQUEST_RESET, json!({ "e": "Forgetful@Example.com" }))
        .await;
    assert_eq!(body["data"]["requestPasswordReset"], true, "{body}");
    let mails = sink.wait_for(2, Duration::from_secs(15)).await;
    let mail = &mails[1];
    assert_eq!(mail.headers["Subject"], "Reset your password");
    assert_eq!(mail.to, ["forgetful@example.com"]);
    let link = mail.link(&reset_prefix());
    assert!(
        link.starts_with("http://localhost:8000/reset-password#token="),
        "from PUBLIC_URL alone: {link}"
    );
    let token = mail.token(&reset_prefix());

    // A common new password is refused, and the token still works after.
    let weak = server
        .gql(None, RESET, json!({ "t": token, "p": "password123" }))
        .await;
    assert_eq!(
        weak["errors"][0]["extensions"]["reason"], "common",
        "{weak}"
    );
    let body = server
        .gql(
            None,
            RESET,
            json!({ "t": token, "p": "a brand new secret" }),
        )
        .await;
    assert_eq!(body["data"]["resetPassword"], true, "{body}");

    for session in [&first, &second] {
        assert_eq!(reason(&server.me(&session.access).await), "revoked");
        assert_eq!(reason(&server.refresh(&session.refresh).await), "revoked");
    }
    assert_eq!(
        code(&server.login("forgetful", PASSWORD).await),
        "INVALID_CREDENTIALS"
    );
    let fresh = Session::from_payload(
        &server.login("forgetful", "a brand new secret").await,
        "login",
    );
    let me = server
        .gql(Some(&fresh.access), ME_VERIFIED, json!({}))
        .await;
    assert_eq!(
        me["data"]["me"]["emailVerified"], true,
        "the reset proved the address"
    );

    let reused = server
        .gql(
            None,
            RESET,
            json!({ "t": token, "p": "yet another secret" }),
        )
        .await;
    assert_eq!(
        (
            code(&reused),
            reused["errors"][0]["extensions"]["field"].as_str()
        ),
        ("BAD_USER_INPUT", Some("token"))
    );
    let garbage = server
        .gql(
            None,
            RESET,
            json!({ "t": "garbage", "p": "yet another secret" }),
        )
        .await;
    assert_eq!(code(&garbage), "BAD_USER_INPUT");
}

#[apply(backends)]
async fn a_newer_link_voids_the_older_and_change_password_voids_both(#[case] backend: Backend) {
    let Some(sink) = SmtpSink::start(None) else {
        return;
    };
    let Some(server) = mail_server(backend, &sink, &[]).await else {
        return;
    };
    let session = server.signup("twice").await;
    sink.wait_for(1, Duration::from_secs(15)).await;
    for _ in 0..2 {
        server
            .gql(None, REQUEST_RESET, json!({ "e": "twice@example.com" }))
            .await;
    }
    let mails = sink.wait_for(3, Duration::from_secs(15)).await;
    let (older, newer) = (
        mails[1].token(&reset_prefix()),
        mails[2].token(&reset_prefix()),
    );
    let body = server
        .gql(None, RESET, json!({ "t": older, "p": "the first new one" }))
        .await;
    assert_eq!(
        code(&body),
        "BAD_USER_INPUT",
        "the older link is void: {body}"
    );

    // changePassword voids the pending link too.
    let changed = server
        .gql(
            Some(&session.access),
            "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) }",
            json!({ "c": PASSWORD, "n": "changed the usual way" }),
        )
        .await;
    assert_eq!(changed["data"]["changePassword"], true, "{changed}");
    let body = server
        .gql(
            None,
            RESET,
            json!({ "t": newer, "p": "the second new one" }),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
}

#[apply(backends)]
async fn a_reset_link_expires(#[case] backend: Backend) {
    let Some(sink) = SmtpSink::start(None) else {
        return;
    };
    let Some(server) = mail_server(backend, &sink, &[("PASSWORD_RESET_TTL", "2")]).await else {
        return;
    };
    server.signup("slowpoke").await;
    server
        .gql(None, REQUEST_RESET, json!({ "e": "slowpoke@example.com" }))
        .await;
    let mails = sink.wait_for(2, Duration::from_secs(15)).await;
    let token = mails[1].token(&reset_prefix());
    tokio::time::sleep(Duration::from_millis(3_100)).await;
    let body = server
        .gql(None, RESET, json!({ "t": token, "p": "too late for this" }))
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(body["errors"][0]["extensions"]["field"], "token");
}

#[apply(backends)]
async fn an_unknown_address_gets_the_same_answer_in_the_same_time_and_no_mail(
    #[case] backend: Backend,
) {
    let Some(sink) = SmtpSink::start(None) else {
        return;
    };
    let Some(server) = mail_server(backend, &sink, &[]).await else {
        return;
    };
    let users = 8;
    for i in 0..users {
        server.signup(&format!("known{i}")).await;
    }
    sink.wait_for(users, Duration::from_secs(30)).await;
    // Three rounds (24 samples a side, interleaved): a median of a few
    // is at the mercy of whatever else the machine runs. Each known
    // address gets 4 mails, within its 5 an hour.
    let rounds = 3;
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for i in (0..users).cycle().take(rounds * users) {
        for (email, times) in [
            (format!("known{i}@example.com"), &mut known),
            (format!("ghost{i}@example.com"), &mut unknown),
        ] {
            let start = Instant::now();
            let body = server.gql(None, REQUEST_RESET, json!({ "e": email })).await;
            times.push(start.elapsed().as_secs_f64());
            assert_eq!(
                body,
                json!({ "data": { "requestPasswordReset": true } }),
                "{email}"
            );
        }
    }
    let (known, unknown) = (median(&mut known), median(&mut unknown));
    eprintln!("requestPasswordReset medians: known {known:.5}s, unknown {unknown:.5}s");
    assert!(
        (0.33..3.0).contains(&(known / unknown)),
        "known {known:.5}s, unknown {unknown:.5}s"
    );
    let mails = sink
        .wait_for((1 + rounds) * users, Duration::from_secs(30))
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mails = if sink.mails().len() > mails.len() {
        sink.mails()
    } else {
        mails
    };
    assert_eq!(
        mails.len(),
        (1 + rounds) * users,
        "one verification and a reset a round per known user"
    );
    assert!(
        mails.iter().all(|mail| !mail.to[0].starts_with("ghost")),
        "no mail to an unknown address"
    );
}

#[apply(backends)]
async fn over_the_hourly_limit_of_an_address_the_answer_is_still_true_and_nothing_is_sent(
    #[case] backend: Backend,
) {
    let Some(sink) = SmtpSink::start(None) else {
        return;
    };
    let Some(server) = mail_server(backend, &sink, &[]).await else {
        return;
    };
    server.signup("popular").await;
    for _ in 0..8 {
        let body = server
            .gql(None, REQUEST_RESET, json!({ "e": "popular@example.com" }))
            .await;
        assert_eq!(body["data"]["requestPasswordReset"], true);
    }
    sink.wait_for(5, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    assert_eq!(
        sink.mails().len(),
        5,
        "the verification and four resets: five an hour"
    );
}

#[apply(backends)]
async fn with_the_smtp_server_down_the_request_answers_and_the_mail_arrives_once_it_is_back(
    #[case] backend: Backend,
) {
    if python().is_none() {
        return;
    }
    let port = free_port();
    let url = format!("smtp://127.0.0.1:{port}");
    let Some(server) = TestServer::start_with(
        backend,
        &[("SMTP_URL", url.as_str()), ("PUBLIC_URL", PUBLIC)],
    )
    .await
    else {
        return;
    };
    let start = Instant::now();
    server.signup("patient").await;
    let body = server
        .gql(None, REQUEST_RESET, json!({ "e": "patient@example.com" }))
        .await;
    assert_eq!(body["data"]["requestPasswordReset"], true, "{body}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "no request waits for SMTP"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sink = SmtpSink::start(Some(port)).expect("the SMTP server");
    let mails = sink.wait_for(2, Duration::from_secs(40)).await;
    // Each mail retries on its own schedule: either may arrive first.
    let mut subjects: Vec<&str> = mails
        .iter()
        .map(|m| m.headers["Subject"].as_str().unwrap())
        .collect();
    subjects.sort_unstable();
    assert_eq!(subjects, ["Confirm your address", "Reset your password"]);
    let reset = mails
        .iter()
        .find(|m| m.headers["Subject"] == "Reset your password")
        .unwrap();
    let token = reset.token(&reset_prefix());
    let body = server
        .gql(
            None,
            RESET,
            json!({ "t": token, "p": "it arrived after all" }),
        )
        .await;
    assert_eq!(body["data"]["resetPassword"], true, "{body}");
}

#[apply(backends)]
async fn killed_between_commit_and_send_the_mails_go_out_after_a_restart_exactly_once(
    #[case] backend: Backend,
) {
    if python().is_none() {
        return;
    }
    // An SMTP server that hangs mid-send: the first mail is committed,
    // claimed and on the wire when the server dies; the second is committed
    // and waiting.
    let port = free_port();
    let stalling = SmtpSink::start_stalling(port).expect("the SMTP server");
    let url = format!("smtp://127.0.0.1:{port}");
    let Some(mut server) = TestServer::start_process_with(
        backend,
        &[("SMTP_URL", url.as_str()), ("PUBLIC_URL", PUBLIC)],
    )
    .await
    else {
        return;
    };
    server.signup("crashed").await;
    let start = Instant::now();
    while stalling.stalled() == 0 {
        assert!(start.elapsed() < Duration::from_secs(15), "no send began");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let body = server
        .gql(None, REQUEST_RESET, json!({ "e": "crashed@example.com" }))
        .await;
    assert_eq!(body["data"]["requestPasswordReset"], true, "{body}");
    server.kill();
    drop(stalling);

    let sink = SmtpSink::start(Some(port)).expect("the SMTP server");
    let server = server.restart().await;
    // The claimed mail waits out its lease (30 s); the other goes at once.
    sink.wait_for(2, Duration::from_secs(60)).await;
    // Long enough for a duplicate to follow (the worker polls every 2 s).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mails = sink.mails();
    let mut subjects: Vec<&str> = mails
        .iter()
        .map(|m| m.headers["Subject"].as_str().unwrap())
        .collect();
    subjects.sort_unstable();
    assert_eq!(
        subjects,
        ["Confirm your address", "Reset your password"],
        "each mail exactly once"
    );
    let reset = mails
        .iter()
        .find(|m| m.headers["Subject"] == "Reset your password")
        .unwrap();
    let body = server
        .gql(
            None,
            RESET,
            json!({ "t": reset.token(&reset_prefix()), "p": "survived the crash" }),
        )
        .await;
    assert_eq!(body["data"]["resetPassword"], true, "{body}");
}

#[tokio::test]
async fn without_smtp_the_mail_fields_are_feature_disabled() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let session = server.signup("nomail").await;
    for (query, token) in [
        (REQUEST_RESET.to_owned(), None),
        (
            "mutation { requestEmailVerification }".to_owned(),
            Some(session.access.as_str()),
        ),
        (VERIFY.to_owned(), None),
        (RESET.to_owned(), None),
    ] {
        let body = server
            .gql(
                token,
                &query,
                json!({ "e": "nomail@example.com", "t": "x", "p": "whatever it is" }),
            )
            .await;
        assert_eq!(code(&body), "FEATURE_DISABLED", "{query}: {body}");
    }
    let me = server
        .gql(Some(&session.access), ME_VERIFIED, json!({}))
        .await;
    assert_eq!(me["data"]["me"]["emailVerified"], false);
}

/// Two server processes on one new PostgreSQL database, both sending mail
/// to `sink` (with the database's one data key, which seals the outbox's
/// tokens); `None` without PostgreSQL.
async fn mail_pair(sink: &SmtpSink) -> Option<(TestServer, TestServer)> {
    let database = std::sync::Arc::new(TestDatabase::fresh().await?);
    let url = sink.url();
    let env = [
        ("SMTP_URL", url.as_str()),
        ("PUBLIC_URL", PUBLIC),
        ("JWT_SECRET", "mail-servers-share-one-key-0123456789"),
    ];
    let a = TestServer::start_on(Some(database.clone()), &env);
    let b = TestServer::start_on(Some(database), &env);
    Some((a, b))
}

/// Two servers on one PostgreSQL, both with a mail worker: each requested
/// mail goes out once (the claim skips rows another server holds).
#[tokio::test]
async fn two_servers_on_one_postgresql_send_each_mail_once() {
    let Some(sink) = SmtpSink::start(None) else {
        return;
    };
    let Some((a, b)) = mail_pair(&sink).await else {
        return;
    };
    let users = 6;
    for i in 0..users {
        let server = if i % 2 == 0 { &a } else { &b };
        server.signup(&format!("pair{i}")).await;
    }
    for i in 0..users {
        // Asked on one server; either server's worker may send it.
        let server = if i % 2 == 0 { &b } else { &a };
        let body = server
            .gql(
                None,
                REQUEST_RESET,
                json!({ "e": format!("pair{i}@example.com") }),
            )
            .await;
        assert_eq!(body["data"]["requestPasswordReset"], true, "{body}");
    }
    sink.wait_for(2 * users, Duration::from_secs(30)).await;
    // Both workers poll every 2 s: give a duplicate time to show up.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mails = sink.mails();
    assert_eq!(
        mails.len(),
        2 * users,
        "one verification and one reset each, no more"
    );
    for i in 0..users {
        let to = format!("pair{i}@example.com");
        let theirs = mails.iter().filter(|mail| mail.to == [to.clone()]).count();
        assert_eq!(theirs, 2, "{to}");
    }
}

/// Two servers on one PostgreSQL and an SMTP server that answers each mail
/// 8 s late: a batch of mails claimed together (ten at most) outlived its
/// 30 s lease, and the other server sent its last mails again. Claimed one at
/// a time under a lease longer than a send may take, each mail arrives once.
#[tokio::test]
async fn a_slow_smtp_server_gets_each_mail_once_from_two_servers() {
    let Some(sink) = SmtpSink::start_slow(8.0) else {
        return;
    };
    let Some((a, b)) = mail_pair(&sink).await else {
        return;
    };
    let users = 12;
    // Signed up at once: twelve verification mails queued together.
    futures::future::join_all((0..users).map(|i| {
        let server = if i % 2 == 0 { &a } else { &b };
        server.signup_as(format!("slow{i}"))
    }))
    .await;
    sink.wait_for(users, Duration::from_secs(120)).await;
    // A second copy would come when a lapsed claim is taken again.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let mails = sink.mails();
    for i in 0..users {
        let to = format!("slow{i}@example.com");
        let theirs = mails.iter().filter(|mail| mail.to == [to.clone()]).count();
        assert_eq!(theirs, 1, "{to}: {} mails in all", mails.len());
    }
    assert_eq!(mails.len(), users);
}

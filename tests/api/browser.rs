//! The edge for browsers over raw HTTP: CORS headers on preflights and
//! responses, cookie mode (the cookie, the schema's nullable fields, the
//! `rotated` grace) and its CSRF rule.

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::helpers::*;

const APP: &str = "http://localhost:5173";
const COOKIE: &str = "__Host-authgraph-refresh";
const SIGNUP_COOKIE: &str = "mutation($input: SignupInput!) { signup(input: $input) { accessToken refreshToken expiresIn refreshExpiresIn user { id username } } }";
const REFRESH_COOKIE: &str =
    "mutation { refreshToken { accessToken refreshToken refreshExpiresIn user { username } } }";

/// An answer: status, headers, body (JSON when it parses, else null).
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect()
    }

    /// The refresh cookie this answer sets: `Some("")` when it clears it.
    fn cookie(&self) -> Option<cookie::Cookie<'static>> {
        let set: Vec<_> = self
            .all("set-cookie")
            .into_iter()
            .filter_map(|v| cookie::Cookie::parse(v).ok())
            .filter(|c| c.name() == COOKIE)
            .collect();
        assert!(set.len() <= 1, "one Set-Cookie at most: {set:?}");
        set.into_iter().next()
    }

    fn cookie_value(&self) -> String {
        let cookie = self
            .cookie()
            .unwrap_or_else(|| panic!("no cookie: {:?}", self.headers));
        assert!(!cookie.value().is_empty(), "the cookie was cleared");
        cookie.value().to_owned()
    }

    fn clears_cookie(&self) -> bool {
        self.cookie().is_some_and(|c| {
            c.value().is_empty() && c.max_age() == Some(cookie::time::Duration::ZERO)
        })
    }
}

/// Sends `method /graphql` (or `path`) with these headers and an optional JSON body.
async fn send(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Answer {
    let mut request = reqwest::Client::new().request(method, server.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    Answer {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
    }
}

async fn post(
    server: &TestServer,
    headers: &[(&str, &str)],
    query: &str,
    variables: Value,
) -> Answer {
    send(
        server,
        reqwest::Method::POST,
        "/graphql",
        headers,
        Some(json!({ "query": query, "variables": variables })),
    )
    .await
}

fn with_cookie(value: &str) -> String {
    format!("{COOKIE}={value}")
}

async fn signup_in_cookie_mode(server: &TestServer, name: &str) -> (Answer, String) {
    let answer = post(
        server,
        &[("origin", APP)],
        SIGNUP_COOKIE,
        json!({ "input": { "username": name, "email": format!("{name}@example.com"), "password": PASSWORD } }),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let cookie = answer.cookie_value();
    (answer, cookie)
}

async fn refresh_from_cookie(server: &TestServer, cookie: &str, origin: Option<&str>) -> Answer {
    let cookie = with_cookie(cookie);
    let mut headers = vec![("cookie", cookie.as_str())];
    if let Some(origin) = origin {
        headers.push(("origin", origin));
    }
    post(server, &headers, REFRESH_COOKIE, json!({})).await
}

fn cookie_mode() -> Vec<(&'static str, &'static str)> {
    vec![
        ("REFRESH_TOKEN_COOKIE", "on"),
        ("CORS_ALLOWED_ORIGINS", APP),
        ("REFRESH_TOKEN_TTL", "3600"),
    ]
}

fn list(header: Option<&str>) -> Vec<String> {
    header
        .unwrap_or("")
        .split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect()
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_gets_every_cors_header() {
    let server = TestServer::start_with(
        Backend::Sqlite,
        &[(
            "CORS_ALLOWED_ORIGINS",
            "https://app.example.com, http://localhost:5173",
        )],
    )
    .await
    .unwrap();
    let requested = "authorization, content-type, x-request-id, apollographql-client-name, apollographql-client-version, apollo-require-preflight, x-apollo-operation-name";
    let answer = send(
        &server,
        reqwest::Method::OPTIONS,
        "/graphql",
        &[
            ("origin", APP),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", requested),
        ],
        None,
    )
    .await;
    assert_eq!(answer.status, 204, "{:?}", answer.headers);
    assert_eq!(answer.header("access-control-allow-origin"), Some(APP));
    assert_eq!(
        answer.header("access-control-allow-credentials"),
        Some("true")
    );
    let mut methods = list(answer.header("access-control-allow-methods"));
    methods.sort();
    assert_eq!(methods, ["get", "post"]);
    let allowed = list(answer.header("access-control-allow-headers"));
    for wanted in requested.split(", ") {
        assert!(
            allowed.contains(&wanted.to_owned()),
            "{wanted} in {allowed:?}"
        );
    }
    let max_age: u32 = answer
        .header("access-control-max-age")
        .unwrap()
        .parse()
        .unwrap();
    assert!(max_age > 0);
    assert!(list(answer.header("vary")).contains(&"origin".to_owned()));

    // The request that follows: origin, credentials, the request id exposed.
    let answer = post(&server, &[("origin", APP)], "{ __typename }", json!({})).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["data"]["__typename"], "Query");
    assert_eq!(answer.header("access-control-allow-origin"), Some(APP));
    assert_eq!(
        answer.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(
        list(answer.header("access-control-expose-headers")),
        ["x-request-id"]
    );
    assert!(answer.header("x-request-id").is_some());
    assert!(list(answer.header("vary")).contains(&"origin".to_owned()));

    // The other listed origin, by GET.
    let answer = send(
        &server,
        reqwest::Method::GET,
        "/graphql?query=%7B__typename%7D",
        &[
            ("origin", "https://app.example.com"),
            ("accept", "application/json"),
        ],
        None,
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
}

#[tokio::test]
async fn any_other_origin_is_served_without_cors_headers() {
    for env in [vec![("CORS_ALLOWED_ORIGINS", APP)], vec![]] {
        let server = TestServer::start_with(Backend::Sqlite, &env).await.unwrap();
        for origin in [
            "https://evil.example",
            "http://localhost:5174",
            "null",
            "http://localhost:5173/",
        ] {
            {
                let answer =
                    post(&server, &[("origin", origin)], "{ __typename }", json!({})).await;
                assert_eq!(answer.status, 200, "{origin}: {}", answer.body);
                assert_eq!(answer.body["data"]["__typename"], "Query", "served");
                for name in [
                    "access-control-allow-origin",
                    "access-control-allow-credentials",
                    "access-control-expose-headers",
                ] {
                    assert_eq!(answer.header(name), None, "{origin}: {name}");
                }
                assert!(
                    list(answer.header("vary")).contains(&"origin".to_owned()),
                    "{origin}"
                );
                let preflight = send(
                    &server,
                    reqwest::Method::OPTIONS,
                    "/graphql",
                    &[
                        ("origin", origin),
                        ("access-control-request-method", "POST"),
                    ],
                    None,
                )
                .await;
                assert_ne!(preflight.status / 100, 2, "{origin}: a preflight fails");
                assert_eq!(
                    preflight.header("access-control-allow-origin"),
                    None,
                    "{origin}"
                );
            }
        }
        // With no CORS configured, even the listed origin of the other run gets none.
        if env.is_empty() {
            let answer = post(&server, &[("origin", APP)], "{ __typename }", json!({})).await;
            assert_eq!(answer.header("access-control-allow-origin"), None);
        }
        // Same-origin pages, GraphiQL and other routes keep working, with Vary.
        let health = send(&server, reqwest::Method::GET, "/healthz", &[], None).await;
        assert_eq!(health.status, 200);
        assert!(list(health.header("vary")).contains(&"origin".to_owned()));
        let page = send(
            &server,
            reqwest::Method::GET,
            "/graphql",
            &[("accept", "text/html"), ("origin", "https://evil.example")],
            None,
        )
        .await;
        assert_eq!(page.status, 200);
    }
}

#[apply(backends)]
async fn cookie_mode_keeps_the_refresh_token_out_of_the_body(#[case] backend: Backend) {
    let Some(server) = TestServer::start_with(backend, &cookie_mode()).await else {
        return;
    };
    let (signup, cookie) = signup_in_cookie_mode(&server, "cookie").await;
    let payload = &signup.body["data"]["signup"];
    assert_eq!(payload["refreshToken"], Value::Null, "{}", signup.body);
    assert_eq!(payload["refreshExpiresIn"], 3600);
    let set = signup.cookie().unwrap();
    assert_eq!(set.http_only(), Some(true));
    assert_eq!(set.secure(), Some(true));
    assert_eq!(set.same_site(), Some(cookie::SameSite::Strict));
    assert_eq!(set.path(), Some("/"));
    assert_eq!(set.domain(), None);
    assert_eq!(set.max_age(), Some(cookie::time::Duration::seconds(3600)));
    assert_eq!(claims(&cookie)["typ"], "refresh");

    // A reload: the cookie alone refreshes, and is replaced.
    let answer = refresh_from_cookie(&server, &cookie, Some(APP)).await;
    let payload = &answer.body["data"]["refreshToken"];
    assert_eq!(payload["user"]["username"], "cookie", "{}", answer.body);
    assert_eq!(payload["refreshToken"], Value::Null);
    let newer = answer.cookie_value();
    assert_ne!(newer, cookie);
    let me = server.me(payload["accessToken"].as_str().unwrap()).await;
    assert_eq!(me["data"]["me"]["username"], "cookie", "{me}");
    assert_eq!(claims(&newer)["sid"], claims(&cookie)["sid"], "one session");

    // The cookie authenticates nothing else.
    let me = post(
        &server,
        &[("cookie", &with_cookie(&newer))],
        "{ me { id } }",
        json!({}),
    )
    .await;
    assert_eq!(reason(&me.body), "missing", "{}", me.body);

    // Neither argument nor cookie.
    let answer = post(&server, &[], REFRESH_COOKIE, json!({})).await;
    assert_eq!(code(&answer.body), "UNAUTHENTICATED");
    assert_eq!(reason(&answer.body), "missing");
    assert!(answer.cookie().is_none());

    // In the other media type too.
    let answer = send(
        &server,
        reqwest::Method::POST,
        "/graphql",
        &[
            ("cookie", &with_cookie(&newer)),
            ("accept", "application/graphql-response+json"),
        ],
        Some(json!({ "query": REFRESH_COOKIE })),
    )
    .await;
    assert!(
        answer.body["data"]["refreshToken"]["accessToken"].is_string(),
        "{}",
        answer.body
    );
    answer.cookie_value();
}

#[apply(backends)]
async fn header_mode_keeps_the_core_rules(#[case] backend: Backend) {
    let Some(server) = TestServer::start_with(backend, &[("REFRESH_TOKEN_TTL", "3600")]).await
    else {
        return;
    };
    let answer = post(
        &server,
        &[],
        SIGNUP_COOKIE,
        json!({ "input": { "username": "header", "email": "header@example.com", "password": PASSWORD } }),
    )
    .await;
    let payload = &answer.body["data"]["signup"];
    let refresh = payload["refreshToken"]
        .as_str()
        .expect("in the body")
        .to_owned();
    assert_eq!(payload["refreshExpiresIn"], 3600);
    assert!(answer.cookie().is_none(), "no cookie in header mode");

    // A cookie is ignored: no argument is `missing`.
    let answer = refresh_from_cookie(&server, &refresh, None).await;
    assert_eq!(reason(&answer.body), "missing", "{}", answer.body);

    // Reuse at once ends the session: no grace in header mode.
    let first = server.refresh(&refresh).await;
    let newer = Session::from_payload(&first, "refreshToken");
    assert_eq!(reason(&server.refresh(&refresh).await), "revoked");
    assert_eq!(reason(&server.refresh(&newer.refresh).await), "revoked");
    // With neither, logout is true.
    let answer = post(&server, &[], "mutation { logout }", json!({})).await;
    assert_eq!(answer.body["data"]["logout"], true, "{}", answer.body);
}

#[apply(backends)]
async fn a_cookie_from_a_foreign_page_is_refused_before_anything_runs(#[case] backend: Backend) {
    let Some(server) = TestServer::start_with(backend, &cookie_mode()).await else {
        return;
    };
    let (_, cookie) = signup_in_cookie_mode(&server, "csrf").await;
    for origin in ["https://evil.example", "null", "http://localhost:5174"] {
        let answer = refresh_from_cookie(&server, &cookie, Some(origin)).await;
        assert_eq!(answer.status, 403, "{origin}");
        assert_eq!(code(&answer.body), "FORBIDDEN", "{}", answer.body);
        assert!(answer.body.get("data").is_none());
        assert!(answer.cookie().is_none(), "the cookie is left alone");
        // A logout from there ends nothing either.
        let answer = post(
            &server,
            &[("cookie", &with_cookie(&cookie)), ("origin", origin)],
            "mutation { logout }",
            json!({}),
        )
        .await;
        assert_eq!(answer.status, 403);
    }
    // A foreign page with no cookie is no forgery: it is served.
    let answer = post(
        &server,
        &[("origin", "https://evil.example")],
        "{ __typename }",
        json!({}),
    )
    .await;
    assert_eq!(answer.status, 200);

    // The session still refreshes: from the allowed app, from PUBLIC_URL's
    // own origin, and with no Origin at all.
    let mut cookie = cookie;
    for origin in [Some(APP), Some("http://localhost:8000"), None] {
        let answer = refresh_from_cookie(&server, &cookie, origin).await;
        assert_eq!(answer.status, 200, "{origin:?}");
        assert!(
            answer.body["data"]["refreshToken"]["accessToken"].is_string(),
            "{origin:?}: {}",
            answer.body
        );
        cookie = answer.cookie_value();
    }
}

#[apply(backends)]
async fn an_argument_beside_the_cookie_wins(#[case] backend: Backend) {
    let Some(server) = TestServer::start_with(backend, &cookie_mode()).await else {
        return;
    };
    let (_, alice) = signup_in_cookie_mode(&server, "alice").await;
    let (_, bob) = signup_in_cookie_mode(&server, "bob").await;
    let answer = post(
        &server,
        &[("cookie", &with_cookie(&alice)), ("origin", APP)],
        "mutation($t: String) { refreshToken(refreshToken: $t) { refreshToken user { username } } }",
        json!({ "t": bob }),
    )
    .await;
    assert_eq!(
        answer.body["data"]["refreshToken"]["user"]["username"], "bob",
        "{}",
        answer.body
    );
    let bobs_newer = answer.cookie_value();
    assert_eq!(claims(&bobs_newer)["sid"], claims(&bob)["sid"]);
    // Alice's cookie token was not touched: it still refreshes.
    let answer = refresh_from_cookie(&server, &alice, Some(APP)).await;
    assert_eq!(
        answer.body["data"]["refreshToken"]["user"]["username"], "alice",
        "{}",
        answer.body
    );

    // A bad argument beside a good cookie fails on the argument.
    let alices_newer = answer.cookie_value();
    let answer = post(
        &server,
        &[("cookie", &with_cookie(&alices_newer))],
        "mutation($t: String) { refreshToken(refreshToken: $t) { accessToken } }",
        json!({ "t": "garbage" }),
    )
    .await;
    assert_eq!(reason(&answer.body), "invalid");
    assert!(
        answer.cookie().is_none(),
        "a failed argument leaves the cookie"
    );
    assert!(
        refresh_from_cookie(&server, &alices_newer, None).await.body["data"]["refreshToken"]
            .is_object()
    );
}

#[apply(backends)]
async fn tabs_sharing_the_cookie_get_rotated_and_the_session_survives(#[case] backend: Backend) {
    let Some(server) = TestServer::start_with(backend, &cookie_mode()).await else {
        return;
    };
    let (_, cookie) = signup_in_cookie_mode(&server, "tabs").await;
    // Two tabs refresh with one cookie at once: one wins, the other is `rotated`.
    let (a, b) = tokio::join!(
        refresh_from_cookie(&server, &cookie, Some(APP)),
        refresh_from_cookie(&server, &cookie, Some(APP))
    );
    let (winner, loser) = if a.body["data"]["refreshToken"].is_object() {
        (a, b)
    } else {
        (b, a)
    };
    assert!(
        winner.body["data"]["refreshToken"].is_object(),
        "{}",
        winner.body
    );
    assert_eq!(code(&loser.body), "UNAUTHENTICATED", "{}", loser.body);
    assert_eq!(reason(&loser.body), "rotated");
    assert!(loser.body["data"].is_null(), "no tokens");
    assert!(
        loser.cookie().is_none(),
        "the loser leaves the winner's cookie in place"
    );
    // The loser's retry carries the newer cookie, and the session goes on.
    let newer = winner.cookie_value();
    let retry = refresh_from_cookie(&server, &newer, Some(APP)).await;
    let newest = retry.cookie_value();
    let access = retry.body["data"]["refreshToken"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(server.me(&access).await["data"]["me"]["username"], "tabs");

    // After the grace, the old cookie is reuse: the session ends and the cookie is cleared.
    tokio::time::sleep(Duration::from_millis(10_500)).await;
    let late = refresh_from_cookie(&server, &cookie, Some(APP)).await;
    assert_eq!(reason(&late.body), "revoked", "{}", late.body);
    assert!(late.clears_cookie(), "{:?}", late.headers);
    assert_eq!(reason(&server.me(&access).await), "revoked");
    assert_eq!(
        reason(&refresh_from_cookie(&server, &newest, Some(APP)).await.body),
        "revoked"
    );
}

#[apply(backends)]
async fn a_failed_refresh_and_ending_the_session_clear_the_cookie(#[case] backend: Backend) {
    let Some(server) = TestServer::start_with(backend, &cookie_mode()).await else {
        return;
    };
    let garbage = refresh_from_cookie(&server, "not-a-token", Some(APP)).await;
    assert_eq!(reason(&garbage.body), "invalid");
    assert!(garbage.clears_cookie());

    // logout from the cookie.
    let (_, cookie) = signup_in_cookie_mode(&server, "leaver").await;
    let answer = post(
        &server,
        &[("cookie", &with_cookie(&cookie)), ("origin", APP)],
        "mutation { logout }",
        json!({}),
    )
    .await;
    assert_eq!(answer.body["data"]["logout"], true, "{}", answer.body);
    assert!(answer.clears_cookie());
    assert_eq!(
        reason(&refresh_from_cookie(&server, &cookie, Some(APP)).await.body),
        "revoked"
    );
    // With neither: true, and nothing to clear.
    let answer = post(&server, &[], "mutation { logout }", json!({})).await;
    assert_eq!(answer.body["data"]["logout"], true);

    // logoutAll and revoking the current session.
    for ending in [
        "mutation { logoutAll }",
        "mutation($id: ID!) { revokeSession(id: $id) }",
    ] {
        let (signup, cookie) =
            signup_in_cookie_mode(&server, &format!("ender{}", ending.len())).await;
        let access = signup.body["data"]["signup"]["accessToken"]
            .as_str()
            .unwrap()
            .to_owned();
        let bearer = format!("Bearer {access}");
        let sid = claims(&access)["sid"].clone();
        let answer = post(
            &server,
            &[
                ("cookie", &with_cookie(&cookie)),
                ("authorization", &bearer),
                ("origin", APP),
            ],
            ending,
            json!({ "id": sid }),
        )
        .await;
        assert!(answer.body.get("errors").is_none(), "{}", answer.body);
        assert!(answer.clears_cookie(), "{ending}");
    }

    // Revoking another session of mine leaves this one's cookie.
    let (first, cookie) = signup_in_cookie_mode(&server, "two").await;
    let other = server.login("two", PASSWORD).await;
    let other_sid = claims(other["data"]["login"]["accessToken"].as_str().unwrap())["sid"].clone();
    let bearer = format!(
        "Bearer {}",
        first.body["data"]["signup"]["accessToken"]
            .as_str()
            .unwrap()
    );
    let answer = post(
        &server,
        &[
            ("cookie", &with_cookie(&cookie)),
            ("authorization", &bearer),
        ],
        "mutation($id: ID!) { revokeSession(id: $id) }",
        json!({ "id": other_sid }),
    )
    .await;
    assert_eq!(
        answer.body["data"]["revokeSession"], true,
        "{}",
        answer.body
    );
    assert!(answer.cookie().is_none());
}

#[tokio::test]
async fn cookie_mode_warns_of_cross_site_origins_at_start() {
    let server = TestServer::start_process_with(
        Backend::Sqlite,
        &[
            ("REFRESH_TOKEN_COOKIE", "on"),
            ("PUBLIC_URL", "https://auth.example.com"),
            (
                "CORS_ALLOWED_ORIGINS",
                "https://app.example.com,https://app.example.net",
            ),
        ],
    )
    .await
    .unwrap();
    assert!(
        server.logs_soon("cross-site to PUBLIC_URL").await,
        "{}",
        server.log_text()
    );
    let text = server.log_text();
    let warnings: Vec<&str> = text.lines().filter(|l| l.contains("cross-site")).collect();
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(warnings[0].contains("https://app.example.net"), "{text}");
}

#[apply(backends)]
async fn an_api_key_caller_never_touches_the_refresh_cookie(#[case] backend: Backend) {
    let Some(server) = TestServer::start_with(backend, &cookie_mode()).await else {
        return;
    };
    let (signup, cookie) = signup_in_cookie_mode(&server, "keyed").await;
    let access = signup.body["data"]["signup"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = server
        .gql(
            Some(&access),
            "mutation($p: String!) { createApiKey(name: \"ci\", password: $p) { key } }",
            json!({ "p": PASSWORD }),
        )
        .await;
    let key = body["data"]["createApiKey"]["key"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();
    let token = format!("Token {key}");
    let logout = "mutation($t: String) { logout(refreshToken: $t) }";

    // A program holding the key beside a browser's cookie: `logout` with no
    // argument is `logout` with neither, and ends nothing.
    let answer = post(
        &server,
        &[("authorization", &token), ("cookie", &with_cookie(&cookie))],
        logout,
        json!({}),
    )
    .await;
    assert_eq!(answer.body["data"]["logout"], true, "{}", answer.body);
    assert!(answer.cookie().is_none(), "{:?}", answer.headers);
    let answer = refresh_from_cookie(&server, &cookie, Some(APP)).await;
    let cookie = answer.cookie_value();

    // Its argument ends that session, and the cookie is still left to the browser.
    let answer = post(
        &server,
        &[("authorization", &token), ("cookie", &with_cookie(&cookie))],
        logout,
        json!({ "t": cookie }),
    )
    .await;
    assert_eq!(answer.body["data"]["logout"], true, "{}", answer.body);
    assert!(answer.cookie().is_none(), "{:?}", answer.headers);
    let answer = refresh_from_cookie(&server, &cookie, Some(APP)).await;
    assert_eq!(reason(&answer.body), "revoked", "{}", answer.body);
}

#[tokio::test]
async fn a_server_reached_on_loopback_takes_its_own_origin_and_logs_what_it_accepts() {
    // No PUBLIC_URL (its default is http://localhost:8000) and no CORS list.
    let Some(server) =
        TestServer::start_process_with(Backend::Sqlite, &[("REFRESH_TOKEN_COOKIE", "on")]).await
    else {
        return;
    };
    let own = format!("http://{}", server.addr);
    let answer = post(
        &server,
        &[("origin", own.as_str())],
        SIGNUP_COOKIE,
        json!({ "input": { "username": "ownpage", "email": "ownpage@example.com", "password": PASSWORD } }),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let cookie = answer.cookie_value();
    let answer = refresh_from_cookie(&server, &cookie, Some(&own)).await;
    assert_eq!(
        answer.status, 200,
        "its own origin, as reached: {}",
        answer.body
    );
    let cookie = answer.cookie_value();
    // Another port of the same host is another origin: refused, and told why.
    let answer = refresh_from_cookie(&server, &cookie, Some("http://127.0.0.1:1")).await;
    assert_eq!(answer.status, 403);
    let message = answer.body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("PUBLIC_URL") && message.contains("CORS_ALLOWED_ORIGINS"),
        "{message}"
    );
    // A Host that is no loopback name is never taken as this server's own.
    let answer = post(
        &server,
        &[
            ("cookie", &with_cookie(&cookie)),
            ("origin", "http://evil.example"),
            ("host", "evil.example"),
        ],
        REFRESH_COOKIE,
        json!({}),
    )
    .await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    // The start-up log names every origin cookie mode accepts.
    let port = server.addr.rsplit(':').next().unwrap().to_owned();
    let log = server.log_text();
    let line = log
        .lines()
        .find(|line| line.contains("requests carrying the refresh cookie are accepted"))
        .unwrap_or_else(|| panic!("no line of accepted origins: {log}"));
    for origin in [
        "http://localhost:8000".to_owned(),
        format!("http://127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
    ] {
        assert!(line.contains(&origin), "{origin}: {line}");
    }
}

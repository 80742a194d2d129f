use serde_json::{Value, json};

use crate::helpers::*;

fn login_aliases(n: usize) -> String {
    let fields: String = (0..n)
        .map(|i| format!("a{i}: login(input: {{username: \"nobody\", password: \"whatever1\"}}) {{ tokenType }} "))
        .collect();
    format!("mutation {{ {fields} }}")
}

#[apply(backends)]
async fn aliases_count_one_attempt_each(#[case] backend: Backend) {
    let Some(server) =
        TestServer::start_with(backend, &[("AUTH_RATE_LIMIT_PER_MINUTE", "3")]).await
    else {
        return;
    };
    let (_, body) = server
        .post_json(None, &json!({ "query": login_aliases(5) }))
        .await;
    let errors = body["errors"].as_array().unwrap();
    let codes: Vec<&str> = errors
        .iter()
        .map(|e| e["extensions"]["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes
            .iter()
            .filter(|c| **c == "INVALID_CREDENTIALS")
            .count(),
        3,
        "{body}"
    );
    assert_eq!(
        codes.iter().filter(|c| **c == "TOO_MANY_REQUESTS").count(),
        2,
        "{body}"
    );
    let limited = errors
        .iter()
        .find(|e| e["extensions"]["code"] == "TOO_MANY_REQUESTS")
        .unwrap();
    let retry = limited["extensions"]["retryAfter"].as_u64().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // The next request is refused too, signup included.
    let body = server
        .gql(None, SIGNUP, json!({ "input": { "username": "late", "email": "late@example.com", "password": PASSWORD } }))
        .await;
    assert_eq!(code(&body), "TOO_MANY_REQUESTS", "{body}");
}

#[apply(backends)]
async fn batches_count_one_attempt_per_operation(#[case] backend: Backend) {
    let Some(server) =
        TestServer::start_with(backend, &[("AUTH_RATE_LIMIT_PER_MINUTE", "4")]).await
    else {
        return;
    };
    let batch: Vec<Value> = (0..6)
        .map(|_| json!({ "query": "mutation { refreshToken(refreshToken: \"x\") { tokenType } }" }))
        .collect();
    let (_, body) = server.post_json(None, &Value::Array(batch)).await;
    let codes: Vec<&str> = body.as_array().unwrap().iter().map(code).collect();
    assert_eq!(
        codes.iter().filter(|c| **c == "UNAUTHENTICATED").count(),
        4,
        "{body}"
    );
    assert_eq!(
        codes.iter().filter(|c| **c == "TOO_MANY_REQUESTS").count(),
        2,
        "{body}"
    );
}

#[apply(backends)]
async fn the_protected_queries_are_not_rate_limited(#[case] backend: Backend) {
    let Some(server) =
        TestServer::start_with(backend, &[("AUTH_RATE_LIMIT_PER_MINUTE", "2")]).await
    else {
        return;
    };
    let session = server.signup("uma").await;
    for _ in 0..20 {
        assert!(server.me(&session.access).await["data"]["me"].is_object());
    }
}

/// A login attempt from the client these `X-Forwarded-For` headers name;
/// whether it was rate limited.
async fn limited(server: &TestServer, forwarded: &[&str]) -> bool {
    let mut request = reqwest::Client::new().post(server.url("/graphql")).json(&serde_json::json!({
        "query": "mutation { login(input: {username: \"nobody\", password: \"wrong password\"}) { tokenType } }"
    }));
    for value in forwarded {
        request = request.header("X-Forwarded-For", *value);
    }
    let body: serde_json::Value = request.send().await.unwrap().json().await.unwrap();
    let code = body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(
        matches!(code.as_str(), "INVALID_CREDENTIALS" | "TOO_MANY_REQUESTS"),
        "{body}"
    );
    code == "TOO_MANY_REQUESTS"
}

#[apply(backends)]
async fn behind_a_trusted_proxy_each_client_has_its_own_limit(#[case] backend: Backend) {
    let env = [
        ("AUTH_RATE_LIMIT_PER_MINUTE", "2"),
        ("TRUSTED_PROXIES", "127.0.0.1"),
    ];
    let Some(server) = TestServer::start_with(backend, &env).await else {
        return;
    };
    for _ in 0..2 {
        assert!(!limited(&server, &["203.0.113.5"]).await);
    }
    assert!(
        limited(&server, &["203.0.113.5"]).await,
        "the third from one client"
    );
    assert!(
        !limited(&server, &["203.0.113.6"]).await,
        "another client goes on"
    );
    // What the client wrote to the left changes nothing; headers join in order.
    assert!(limited(&server, &["198.51.100.1, 203.0.113.5"]).await);
    assert!(limited(&server, &["198.51.100.1", "203.0.113.5, 127.0.0.1"]).await);
    // IPv4-mapped IPv6 is IPv4; IPv6 counts per /64.
    assert!(limited(&server, &["::ffff:203.0.113.5"]).await);
    assert!(!limited(&server, &["2001:db8::1"]).await);
    assert!(!limited(&server, &["2001:db8::2"]).await);
    assert!(limited(&server, &["2001:db8::3"]).await, "the same /64");
    assert!(
        !limited(&server, &["2001:db8:0:1::1"]).await,
        "the next /64"
    );
}

#[apply(backends)]
async fn forwarded_headers_from_an_untrusted_peer_change_nothing(#[case] backend: Backend) {
    for proxies in [None, Some("10.0.0.0/8")] {
        let mut env = vec![("AUTH_RATE_LIMIT_PER_MINUTE", "2")];
        env.extend(proxies.map(|p| ("TRUSTED_PROXIES", p)));
        let Some(server) = TestServer::start_with(backend, &env).await else {
            return;
        };
        assert!(!limited(&server, &["203.0.113.5"]).await);
        assert!(!limited(&server, &["203.0.113.6"]).await);
        assert!(
            limited(&server, &["203.0.113.7"]).await,
            "every spoofed client is the peer, 127.0.0.1 ({proxies:?})"
        );
    }
}

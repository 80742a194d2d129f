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

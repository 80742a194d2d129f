//! GraphQL over HTTP as the spec and API.md have it: GET for queries, the
//! `Accept` rules, and the status codes of `application/graphql-response+json`.

use serde_json::{Value, json};

use crate::helpers::*;

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

/// GETs /graphql with these query parameters and headers; the status, the
/// content type and the body (parsed when it is JSON).
async fn get(
    server: &TestServer,
    params: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> (u16, String, Value) {
    let mut request = reqwest::Client::new()
        .get(server.url("/graphql"))
        .query(params);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("an answer");
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    (
        status,
        kind,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

/// POSTs `body` with `Accept: accept`; the status, the content type, the body.
async fn post(server: &TestServer, accept: &str, body: &Value) -> (u16, String, Value) {
    let response = reqwest::Client::new()
        .post(server.url("/graphql"))
        .header("Accept", accept)
        .json(body)
        .send()
        .await
        .expect("an answer");
    let status = response.status().as_u16();
    let kind = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    (status, kind, response.json().await.unwrap())
}

#[apply(backends)]
async fn a_query_runs_over_get_with_its_variables_and_token(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let session = server.signup("getter").await;
    let json = [("Accept", "application/json")];
    let (status, kind, body) = get(&server, &[("query", "{ __typename }")], &json).await;
    assert_eq!(
        (status, body["data"]["__typename"].as_str()),
        (200, Some("Query")),
        "{body}"
    );
    assert!(kind.starts_with("application/json"), "{kind}");

    let (status, _, body) = get(
        &server,
        &[
            ("query", "query Check($t: String!) { verifyToken(token: $t) { valid reason } } query Other { __typename }"),
            ("variables", r#"{"t": "garbage"}"#),
            ("operationName", "Check"),
        ],
        &json,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["data"]["verifyToken"],
        json!({ "valid": false, "reason": "invalid" })
    );

    let bearer = format!("Bearer {}", session.access);
    let (_, _, body) = get(
        &server,
        &[("query", "{ me { username } }")],
        &[
            ("Accept", "application/json"),
            ("Authorization", bearer.as_str()),
        ],
    )
    .await;
    assert_eq!(body["data"]["me"]["username"], "getter", "{body}");
}

#[apply(backends)]
async fn a_browser_gets_graphiql_and_anything_else_json(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let (status, kind, _) = get(
        &server,
        &[("query", "{ __typename }")],
        &[("Accept", browser)],
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        kind.starts_with("text/html"),
        "the editor, pre-filled: {kind}"
    );

    let (status, kind, body) = get(
        &server,
        &[("query", "{ __typename }")],
        &[("Accept", "*/*")],
    )
    .await;
    assert_eq!(
        (status, body["data"]["__typename"].as_str()),
        (200, Some("Query"))
    );
    assert!(
        kind.starts_with("application/json"),
        "*/* means application/json: {kind}"
    );

    for params in [&[][..], &[("query", "  ")][..]] {
        let (status, _, body) = get(&server, params, &[("Accept", "*/*")]).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(code(&body), "BAD_REQUEST");
    }
    let (status, _, body) = get(
        &server,
        &[("query", "{ __typename }"), ("variables", "[1,")],
        &[("Accept", "application/json")],
    )
    .await;
    assert_eq!((status, code(&body)), (400, "BAD_REQUEST"));
}

#[apply(backends)]
async fn a_mutation_over_get_is_refused_and_runs_nothing(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let signup = format!(
        "mutation Up {{ signup(input: {{username: \"viaget\", email: \"viaget@example.com\", password: \"{PASSWORD}\"}}) {{ tokenType }} }}"
    );
    let both = format!("query Q {{ __typename }} {signup}");
    let json = [("Accept", "application/json")];
    for params in [
        vec![("query", signup.as_str())],
        vec![("query", both.as_str()), ("operationName", "Up")],
    ] {
        let response = reqwest::Client::new()
            .get(server.url("/graphql"))
            .query(&params)
            .header("Accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 405);
        assert_eq!(response.headers()["allow"], "POST");
    }
    let (_, _, body) = get(
        &server,
        &[("query", both.as_str()), ("operationName", "Q")],
        &json,
    )
    .await;
    assert_eq!(
        body["data"]["__typename"], "Query",
        "the query of the same document runs"
    );
    let body = server.login("viaget", PASSWORD).await;
    assert_eq!(code(&body), "INVALID_CREDENTIALS", "no signup ran: {body}");
}

#[apply(backends)]
async fn graphql_response_json_has_the_spec_s_status_codes(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let ok = post(
        &server,
        GRAPHQL_RESPONSE,
        &json!({ "query": "{ __typename }" }),
    )
    .await;
    assert_eq!(ok.0, 200);
    assert!(ok.1.starts_with(GRAPHQL_RESPONSE), "{}", ok.1);
    assert_eq!(ok.2["data"]["__typename"], "Query");

    for (document, expected) in [
        ("{ me { id ", "GRAPHQL_PARSE_FAILED"),
        ("{ noSuchField }", "GRAPHQL_VALIDATION_FAILED"),
    ] {
        let (status, kind, body) =
            post(&server, GRAPHQL_RESPONSE, &json!({ "query": document })).await;
        assert_eq!(status, 400, "{body}");
        assert!(kind.starts_with(GRAPHQL_RESPONSE));
        assert_eq!(code(&body), expected);
        assert!(body.get("data").is_none(), "no data entry: {body}");
        // application/json keeps its 200.
        let (status, _, body) =
            post(&server, "application/json", &json!({ "query": document })).await;
        assert_eq!((status, code(&body)), (200, expected));
    }
    // Executed, with an error in a field: 200 and the data entry.
    let (status, _, body) = post(
        &server,
        GRAPHQL_RESPONSE,
        &json!({ "query": "{ me { id } }" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("data").is_some(), "{body}");
    assert_eq!(code(&body), "UNAUTHENTICATED");

    let (status, kind, body) = get(
        &server,
        &[("query", "{ me { id ")],
        &[("Accept", GRAPHQL_RESPONSE)],
    )
    .await;
    assert_eq!(status, 400);
    assert!(kind.starts_with(GRAPHQL_RESPONSE));
    assert!(body.get("data").is_none(), "{body}");
}

#[apply(backends)]
async fn a_deeply_nested_get_is_refused_before_the_parser(#[case] backend: Backend) {
    let Some(mut server) = TestServer::start_process(backend).await else {
        return;
    };
    let deep = format!(
        "{{ verifyToken(token: {}1{}) {{ valid }} }}",
        "[".repeat(1_000),
        "]".repeat(1_000)
    );
    let mutation = format!(
        "mutation {{ logout(refreshToken: {}1{}) }}",
        "[".repeat(1_000),
        "]".repeat(1_000)
    );
    for query in [deep, mutation] {
        let (status, _, body) = get(
            &server,
            &[("query", query.as_str())],
            &[("Accept", "application/json")],
        )
        .await;
        assert_eq!(
            (status, code(&body)),
            (200, "GRAPHQL_PARSE_FAILED"),
            "{body}"
        );
    }
    assert!(server.is_running());
}

#[apply(backends)]
async fn the_schema_s_description_is_ours(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let body = server
        .gql(None, "{ __schema { description } }", json!({}))
        .await;
    let description = body["data"]["__schema"]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(description.starts_with("authgraph"), "{body}");
    assert!(
        !description.contains("defines the capabilities"),
        "not the library's: {description}"
    );
}

/// `extensions` asking for the persisted query of `query`.
fn persisted(query: &str) -> Value {
    use sha2::Digest;
    let hash = hex::encode(sha2::Sha256::digest(query.as_bytes()));
    json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } })
}

#[apply(backends)]
async fn an_unknown_hash_is_not_found_and_a_hash_with_its_query_is_kept(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let query = "query Apq { __typename }";
    let hash_only = json!({ "extensions": persisted(query) });
    for accept in ["application/json", GRAPHQL_RESPONSE] {
        let (status, _, body) = post(&server, accept, &hash_only).await;
        assert_eq!(
            (status, code(&body)),
            (200, "PERSISTED_QUERY_NOT_FOUND"),
            "{accept}: {body}"
        );
        assert_eq!(body["errors"][0]["message"], "PersistedQueryNotFound");
    }
    let (_, _, body) = get(
        &server,
        &[("extensions", &persisted(query).to_string())],
        &[("Accept", "application/json")],
    )
    .await;
    assert_eq!(
        code(&body),
        "PERSISTED_QUERY_NOT_FOUND",
        "over GET too: {body}"
    );

    let with_query = json!({ "query": query, "extensions": persisted(query) });
    let (_, _, body) = post(&server, "application/json", &with_query).await;
    assert_eq!(body["data"]["__typename"], "Query", "{body}");
    let (_, _, body) = post(&server, "application/json", &hash_only).await;
    assert_eq!(body["data"]["__typename"], "Query", "kept: {body}");
    let (_, _, body) = get(
        &server,
        &[("extensions", &persisted(query).to_string())],
        &[("Accept", "application/json")],
    )
    .await;
    assert_eq!(body["data"]["__typename"], "Query", "and over GET: {body}");

    let wrong = json!({ "query": "{ __typename }", "extensions": persisted(query) });
    let (_, _, body) = post(&server, "application/json", &wrong).await;
    assert_eq!(
        code(&body),
        "BAD_REQUEST",
        "a hash that is not the query's: {body}"
    );
    assert!(body["data"].is_null());
}

#[apply(backends)]
async fn a_mutation_over_get_by_its_hash_alone_is_refused(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let signup = format!(
        "mutation {{ signup(input: {{username: \"hashed\", email: \"hashed@example.com\", password: \"{PASSWORD}\"}}) {{ tokenType }} }}"
    );
    let body = json!({ "query": signup, "extensions": persisted(&signup) });
    let (_, _, body) = post(&server, "application/json", &body).await;
    assert_eq!(
        body["data"]["signup"]["tokenType"], "Bearer",
        "kept: {body}"
    );
    let response = reqwest::Client::new()
        .get(server.url("/graphql"))
        .query(&[("extensions", persisted(&signup).to_string())])
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    // Run again, the signup would have been a CONFLICT: by POST it is.
    let (_, _, body) = post(
        &server,
        "application/json",
        &json!({ "extensions": persisted(&signup) }),
    )
    .await;
    assert_eq!(code(&body), "CONFLICT", "{body}");
}

#[apply(backends)]
async fn each_entry_of_a_batch_resolves_its_own_hash(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let known = "query Known { __typename }";
    let body = json!({ "query": known, "extensions": persisted(known) });
    post(&server, "application/json", &body).await;
    let batch = json!([
        { "extensions": persisted(known) },
        { "extensions": persisted("query Unknown { __typename }") },
        { "query": "{ verifyToken(token: \"x\") { valid } }" },
    ]);
    let (status, _, body) = post(&server, "application/json", &batch).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0]["data"]["__typename"], "Query", "{body}");
    assert_eq!(
        body[1]["errors"][0]["extensions"]["code"],
        "PERSISTED_QUERY_NOT_FOUND"
    );
    assert_eq!(body[2]["data"]["verifyToken"]["valid"], false);
}

#[apply(backends)]
async fn a_deeply_nested_persisted_query_is_refused_and_never_kept(#[case] backend: Backend) {
    let Some(mut server) = TestServer::start_process(backend).await else {
        return;
    };
    let deep = format!(
        "{{ verifyToken(token: {}1{}) {{ valid }} }}",
        "[".repeat(5_000),
        "]".repeat(5_000)
    );
    let wide: String = (0..600).map(|i| format!("t{i}: __typename ")).collect();
    let wide = format!("{{ {wide} }}");
    for (query, expected) in [
        (deep, "GRAPHQL_PARSE_FAILED"),
        (wide, "GRAPHQL_VALIDATION_FAILED"),
    ] {
        let body = json!({ "query": query, "extensions": persisted(&query) });
        let (_, _, body) = post(&server, "application/json", &body).await;
        assert_eq!(code(&body), expected);
        let (_, _, body) = post(
            &server,
            "application/json",
            &json!({ "extensions": persisted(&query) }),
        )
        .await;
        assert_eq!(
            code(&body),
            "PERSISTED_QUERY_NOT_FOUND",
            "never kept: {body}"
        );
    }
    assert!(server.is_running());
}

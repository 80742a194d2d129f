use serde_json::{Value, json};

use crate::helpers::*;

/// graphql-js `getIntrospectionQuery` with every option on and a nine-deep
/// `TypeRef`: what GraphiQL, Apollo and GraphQL Code Generator send.
const INTROSPECTION: &str = include_str!("introspection.graphql");

#[apply(backends)]
async fn the_standard_introspection_query_works(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let body = server.gql(None, INTROSPECTION, json!({})).await;
    assert!(body.get("errors").is_none(), "{body}");
    let types = body["data"]["__schema"]["types"].as_array().unwrap();
    let names: Vec<&str> = types.iter().filter_map(|t| t["name"].as_str()).collect();
    for expected in [
        "User",
        "AuthPayload",
        "TokenInfo",
        "Role",
        "DateTime",
        "SignupInput",
        "LoginInput",
    ] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
}

#[apply(backends)]
async fn deeper_or_more_complex_documents_are_refused_before_execution(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let deep = format!(
        "{{ __schema {{ types {{ {}name{} }} }} }}",
        "ofType { ".repeat(20),
        " }".repeat(20)
    );
    let body = server.gql(None, &deep, json!({})).await;
    assert_eq!(code(&body), "GRAPHQL_VALIDATION_FAILED", "{body}");
    assert!(body["data"].is_null());

    // Many aliases of a mutation: refused whole, so no signup ran.
    let aliases: String = (0..300)
        .map(|i| format!("a{i}: signup(input: {{username: \"alias{i}\", email: \"a{i}@example.com\", password: \"{PASSWORD}\"}}) {{ tokenType }} "))
        .collect();
    let (status, body) = server
        .post_json(
            None,
            &json!({ "query": format!("mutation {{ {aliases} }}") }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(code(&body), "GRAPHQL_VALIDATION_FAILED", "{body}");
    assert!(!body["errors"].as_array().unwrap().is_empty(), "{body}");
    assert!(body["data"].is_null(), "nothing executed");
    let body = server.login("alias0", PASSWORD).await;
    assert_eq!(code(&body), "INVALID_CREDENTIALS", "{body}");

    let wide: String = (0..300)
        .map(|i| format!("t{i}: verifyToken(token: \"x\") {{ valid }} "))
        .collect();
    let body = server.gql(None, &format!("{{ {wide} }}"), json!({})).await;
    assert_eq!(code(&body), "GRAPHQL_VALIDATION_FAILED", "{body}");
}

#[apply(backends)]
async fn parse_errors_have_a_code(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let body = server.gql(None, "{ me { id ", json!({})).await;
    assert_eq!(code(&body), "GRAPHQL_PARSE_FAILED", "{body}");
    let body = server.gql(None, "{ noSuchField }", json!({})).await;
    assert_eq!(code(&body), "GRAPHQL_VALIDATION_FAILED", "{body}");
}

#[apply(backends)]
async fn a_batch_of_ten_runs_and_a_batch_of_eleven_runs_nothing(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let signup = |name: String| json!({ "query": SIGNUP, "variables": { "input": { "username": name, "email": format!("{name}@example.com"), "password": PASSWORD } } });
    let ten: Vec<Value> = (0..10).map(|i| signup(format!("batch{i}"))).collect();
    let (status, body) = server.post_json(None, &Value::Array(ten)).await;
    assert_eq!(status, 200);
    let results = body.as_array().unwrap();
    assert_eq!(results.len(), 10);
    assert!(
        results.iter().all(|r| r["data"]["signup"].is_object()),
        "{body}"
    );

    let eleven: Vec<Value> = (0..11).map(|i| signup(format!("over{i}"))).collect();
    let (status, body) = server.post_json(None, &Value::Array(eleven)).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["errors"][0]["message"].is_string(), "{body}");
    // None of the eleven ran.
    let body = server.login("over0", PASSWORD).await;
    assert_eq!(code(&body), "INVALID_CREDENTIALS", "{body}");
}

#[apply(backends)]
async fn bodies_over_64_kib_get_413_and_malformed_json_gets_400(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let client = reqwest::Client::new();
    let big = json!({ "query": "{ __typename }", "variables": { "pad": "x".repeat(70 * 1024) } });
    let response = client
        .post(server.url("/graphql"))
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);

    // Just under the limit is served.
    let fits = json!({ "query": "{ __typename }", "variables": { "pad": "x".repeat(60 * 1024) } });
    let (status, body) = server.post_json(None, &fits).await;
    assert_eq!(
        (status, &body["data"]["__typename"]),
        (200, &json!("Query"))
    );

    for bad in ["{not json", "", "[1, 2]", "{\"variables\": {}}", "[]"] {
        let response = client
            .post(server.url("/graphql"))
            .header("content-type", "application/json")
            .body(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 400, "{bad:?}");
        let body: Value = response.json().await.unwrap();
        assert!(body["errors"][0]["message"].is_string(), "{bad:?}: {body}");
    }

    // A body that is not declared as JSON is refused (no cross-site form posts).
    let response = client
        .post(server.url("/graphql"))
        .header("content-type", "text/plain")
        .body(r#"{"query":"{ __typename }"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 415);
}

#[apply(backends)]
async fn graphiql_and_the_health_check_answer(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let response = reqwest::Client::new()
        .get(server.url("/graphql"))
        .header("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(
        response
            .text()
            .await
            .unwrap()
            .to_lowercase()
            .contains("graphiql")
    );

    let response = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({ "status": "ok" })
    );
}

#[apply(backends)]
async fn internal_errors_show_nothing_internal(#[case] backend: Backend) {
    let Some(server) = TestServer::start_process(backend).await else {
        return;
    };
    let session = server.signup("trent").await;
    // Break the database under the running server: drop the table the guard reads.
    let db = sea_orm::Database::connect(server.database_url())
        .await
        .unwrap();
    use sea_orm::ConnectionTrait;
    db.execute_unprepared("DROP TABLE revocations")
        .await
        .unwrap();
    let body = server.me(&session.access).await;
    assert_eq!(code(&body), "INTERNAL_SERVER_ERROR", "{body}");
    let message = body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .to_lowercase();
    for leak in [
        "revocations",
        "sqlite",
        "postgres",
        "select",
        "no such table",
        "does not exist",
    ] {
        assert!(!message.contains(leak), "{message}");
    }
    // The cause is in the log, for the operator.
    let cause = match backend {
        Backend::Sqlite => "no such table: revocations",
        Backend::Postgres => "relation \"revocations\" does not exist",
    };
    assert!(server.logs_soon(cause).await, "{}", server.log_text());
}

#[apply(backends)]
async fn every_error_carries_a_code(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let cases = [
        (
            "query($t: String!) { verifyToken(token: $t) { valid } }",
            json!({}),
        ),
        (
            "query($t: String!) { verifyToken(token: $t) { valid } }",
            json!({ "t": 42 }),
        ),
        (
            "query($t: String!) { verifyToken(token: $t) { valid } }",
            json!({ "t": null }),
        ),
        (
            "query($f: Int) { users(first: $f) { totalCount } }",
            json!({ "f": "many" }),
        ),
        (
            "query($f: Int) { users(first: $f) { totalCount } }",
            json!({ "f": 1e20 }),
        ),
        (
            "mutation($r: Role!) { setRole(userId: \"x\", role: $r) { id } }",
            json!({ "r": "OWNER" }),
        ),
        (
            "mutation($i: SignupInput!) { signup(input: $i) { tokenType } }",
            json!({ "i": { "username": "x" } }),
        ),
        (
            "mutation { signup(input: {username: 1, email: 2, password: 3}) { tokenType } }",
            json!({}),
        ),
        ("{ me { id } } { me { id } }", json!({})),
        ("query A { me { id } } query B { me { id } }", json!({})),
        ("subscription { me { id } }", json!({})),
    ];
    for (query, variables) in cases {
        let body = server.gql(None, query, variables.clone()).await;
        let errors = body["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("{query}: {body}"));
        for error in errors {
            assert!(
                error["extensions"]["code"].is_string(),
                "{query} {variables}: {body}"
            );
        }
    }
}

//! The defects found when authgraph was attacked, one test each.

use serde_json::json;

use crate::helpers::*;

/// Opens `depth` levels of `open`, puts `inner` in the middle, closes them.
fn nest(open: &str, inner: &str, close: &str, depth: usize) -> String {
    format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
}

#[apply(backends)]
async fn deeply_nested_documents_are_refused_and_the_server_stays_up(#[case] backend: Backend) {
    let Some(mut server) = TestServer::start(backend).await else {
        return;
    };
    // 10,000 levels of the longer shapes would pass the 64 KiB body limit.
    for depth in [10_000, 3_000, 1_500] {
        let lists = nest("[", "1", "]", depth);
        let objects = nest("{a:", "1", "}", depth.min(8_000));
        let documents = [
            format!("{{ verifyToken(token: {lists}) {{ valid }} }}"),
            format!("{{ verifyToken(token: {objects}) {{ valid }} }}"),
            format!("{{ verifyToken(token: \"x\") @include(if: {lists}) {{ valid }} }}"),
            format!("query($v: String = {lists}) {{ verifyToken(token: \"x\") {{ valid }} }}"),
            format!("{{ verifyToken(token: \"x\", noSuchArgument: {objects}) {{ valid }} }}"),
            nest("{me", "{id}", "}", depth.min(8_000)),
            nest("{...on Query", "{__typename}", "}", depth.min(4_000)),
        ];
        for document in documents {
            let body = server.gql(None, &document, json!({})).await;
            assert_eq!(
                code(&body),
                "GRAPHQL_PARSE_FAILED",
                "{depth}: {}",
                &body.to_string()[..200.min(body.to_string().len())]
            );
            assert!(body["data"].is_null(), "nothing ran");
        }
    }
    assert!(server.is_running(), "the process is alive");
    let body = server.gql(None, "{ __typename }", json!({})).await;
    assert_eq!(body["data"]["__typename"], "Query", "{body}");
}

#[apply(backends)]
async fn brackets_inside_a_string_are_not_nesting(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let brackets = "[".repeat(1_000);
    let body = server
        .gql(
            None,
            &format!("{{ verifyToken(token: \"{brackets}\") {{ valid reason }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(
        body["data"]["verifyToken"],
        json!({ "valid": false, "reason": "invalid" }),
        "{body}"
    );
    let body = server
        .gql(
            None,
            &format!("# {brackets}\n{{ verifyToken(token: \"\"\"{brackets}\"\"\") {{ valid }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(body["data"]["verifyToken"]["valid"], false, "{body}");
}

#[apply(backends)]
async fn deeply_nested_json_variables_are_refused_and_the_server_stays_up(
    #[case] backend: Backend,
) {
    let Some(mut server) = TestServer::start(backend).await else {
        return;
    };
    let client = reqwest::Client::new();
    for depth in [200, 1_500, 10_000] {
        for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
            let value = nest(open, "1", close, depth);
            let body = format!(
                "{{\"query\": \"query($t: String!) {{ verifyToken(token: $t) {{ valid }} }}\", \"variables\": {{\"t\": {value}}}}}"
            );
            let response = client
                .post(server.url("/graphql"))
                .header("Content-Type", "application/json")
                .body(body)
                .send()
                .await
                .expect("an answer");
            let status = response.status().as_u16();
            assert!((400..500).contains(&status), "{depth}: {status}");
        }
    }
    assert!(server.is_running());
}

#[apply(backends)]
async fn aliased_typenames_count_toward_the_field_limit(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let typenames = |n: usize| -> String { (0..n).map(|i| format!("t{i}: __typename ")).collect() };
    let body = server
        .gql(None, &format!("{{ {} }}", typenames(3_000)), json!({}))
        .await;
    assert_eq!(
        code(&body),
        "GRAPHQL_VALIDATION_FAILED",
        "{}",
        &body.to_string()[..200]
    );
    assert!(body["data"].is_null());
    // Through a fragment spread ten times, too.
    let body = server
        .gql(
            None,
            &format!(
                "{{ {} }} fragment F on Query {{ {} }}",
                "...F ".repeat(10),
                typenames(60)
            ),
            json!({}),
        )
        .await;
    assert_eq!(code(&body), "GRAPHQL_VALIDATION_FAILED", "{body}");
    let body = server
        .gql(None, &format!("{{ {} }}", typenames(400)), json!({}))
        .await;
    assert!(body.get("errors").is_none(), "400 are fine");
    assert_eq!(body["data"]["t399"], "Query");
}

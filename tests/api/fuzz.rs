//! Property-based attacks on the HTTP endpoint of a real server: arbitrary
//! bytes, arbitrary nested JSON and arbitrary GraphQL-ish text, nested up to
//! 10,000 levels. Whatever comes in: never a 5xx, never a dead process.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::json;

use crate::helpers::*;

/// Cases per property and backend (PROPTEST_CASES overrides).
const CASES: u32 = 96;

/// How deep a generated value nests: mostly shallow, often past every limit.
fn depth() -> impl Strategy<Value = usize> {
    prop_oneof![0usize..64, 64usize..2_000, 2_000usize..=10_000]
}

/// The levels of a nested GraphQL value or selection, as (open, close).
const GRAPHQL_LEVELS: [(&str, &str); 5] = [
    ("[", "]"),
    ("{a:", "}"),
    ("{f", "}"),
    ("f(a:", ")"),
    ("{...on Query", "}"),
];

/// Nesting of `levels` (cycled) `depth` deep around `inner`.
fn nested(levels: &[(&str, &str)], kinds: &[usize], depth: usize, inner: &str) -> String {
    let mut open = String::new();
    let mut close = Vec::with_capacity(depth);
    for i in 0..depth {
        let (o, c) = levels[kinds[i % kinds.len()] % levels.len()];
        open.push_str(o);
        close.push(c);
    }
    close.reverse();
    format!("{open}{inner}{}", close.concat())
}

/// A document with a deeply nested part where an attacker would put it.
fn nested_graphql() -> impl Strategy<Value = String> {
    let places = [
        "{ verifyToken(token: X) { valid } }",
        "query($v: [String] = X) { __typename }",
        "{ __typename @include(if: X) }",
        "{ verifyToken(token: \"t\", unknown: X) { valid } }",
        "X",
    ];
    (
        depth(),
        prop::collection::vec(0usize..GRAPHQL_LEVELS.len(), 1..6),
        prop::sample::select(places.to_vec()),
    )
        .prop_map(move |(depth, kinds, place)| {
            // Keep within the body limit: the longest level is 13 bytes.
            let depth = depth.min(60_000 / 14);
            place.replace("X", &nested(&GRAPHQL_LEVELS, &kinds, depth, "1"))
        })
}

/// Arbitrary tokens of GraphQL's grammar, and some of nobody's.
fn graphql_ish() -> impl Strategy<Value = String> {
    let vocabulary = vec![
        "{",
        "}",
        "[",
        "]",
        "(",
        ")",
        ":",
        "=",
        "!",
        "|",
        "&",
        ",",
        "...",
        "@include",
        "@skip",
        "$v",
        "query",
        "mutation",
        "subscription",
        "fragment",
        "F",
        "on",
        "Query",
        "Mutation",
        "me",
        "id",
        "__typename",
        "__schema",
        "verifyToken",
        "token",
        "login",
        "signup",
        "input",
        "String",
        "\"s\"",
        "\"[[[[\"",
        "\"\"\"",
        "\"",
        "\\",
        "#",
        "\n",
        "1",
        "-1.5e3",
        "true",
        "null",
        "if",
        "\u{0}",
        "\u{feff}",
        "é",
    ];
    prop::collection::vec(prop::sample::select(vocabulary), 0..4_000)
        .prop_map(|tokens| tokens.join(" "))
}

/// JSON nested `depth` deep, arrays and objects in any mix.
fn nested_json() -> impl Strategy<Value = String> {
    const LEVELS: [(&str, &str); 3] = [("[", "]"), ("{\"a\":", "}"), ("[1,", "]")];
    (depth(), prop::collection::vec(0usize..3, 1..4), 0usize..4).prop_map(
        |(depth, kinds, place)| {
            let value = nested(&LEVELS, &kinds, depth.min(60_000 / 6), "\"x\"");
            let query = "query($t: String!) { verifyToken(token: $t) { valid } }";
            match place {
                0 => value,
                1 => format!("{{\"query\": \"{query}\", \"variables\": {value}}}"),
                2 => format!("{{\"query\": \"{query}\", \"variables\": {{\"t\": {value}}}}}"),
                _ => format!("{{\"query\": \"{{ __typename }}\", \"extensions\": {value}}}"),
            }
        },
    )
}

/// POSTs each generated body to the server; fails on a 5xx or no answer.
fn attack<S: Strategy>(server: &TestServer, strategy: S, body: impl Fn(S::Value) -> Vec<u8>) {
    let handle = tokio::runtime::Handle::current();
    let client = reqwest::Client::new();
    let config = Config {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(CASES),
        failure_persistence: None,
        max_shrink_iters: 64,
        ..Config::default()
    };
    let result = tokio::task::block_in_place(|| {
        TestRunner::new(config).run(&strategy, |value| {
            let body = body(value);
            let status = handle.block_on(async {
                client
                    .post(server.url("/graphql"))
                    .header("Content-Type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            });
            match status {
                Ok(status) if status < 500 => Ok(()),
                Ok(status) => Err(TestCaseError::fail(format!(
                    "{status} for a body of {} bytes",
                    body.len()
                ))),
                Err(err) => Err(TestCaseError::fail(format!(
                    "no answer ({err}) for a body of {} bytes",
                    body.len()
                ))),
            }
        })
    });
    if let Err(err) = result {
        panic!("{err}");
    }
}

/// After the attack: alive, and still serving what clients really send.
async fn still_serves(server: &mut TestServer) {
    assert!(server.is_running(), "the process is alive");
    let introspection = include_str!("introspection.graphql");
    let body = server.gql(None, introspection, json!({})).await;
    assert!(body["data"]["__schema"].is_object(), "{body}");
    let brackets = "[".repeat(1_000);
    let body = server
        .gql(
            None,
            "query($t: String!) { verifyToken(token: $t) { valid } }",
            json!({ "t": brackets }),
        )
        .await;
    assert_eq!(body["data"]["verifyToken"]["valid"], false, "{body}");
}

macro_rules! property {
    ($name:ident, $strategy:expr, $body:expr) => {
        #[rstest]
        #[case::sqlite(Backend::Sqlite)]
        #[case::postgres(Backend::Postgres)]
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name(#[case] backend: Backend) {
            let Some(mut server) = TestServer::start_process(backend).await else {
                return;
            };
            attack(&server, $strategy, $body);
            still_serves(&mut server).await;
        }
    };
}

property!(
    arbitrary_bytes_never_get_a_5xx,
    prop::collection::vec(any::<u8>(), 0..4_096),
    |bytes: Vec<u8>| bytes
);

property!(
    deeply_nested_documents_never_get_a_5xx,
    nested_graphql(),
    |query: String| json!({ "query": query }).to_string().into_bytes()
);

property!(
    graphql_ish_text_never_gets_a_5xx,
    graphql_ish(),
    |query: String| json!({ "query": query, "variables": { "v": "x" } })
        .to_string()
        .into_bytes()
);

property!(
    deeply_nested_json_never_gets_a_5xx,
    nested_json(),
    String::into_bytes
);

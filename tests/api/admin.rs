use std::collections::HashSet;

use serde_json::{Value, json};

use crate::helpers::*;

const USERS: &str = "query($first: Int, $after: String) { users(first: $first, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id username role } } } }";
const SET_ROLE: &str =
    "mutation($id: ID!, $role: Role!) { setRole(userId: $id, role: $role) { id username role } }";

/// `setRole` as `by`.
async fn set_role(server: &TestServer, by: &Session, user_id: &str, role: &str) -> Value {
    server
        .gql(
            Some(&by.access),
            SET_ROLE,
            json!({ "id": user_id, "role": role }),
        )
        .await
}

#[apply(backends)]
async fn a_user_gets_forbidden_from_every_admin_field(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let user = server.signup("plain").await;
    let body = server.gql(Some(&user.access), USERS, json!({})).await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    let body = set_role(&server, &user, &user.user_id, "ADMIN").await;
    assert_eq!(
        code(&body),
        "FORBIDDEN",
        "a user can't promote themself: {body}"
    );
    assert_eq!(server.me(&user.access).await["data"]["me"]["role"], "USER");
}

#[apply(backends)]
async fn promote_makes_an_admin_and_refuses_an_unknown_user(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let session = server.signup("Amelia").await;
    let output = server.cli(&["promote", "amelia@example.com"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        printed.contains("Amelia")
            && printed.contains("ADMIN")
            && printed.contains(&session.user_id),
        "{printed}"
    );
    // Effective at once on the running server, with the token issued before.
    assert_eq!(
        server.me(&session.access).await["data"]["me"]["role"],
        "ADMIN"
    );

    let output = server.cli(&["promote", "nobody-here"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("nobody-here"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[apply(backends)]
async fn a_role_change_takes_effect_on_the_next_request(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let admin = server.admin("boss").await;
    let user = server.signup("worker").await;
    let body = set_role(&server, &admin, &user.user_id, "ADMIN").await;
    assert_eq!(body["data"]["setRole"]["role"], "ADMIN", "{body}");
    // The worker's existing token now opens admin fields...
    let body = server.gql(Some(&user.access), USERS, json!({})).await;
    assert_eq!(body["data"]["users"]["totalCount"], 2, "{body}");
    // ...and stops doing so once demoted.
    set_role(&server, &admin, &user.user_id, "USER").await;
    assert_eq!(
        code(&server.gql(Some(&user.access), USERS, json!({})).await),
        "FORBIDDEN"
    );
}

#[apply(backends)]
async fn the_last_admin_cannot_demote_themself(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let admin = server.admin("only").await;
    let body = set_role(&server, &admin, &admin.user_id, "USER").await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    assert_eq!(
        server.me(&admin.access).await["data"]["me"]["role"],
        "ADMIN"
    );

    // With a second admin, stepping down works.
    let second = server.admin("second").await;
    let body = set_role(&server, &admin, &admin.user_id, "USER").await;
    assert_eq!(body["data"]["setRole"]["role"], "USER", "{body}");
    // And now the second is the last.
    let body = set_role(&server, &second, &second.user_id, "USER").await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
}

#[apply(backends)]
async fn two_admins_demoting_themselves_at_once_leave_one_admin(#[case] backend: Backend) {
    for round in 0..5 {
        let Some(server) = TestServer::start(backend).await else {
            return;
        };
        let a = server.admin("first").await;
        let b = server.admin("second").await;
        let (ra, rb) = tokio::join!(
            set_role(&server, &a, &a.user_id, "USER"),
            set_role(&server, &b, &b.user_id, "USER"),
        );
        let outcomes =
            [&ra, &rb].map(|r| (r["data"]["setRole"]["role"].as_str().unwrap_or(""), code(r)));
        let mut sorted = outcomes;
        sorted.sort();
        assert_eq!(
            sorted,
            [("", "FORBIDDEN"), ("USER", "")],
            "round {round}: {ra} {rb}"
        );
        let kept = if outcomes[0].1 == "FORBIDDEN" { &a } else { &b };
        assert_eq!(server.me(&kept.access).await["data"]["me"]["role"], "ADMIN");
    }
}

#[apply(backends)]
async fn paging_through_250_users_has_no_duplicate_and_no_gap(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let admin = server.admin("pager").await;
    let mut expected: HashSet<String> = HashSet::from([admin.user_id.clone()]);
    for batch in 0..25 {
        let ops: Vec<Value> = (0..10)
            .map(|i| {
                let name = format!("user{batch:02}{i}");
                json!({ "query": SIGNUP, "variables": { "input": { "username": name, "email": format!("{name}@example.com"), "password": PASSWORD } } })
            })
            .collect();
        let (_, body) = server.post_json(None, &Value::Array(ops)).await;
        for result in body.as_array().unwrap() {
            expected.insert(
                result["data"]["signup"]["user"]["id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
    }
    assert_eq!(expected.len(), 251);

    // The default page is 20.
    let body = server.gql(Some(&admin.access), USERS, json!({})).await;
    assert_eq!(
        body["data"]["users"]["edges"].as_array().unwrap().len(),
        20,
        "{body}"
    );

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let body = server
            .gql(
                Some(&admin.access),
                USERS,
                json!({ "first": 37, "after": after }),
            )
            .await;
        let page = &body["data"]["users"];
        assert_eq!(page["totalCount"], 251, "{body}");
        let edges = page["edges"].as_array().unwrap();
        for edge in edges {
            seen.push(edge["node"]["id"].as_str().unwrap().to_owned());
        }
        pages += 1;
        if page["pageInfo"]["hasNextPage"] == false {
            assert_eq!(
                page["pageInfo"]["endCursor"],
                edges.last().unwrap()["cursor"]
            );
            break;
        }
        after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(pages, 7, "251 users in pages of 37");
    let unique: HashSet<String> = seen.iter().cloned().collect();
    assert_eq!(seen.len(), 251, "no duplicate");
    assert_eq!(unique, expected, "no gap");
    // Oldest first: the admin signed up before everyone else.
    assert_eq!(seen[0], admin.user_id);
}

#[apply(backends)]
async fn users_refuses_a_bad_first_or_after_naming_the_argument(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let admin = server.admin("strict").await;
    for (vars, field) in [
        (json!({ "first": 0 }), "first"),
        (json!({ "first": 101 }), "first"),
        (json!({ "first": -5 }), "first"),
        (json!({ "after": "garbage" }), "after"),
        (json!({ "after": admin.user_id }), "after"),
    ] {
        let body = server.gql(Some(&admin.access), USERS, vars.clone()).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{vars}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], field, "{body}");
    }
    let body = server
        .gql(Some(&admin.access), USERS, json!({ "first": 100 }))
        .await;
    assert!(body["data"]["users"].is_object(), "{body}");
    let body = server
        .gql(
            Some(&admin.access),
            SET_ROLE,
            json!({ "id": uuid::Uuid::new_v4(), "role": "ADMIN" }),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(body["errors"][0]["extensions"]["field"], "userId");
}

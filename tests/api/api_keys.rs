//! API keys: created with the password again, used as `Token <key>` or
//! `Bearer <key>`, listed without their secret, revoked at once (on every
//! server), expiring, capped, kept out of credential and role management.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};

use crate::helpers::*;

const CREATE: &str = "mutation($n: String!, $p: String!, $d: Int) { createApiKey(name: $n, password: $p, expiresInDays: $d) { key apiKey { id name prefix createdAt lastUsedAt expiresAt } } }";
const LIST: &str = "{ apiKeys { id name prefix createdAt lastUsedAt expiresAt } }";
const REVOKE: &str = "mutation($id: ID!) { revokeApiKey(id: $id) }";
const ME: &str = "{ me { username } }";

/// A key made by `session`'s user: the key and its id.
pub async fn create_key(server: &TestServer, session: &Session, name: &str) -> (String, String) {
    let body = server
        .gql(
            Some(&session.access),
            CREATE,
            json!({ "n": name, "p": PASSWORD }),
        )
        .await;
    let made = &body["data"]["createApiKey"];
    assert!(made.is_object(), "{body}");
    (
        made["key"].as_str().unwrap().to_owned(),
        made["apiKey"]["id"].as_str().unwrap().to_owned(),
    )
}

/// A listed key's lifetime, in days (its expiry is kept in whole seconds).
fn lifetime_days(api_key: &Value) -> f64 {
    let at = |field: &str| {
        chrono::DateTime::parse_from_rfc3339(api_key[field].as_str().expect(field)).expect(field)
    };
    let seconds = (at("expiresAt") - at("createdAt")).num_milliseconds() as f64 / 1000.0;
    (seconds / 86_400.0 * 1000.0).round() / 1000.0
}

fn is_key_shaped(key: &str) -> bool {
    let parts: Vec<&str> = key.splitn(3, '_').collect();
    parts.len() == 3
        && parts[0] == "ag"
        && parts[1].len() == 8
        && parts[1]
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && parts[2].len() == 43
        && parts[2].bytes().all(|b| b.is_ascii_alphanumeric())
}

#[apply(backends)]
async fn a_key_is_made_with_the_password_and_opens_me_with_either_scheme(#[case] backend: Backend) {
    let Some(server) = TestServer::start_with(backend, &[("LOGIN_FAILURES_PER_HOUR", "3")]).await
    else {
        return;
    };
    let session = server.signup("scripter").await;

    // A wrong password: refused, and counted like a failed login.
    for _ in 0..2 {
        let body = server
            .gql(
                Some(&session.access),
                CREATE,
                json!({ "n": "ci", "p": "not the password" }),
            )
            .await;
        assert_eq!(code(&body), "INVALID_CREDENTIALS", "{body}");
    }
    let body = server
        .gql(
            Some(&session.access),
            CREATE,
            json!({ "n": "nightly export", "p": PASSWORD, "d": 30 }),
        )
        .await;
    let made = &body["data"]["createApiKey"];
    let key = made["key"].as_str().expect("a key").to_owned();
    assert!(is_key_shaped(&key), "{key}");
    let api_key = &made["apiKey"];
    assert_eq!(api_key["name"], "nightly export");
    assert_eq!(api_key["prefix"].as_str().unwrap(), &key[3..11]);
    assert!(api_key["lastUsedAt"].is_null());
    assert_eq!(lifetime_days(api_key), 30.0);
    // The right password counted as no failure: two failures, one left.
    let body = server.login("scripter", "not the password").await;
    assert_eq!(code(&body), "INVALID_CREDENTIALS", "{body}");
    let body = server.login("scripter", PASSWORD).await;
    assert_eq!(
        code(&body),
        "TOO_MANY_REQUESTS",
        "three failures counted: {body}"
    );

    for scheme in ["Token", "Bearer", "token"] {
        let body = server.gql_with_header(&format!("{scheme} {key}"), ME).await;
        assert_eq!(
            body["data"]["me"]["username"], "scripter",
            "{scheme}: {body}"
        );
    }
    let info = server.verify(&key).await;
    assert_eq!(info["valid"], true, "{info}");
    assert_eq!(info["tokenType"], "api_key");
    assert_eq!(info["userId"], session.user_id.as_str());
    assert_eq!(info["expiresAt"], api_key["expiresAt"]);

    // Listed, never with its secret; its use noted.
    let mut listed = Value::Null;
    for _ in 0..50 {
        listed = server.gql(Some(&session.access), LIST, json!({})).await;
        if !listed["data"]["apiKeys"][0]["lastUsedAt"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let keys = listed["data"]["apiKeys"].as_array().expect("a list");
    assert_eq!(keys.len(), 1, "{listed}");
    assert_eq!(keys[0]["id"], api_key["id"]);
    assert!(!keys[0]["lastUsedAt"].is_null(), "use noted: {listed}");
    assert!(
        !listed.to_string().contains(&key[12..]),
        "no secret in: {listed}"
    );
    let by_key = server.gql_with_header(&format!("Token {key}"), LIST).await;
    assert_eq!(by_key["data"]["apiKeys"], listed["data"]["apiKeys"]);
    assert!(!by_key.to_string().contains(&key[12..]));
}

#[apply(backends)]
async fn bad_input_to_create_names_the_field(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let session = server.signup("careful").await;
    for (variables, field) in [
        (json!({ "n": "  ", "p": PASSWORD }), "name"),
        (json!({ "n": "x".repeat(65), "p": PASSWORD }), "name"),
        (json!({ "n": "ok", "p": PASSWORD, "d": 0 }), "expiresInDays"),
        (
            json!({ "n": "ok", "p": PASSWORD, "d": 366 }),
            "expiresInDays",
        ),
    ] {
        let body = server
            .gql(Some(&session.access), CREATE, variables.clone())
            .await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{variables}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], field);
    }
    // Left out (or null), the lifetime is 90 days.
    let body = server
        .gql(
            Some(&session.access),
            CREATE,
            json!({ "n": "ok", "p": PASSWORD, "d": null }),
        )
        .await;
    let made = &body["data"]["createApiKey"]["apiKey"];
    assert_eq!(lifetime_days(made), 90.0, "{body}");
    // No access token, no key.
    let body = server
        .gql(None, CREATE, json!({ "n": "ok", "p": PASSWORD }))
        .await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
}

#[apply(backends)]
async fn garbage_a_jwt_under_token_and_near_miss_keys_are_all_invalid(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let session = server.signup("prober").await;
    let (key, _) = create_key(&server, &session, "real").await;
    let mut near_misses = vec![
        // The right prefix, another secret.
        format!("{}{}", &key[..12], "A".repeat(43)),
        // One character of the secret changed.
        format!(
            "{}{}",
            &key[..key.len() - 1],
            if key.ends_with('a') { 'b' } else { 'a' }
        ),
        // Too short, too long, the prefix in capitals.
        key[..key.len() - 1].to_owned(),
        format!("{key}a"),
        format!("ag_{}{}", key[3..11].to_uppercase(), &key[11..]),
        "ag_".to_owned(),
        "ag_garbage".to_owned(),
    ];
    near_misses.retain(|candidate| *candidate != key);
    let mut headers: Vec<String> = near_misses
        .iter()
        .flat_map(|bad| [format!("Token {bad}"), format!("Bearer {bad}")])
        .collect();
    headers.push(format!("Token {}", session.access));
    headers.push("Token garbage".to_owned());
    headers.push(format!("Token {key} extra"));
    for header in &headers {
        let body = server.gql_with_header(header, ME).await;
        assert_eq!(code(&body), "UNAUTHENTICATED", "{header}: {body}");
        assert_eq!(reason(&body), "invalid", "{header}: {body}");
    }
    for bad in &near_misses {
        let info = server.verify(bad).await;
        assert_eq!(info["valid"], false, "{bad}");
        assert_eq!(info["reason"], "invalid", "{bad}");
    }
    // The real key still works.
    let body = server.gql_with_header(&format!("Token {key}"), ME).await;
    assert_eq!(body["data"]["me"]["username"], "prober");
}

#[apply(backends)]
async fn a_revoked_key_is_refused_at_once_and_a_stranger_can_not_revoke_it(
    #[case] backend: Backend,
) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let owner = server.signup("owner").await;
    let stranger = server.signup("stranger").await;
    let (key, id) = create_key(&server, &owner, "to revoke").await;
    for (who, target) in [
        (&stranger, id.as_str()),
        (&owner, "not-a-uuid"),
        (&owner, "00000000-0000-0000-0000-000000000000"),
    ] {
        let body = server
            .gql(Some(&who.access), REVOKE, json!({ "id": target }))
            .await;
        assert_eq!(code(&body), "FORBIDDEN", "{target}: {body}");
    }
    let body = server
        .gql(Some(&owner.access), REVOKE, json!({ "id": id }))
        .await;
    assert_eq!(body["data"]["revokeApiKey"], true, "{body}");
    let body = server.gql_with_header(&format!("Token {key}"), ME).await;
    assert_eq!(reason(&body), "revoked", "{body}");
    let info = server.verify(&key).await;
    assert_eq!(
        (info["valid"].clone(), info["reason"].clone()),
        (json!(false), json!("revoked"))
    );
    assert_eq!(info["tokenType"], "api_key");
    let body = server.gql(Some(&owner.access), LIST, json!({})).await;
    assert_eq!(
        body["data"]["apiKeys"],
        json!([]),
        "revoked keys are not listed"
    );
    let body = server
        .gql(Some(&owner.access), REVOKE, json!({ "id": id }))
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "revoked already: {body}");
}

#[tokio::test]
async fn a_key_revoked_on_one_server_is_refused_by_another_at_once() {
    let Some(database) = TestDatabase::fresh().await else {
        return;
    };
    let database = Arc::new(database);
    let shared = [("JWT_SECRET", "a-secret-the-two-servers-share-0123456789")];
    let one = TestServer::start_on(Some(database.clone()), &shared);
    let two = TestServer::start_on(Some(database), &shared);
    let session = one.signup("roamer").await;
    let (key, id) = create_key(&one, &session, "shared").await;
    let body = two.gql_with_header(&format!("Token {key}"), ME).await;
    assert_eq!(body["data"]["me"]["username"], "roamer", "{body}");
    let body = one
        .gql(Some(&session.access), REVOKE, json!({ "id": id }))
        .await;
    assert_eq!(body["data"]["revokeApiKey"], true, "{body}");
    let body = two.gql_with_header(&format!("Token {key}"), ME).await;
    assert_eq!(
        reason(&body),
        "revoked",
        "the next request on the other server: {body}"
    );
}

#[apply(backends)]
async fn an_expired_key_is_expired(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let session = server.signup("shortlived").await;
    let body = server
        .gql(
            Some(&session.access),
            CREATE,
            json!({ "n": "one day", "p": PASSWORD, "d": 1 }),
        )
        .await;
    let key = body["data"]["createApiKey"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = body["data"]["createApiKey"]["apiKey"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        server.gql_with_header(&format!("Token {key}"), ME).await["data"]["me"]["username"],
        "shortlived"
    );
    // A day passes: the row's expiry is moved to a second ago.
    let db = server.db().await;
    let backend = db.get_database_backend();
    let now = chrono::Utc::now().timestamp();
    let sql = match backend {
        DbBackend::Postgres => "UPDATE api_keys SET expires_at = $1 WHERE id = $2",
        _ => "UPDATE api_keys SET expires_at = ? WHERE id = ?",
    };
    let uuid = uuid::Uuid::parse_str(&id).unwrap();
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        sql,
        [(now - 1).into(), uuid.into()],
    ))
    .await
    .unwrap();
    let body = server.gql_with_header(&format!("Token {key}"), ME).await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    assert_eq!(reason(&body), "expired", "{body}");
    let info = server.verify(&key).await;
    assert_eq!(info["reason"], "expired", "{info}");
    // An expired key leaves room under the cap.
}

#[apply(backends)]
async fn twenty_live_keys_at_most(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let session = server.signup("hoarder").await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(create_key(&server, &session, &format!("key {i}")).await.1);
    }
    let body = server
        .gql(
            Some(&session.access),
            CREATE,
            json!({ "n": "21st", "p": PASSWORD }),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    assert_eq!(
        server.gql(Some(&session.access), LIST, json!({})).await["data"]["apiKeys"]
            .as_array()
            .unwrap()
            .len(),
        20
    );
    let body = server
        .gql(Some(&session.access), REVOKE, json!({ "id": ids[0] }))
        .await;
    assert_eq!(body["data"]["revokeApiKey"], true);
    create_key(&server, &session, "in its place").await;
}

#[apply(backends)]
async fn a_key_may_not_manage_credentials_or_roles(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let admin = server.admin("keyadmin").await;
    let other = server.signup("bystander").await;
    let (key, own_id) = create_key(&server, &admin, "admin script").await;
    let (_, sibling_id) = create_key(&server, &admin, "sibling").await;
    let header = format!("Token {key}");
    let forbidden: [(&str, &str, Value); 6] = [
        (
            "createApiKey",
            CREATE,
            json!({ "n": "more", "p": PASSWORD }),
        ),
        (
            "changePassword",
            "mutation($o: String!, $n: String!) { changePassword(currentPassword: $o, newPassword: $n) }",
            json!({ "o": PASSWORD, "n": "a brand new passphrase" }),
        ),
        ("logoutAll", "mutation { logoutAll }", json!({})),
        (
            "revokeSession",
            "mutation($id: ID!) { revokeSession(id: $id) }",
            json!({ "id": claims(&admin.access)["sid"] }),
        ),
        (
            "setRole",
            "mutation($id: ID!) { setRole(userId: $id, role: ADMIN) { role } }",
            json!({ "id": other.user_id }),
        ),
        ("revokeApiKey", REVOKE, json!({ "id": sibling_id })),
    ];
    for (field, query, variables) in forbidden {
        let body = server.gql_as(&header, query, variables).await;
        assert_eq!(code(&body), "FORBIDDEN", "{field}: {body}");
    }
    // Nothing of that happened: the session lives, the password and the
    // bystander's role are as they were, the sibling key works.
    assert_eq!(
        server.me(&admin.access).await["data"]["me"]["username"],
        "keyadmin"
    );
    Session::from_payload(&server.login("keyadmin", PASSWORD).await, "login");
    let body = server.gql(Some(&admin.access), LIST, json!({})).await;
    assert_eq!(
        body["data"]["apiKeys"].as_array().unwrap().len(),
        2,
        "{body}"
    );

    // What a key may do: me, sessions (none current), the admin reads.
    let body = server
        .gql_with_header(&header, "{ sessions { id current } }")
        .await;
    let sessions = body["data"]["sessions"].as_array().expect("sessions");
    assert!(!sessions.is_empty(), "{body}");
    assert!(sessions.iter().all(|s| s["current"] == false), "{body}");
    let body = server
        .gql_with_header(&header, "{ users { totalCount } }")
        .await;
    assert_eq!(body["data"]["users"]["totalCount"], 2, "{body}");
    // And revoke itself.
    let body = server
        .gql_as(&header, REVOKE, json!({ "id": own_id }))
        .await;
    assert_eq!(body["data"]["revokeApiKey"], true, "{body}");
    assert_eq!(
        reason(&server.gql_with_header(&header, ME).await),
        "revoked"
    );
}

#[apply(backends)]
async fn a_demoted_admin_s_key_loses_the_admin_reads_at_once(#[case] backend: Backend) {
    let Some(server) = TestServer::start_process(backend).await else {
        return;
    };
    let first = server.admin("first").await;
    let second = server.admin("second").await;
    let (key, _) = create_key(&server, &second, "reports").await;
    let header = format!("Token {key}");
    let body = server
        .gql_with_header(&header, "{ users { totalCount } }")
        .await;
    assert_eq!(body["data"]["users"]["totalCount"], 2, "{body}");
    let body = server
        .gql(
            Some(&first.access),
            "mutation($id: ID!) { setRole(userId: $id, role: USER) { role } }",
            json!({ "id": second.user_id }),
        )
        .await;
    assert_eq!(body["data"]["setRole"]["role"], "USER", "{body}");
    let body = server
        .gql_with_header(&header, "{ users { totalCount } }")
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    assert_eq!(
        server.gql_with_header(&header, ME).await["data"]["me"]["username"],
        "second"
    );
}

#[apply(backends)]
async fn logout_all_and_change_password_leave_keys_alone(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let session = server.signup("keeper").await;
    let (key, _) = create_key(&server, &session, "survivor").await;
    let body = server
        .gql(
            Some(&session.access),
            "mutation($o: String!, $n: String!) { changePassword(currentPassword: $o, newPassword: $n) }",
            json!({ "o": PASSWORD, "n": "a brand new passphrase" }),
        )
        .await;
    assert_eq!(body["data"]["changePassword"], true, "{body}");
    let body = server
        .gql(Some(&session.access), "mutation { logoutAll }", json!({}))
        .await;
    assert!(body["data"]["logoutAll"].as_i64().unwrap() >= 1, "{body}");
    assert_eq!(reason(&server.me(&session.access).await), "revoked");
    let body = server.gql_with_header(&format!("Token {key}"), ME).await;
    assert_eq!(body["data"]["me"]["username"], "keeper", "{body}");
}

/// A counter of `last_used_at` writes, kept by a trigger in the database.
async fn count_touches(db: &sea_orm::DatabaseConnection) {
    let statements: &[&str] = match db.get_database_backend() {
        DbBackend::Postgres => &[
            "CREATE TABLE touches (n INT NOT NULL)",
            "INSERT INTO touches VALUES (0)",
            "CREATE FUNCTION count_touch() RETURNS trigger AS $$ \
             BEGIN UPDATE touches SET n = n + 1; RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER count_touch AFTER UPDATE OF last_used_at ON api_keys \
             FOR EACH ROW EXECUTE FUNCTION count_touch()",
        ],
        _ => &[
            "CREATE TABLE touches (n INTEGER NOT NULL)",
            "INSERT INTO touches VALUES (0)",
            "CREATE TRIGGER count_touch AFTER UPDATE OF last_used_at ON api_keys \
             BEGIN UPDATE touches SET n = n + 1; END",
        ],
    };
    for sql in statements {
        db.execute_unprepared(sql).await.unwrap();
    }
}

async fn touches(db: &sea_orm::DatabaseConnection) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT CAST(n AS BIGINT) AS n FROM touches",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

#[apply(backends)]
async fn last_used_at_is_written_at_most_once_a_minute_under_load(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let session = server.signup("busy").await;
    let (key, _) = create_key(&server, &session, "hammered").await;
    let db = server.db().await;
    count_touches(&db).await;
    let header = format!("Token {key}");
    let burst = || futures::future::join_all((0..100).map(|_| server.gql_with_header(&header, ME)));
    for body in burst().await {
        assert_eq!(body["data"]["me"]["username"], "busy", "{body}");
    }
    // The write is off the request's path: give it a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(touches(&db).await, 1, "100 uses, one write");
    burst().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        touches(&db).await,
        1,
        "200 uses within the minute, one write"
    );

    // A minute passes: the last use is moved 61 s back (a write of its own).
    db.execute_unprepared("UPDATE api_keys SET last_used_at = last_used_at - 61")
        .await
        .unwrap();
    assert_eq!(touches(&db).await, 2);
    burst().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        touches(&db).await,
        3,
        "the next minute's uses: one more write"
    );
}

#[apply(backends)]
async fn a_password_reset_revokes_every_key(#[case] backend: Backend) {
    use crate::mail::{SmtpSink, mail_server, reset_by_mail};
    let Some(sink) = SmtpSink::start(None) else {
        return;
    };
    let Some(server) = mail_server(backend, &sink, &[]).await else {
        return;
    };
    let session = server.signup("forgetful").await;
    let (one, _) = create_key(&server, &session, "one").await;
    let (two, _) = create_key(&server, &session, "two").await;
    reset_by_mail(&server, &sink, "forgetful", "a brand new passphrase").await;
    for key in [&one, &two] {
        let body = server.gql_with_header(&format!("Token {key}"), ME).await;
        assert_eq!(reason(&body), "revoked", "{body}");
    }
    let again = Session::from_payload(
        &server.login("forgetful", "a brand new passphrase").await,
        "login",
    );
    let body = server.gql(Some(&again.access), LIST, json!({})).await;
    assert_eq!(body["data"]["apiKeys"], json!([]), "{body}");
}

/// Each refusal speaks to the caller it refuses: a key's holder has no
/// login to repeat, and a signed-in caller typed no username.
#[apply(backends)]
async fn refusals_are_worded_for_who_is_refused(#[case] backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let session = server.signup("worded").await;
    let change = "mutation($p: String!) { changePassword(currentPassword: $p, newPassword: \"a brand new passphrase\") }";
    for (query, variables) in [
        (CREATE, json!({ "n": "ci", "p": "not the password" })),
        (change, json!({ "p": "not the password" })),
    ] {
        let body = server.gql(Some(&session.access), query, variables).await;
        assert_eq!(code(&body), "INVALID_CREDENTIALS", "{body}");
        assert_eq!(
            body["errors"][0]["message"],
            "That is not your password: try again"
        );
    }

    let (key, id) = create_key(&server, &session, "ci").await;
    let body = server
        .gql(Some(&session.access), REVOKE, json!({ "id": id }))
        .await;
    assert_eq!(body["data"]["revokeApiKey"], true, "{body}");
    let body = server
        .gql_with_header(&format!("Token {key}"), "{ me { id } }")
        .await;
    assert_eq!(reason(&body), "revoked", "{body}");
    assert_eq!(
        body["errors"][0]["message"],
        "This API key was revoked: make a new one"
    );
}

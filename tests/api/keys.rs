//! Tokens other services verify: the asymmetric algorithms, the JWKS and
//! discovery documents, `kid` selection and algorithm confusion, the
//! `keys` commands, and key rotation across two servers.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::helpers::*;

const SECRET: &str = "keys-test-secret-keys-test-secret-0123";

fn run(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    base_command(dir)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run authgraph")
}

async fn get(server: &TestServer, path: &str) -> (u16, Option<String>, Value) {
    let response = reqwest::get(server.url(path)).await.expect("request");
    let status = response.status().as_u16();
    let cache = response
        .headers()
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.json().await.unwrap_or(Value::Null);
    (status, cache, body)
}

/// The public key of a PKCS#8 private key PEM, as SPKI PEM: what an
/// attacker can rebuild from the JWKS.
fn public_pem(algorithm: &str, private: &str) -> String {
    use p256::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
    match algorithm {
        "EdDSA" => ed25519_dalek::SigningKey::from_pkcs8_pem(private)
            .unwrap()
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap(),
        "ES256" => p256::SecretKey::from_pkcs8_pem(private)
            .unwrap()
            .public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap(),
        _ => rsa::RsaPrivateKey::from_pkcs8_pem(private)
            .unwrap()
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap(),
    }
}

#[rstest]
#[case::eddsa("EdDSA")]
#[case::es256("ES256")]
#[case::rs256("RS256")]
#[tokio::test]
async fn access_tokens_name_a_published_key_and_refresh_tokens_stay_private(
    #[case] algorithm: &str,
) {
    let server = TestServer::start_with(
        Backend::Sqlite,
        &[
            ("JWT_ALGORITHM", algorithm),
            ("JWT_SECRET", SECRET),
            ("PUBLIC_URL", "https://auth.example.com/"),
        ],
    )
    .await
    .unwrap();
    let session = server.signup("keyholder").await;
    let head = header(&session.access);
    assert_eq!(head["alg"], algorithm);
    let kid = head["kid"].as_str().expect("a kid").to_owned();
    let access = claims(&session.access);
    assert_eq!(
        access["iss"], "https://auth.example.com",
        "issuer defaults to PUBLIC_URL"
    );
    assert_eq!(access["aud"], "authgraph", "audience defaults to authgraph");
    assert_eq!(access["role"], "USER");
    let refresh_head = header(&session.refresh);
    assert_eq!(
        refresh_head["alg"], "HS256",
        "refresh tokens are HS256 under JWT_SECRET"
    );
    assert!(refresh_head.get("kid").is_none());
    let refresh = claims(&session.refresh);
    assert_eq!(refresh["iss"], "https://auth.example.com");
    assert!(
        refresh.get("aud").is_none() && refresh.get("role").is_none(),
        "{refresh}"
    );

    let (status, cache, jwks) = get(&server, "/.well-known/jwks.json").await;
    assert_eq!(status, 200);
    assert_eq!(cache.as_deref(), Some("public, max-age=300"));
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{jwks}");
    assert_eq!(keys[0]["kid"], kid.as_str());
    assert_eq!(keys[0]["alg"], algorithm);
    assert_eq!(keys[0]["use"], "sig");
    for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
        assert!(
            keys[0].get(private).is_none(),
            "{private} published: {jwks}"
        );
    }
    let (status, _, discovery) = get(&server, "/.well-known/openid-configuration").await;
    assert_eq!(status, 200);
    assert_eq!(
        discovery,
        json!({
            "issuer": "https://auth.example.com",
            "jwks_uri": "https://auth.example.com/.well-known/jwks.json",
        })
    );

    // The core contract holds: me, verifyToken, rotation, logout at once.
    assert_eq!(
        server.me(&session.access).await["data"]["me"]["username"],
        "keyholder"
    );
    assert_eq!(server.verify(&session.access).await["valid"], true);
    assert_eq!(
        server.verify(&session.refresh).await["tokenType"],
        "refresh"
    );
    let rotated = Session::from_payload(&server.refresh(&session.refresh).await, "refreshToken");
    assert_eq!(header(&rotated.access)["kid"], kid.as_str());
    assert_eq!(
        reason(&server.refresh(&session.refresh).await),
        "revoked",
        "reuse"
    );
    assert_eq!(
        reason(&server.me(&rotated.access).await),
        "revoked",
        "the session ended"
    );
}

#[rstest]
#[case::eddsa("EdDSA")]
#[case::es256("ES256")]
#[case::rs256("RS256")]
#[tokio::test]
async fn only_the_key_the_kid_names_under_its_own_alg_verifies(#[case] algorithm: &str) {
    let server = TestServer::start_with(
        Backend::Sqlite,
        &[("JWT_ALGORITHM", algorithm), ("JWT_SECRET", SECRET)],
    )
    .await
    .unwrap();
    let session = server.signup("confused").await;
    let good = claims(&session.access);
    let kid = header(&session.access)["kid"].as_str().unwrap().to_owned();
    let private = std::fs::read_to_string(server.dir().join("authgraph.signing.pem")).unwrap();
    let public = public_pem(algorithm, &private);
    let (_, _, jwks) = get(&server, "/.well-known/jwks.json").await;

    let resigned = sign_like(&server, SECRET, &session.access, &good, |_| {});
    assert!(
        server.me(&resigned).await["data"]["me"].is_object(),
        "the test signs as the server"
    );
    let with_jku = sign_like(&server, SECRET, &session.access, &good, |h| {
        h.jku = Some("http://127.0.0.1:9/keys.json".into());
        h.x5u = Some("http://127.0.0.1:9/cert.pem".into());
    });
    assert!(
        server.me(&with_jku).await["data"]["me"].is_object(),
        "jku and x5u are ignored"
    );

    let hs256_with = |secret: &[u8], kid: Option<&str>| {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, &good, &EncodingKey::from_secret(secret)).unwrap()
    };
    // An attacker's own key, announced in the header.
    let attacker = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let attacker_pem = {
        use p256::pkcs8::{EncodePrivateKey, LineEnding};
        attacker.to_pkcs8_pem(LineEnding::LF).unwrap()
    };
    let attacker_key = EncodingKey::from_ed_pem(attacker_pem.as_bytes()).unwrap();
    let x = URL_SAFE_NO_PAD.encode(attacker.verifying_key().as_bytes());
    let with_attacker_key = |kid: &str| {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.to_owned());
        header.jwk =
            serde_json::from_value(json!({ "kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid }))
                .ok();
        jsonwebtoken::encode(&header, &good, &attacker_key).unwrap()
    };
    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = json!("another-service");
    let mut wrong_iss = good.clone();
    wrong_iss["iss"] = json!("https://evil.example");
    let mut no_aud = good.clone();
    no_aud.as_object_mut().unwrap().remove("aud");
    let forgeries = [
        (
            "HS256 under the public key PEM, our kid",
            hs256_with(public.as_bytes(), Some(&kid)),
        ),
        (
            "HS256 under the JWK's JSON, our kid",
            hs256_with(jwks["keys"][0].to_string().as_bytes(), Some(&kid)),
        ),
        (
            "HS256 under JWT_SECRET, no kid",
            hs256_with(SECRET.as_bytes(), None),
        ),
        (
            "HS256 under JWT_SECRET, our kid",
            hs256_with(SECRET.as_bytes(), Some(&kid)),
        ),
        (
            "our key, no kid",
            sign_like(&server, SECRET, &session.access, &good, |h| h.kid = None),
        ),
        (
            "our key, an unknown kid",
            sign_like(&server, SECRET, &session.access, &good, |h| {
                h.kid = Some("nope".into())
            }),
        ),
        (
            "an attacker's key in a jwk header, its kid",
            with_attacker_key("attacker"),
        ),
        (
            "an attacker's key in a jwk header, our kid",
            with_attacker_key(&kid),
        ),
        (
            "another audience",
            sign_like(&server, SECRET, &session.access, &wrong_aud, |_| {}),
        ),
        (
            "no audience",
            sign_like(&server, SECRET, &session.access, &no_aud, |_| {}),
        ),
        (
            "another issuer",
            sign_like(&server, SECRET, &session.access, &wrong_iss, |_| {}),
        ),
    ];
    for (what, token) in &forgeries {
        let body = server.me(token).await;
        assert_eq!(
            (code(&body), reason(&body)),
            ("UNAUTHENTICATED", "invalid"),
            "{what}: {body}"
        );
        assert_eq!(server.verify(token).await["reason"], "invalid", "{what}");
    }
    // A refresh token signed with the published key's private half is not ours.
    let mut refresh = claims(&session.refresh);
    refresh["jti"] = json!(uuid::Uuid::new_v4());
    let asymmetric_refresh = sign_like(&server, SECRET, &session.access, &refresh, |_| {});
    assert_eq!(
        reason(&server.refresh(&asymmetric_refresh).await),
        "invalid"
    );
    // And nothing above ended the session.
    assert!(server.me(&session.access).await["data"]["me"].is_object());
}

#[tokio::test]
async fn under_hs256_nothing_is_published() {
    let server = TestServer::start_with(Backend::Sqlite, &[("JWT_ALGORITHM", "HS256")])
        .await
        .unwrap();
    assert_eq!(get(&server, "/.well-known/jwks.json").await.0, 404);
    assert_eq!(
        get(&server, "/.well-known/openid-configuration").await.0,
        404,
        "no issuer"
    );
    let session = server.signup("symmetric").await;
    assert!(header(&session.access).get("kid").is_none());
    assert!(claims(&session.access).get("iss").is_none());

    let server = TestServer::start_with(
        Backend::Sqlite,
        &[
            ("JWT_ALGORITHM", "HS256"),
            ("JWT_ISSUER", "https://auth.example.com"),
            ("JWT_AUDIENCE", "api"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(get(&server, "/.well-known/jwks.json").await.0, 404);
    let (status, _, discovery) = get(&server, "/.well-known/openid-configuration").await;
    assert_eq!(status, 200);
    assert_eq!(
        discovery,
        json!({ "issuer": "https://auth.example.com" }),
        "no jwks_uri: nothing published"
    );
    let session = server.signup("issued").await;
    assert_eq!(claims(&session.access)["aud"], "api");
    assert_eq!(claims(&session.refresh)["iss"], "https://auth.example.com");
    assert!(server.me(&session.access).await["data"]["me"].is_object());
    assert!(server.refresh(&session.refresh).await["data"]["refreshToken"].is_object());
}

#[test]
fn keys_generate_makes_a_private_key_once_and_list_marks_the_signing_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &[
            "keys",
            "generate",
            "--algorithm",
            "ES256",
            "--out",
            "next.pem",
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    let next_kid = printed.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(printed.contains("ES256"), "{printed}");
    let pem = std::fs::read_to_string(dir.path().join("next.pem")).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("next.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = run(
        dir.path(),
        &[
            "keys",
            "generate",
            "--algorithm",
            "ES256",
            "--out",
            "next.pem",
        ],
        &[],
    );
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("not overwritten"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("next.pem")).unwrap(),
        pem,
        "untouched"
    );
    let symmetric = run(
        dir.path(),
        &["keys", "generate", "--algorithm", "HS256", "--out", "x.pem"],
        &[],
    );
    assert_eq!(symmetric.status.code(), Some(1));

    // list: the signing key first and marked, then the verify keys.
    let out = run(
        dir.path(),
        &[
            "keys",
            "generate",
            "--algorithm",
            "EdDSA",
            "--out",
            "signing.pem",
        ],
        &[],
    );
    let signing_kid = String::from_utf8_lossy(&out.stdout)
        .trim()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_owned();
    let env = [
        ("JWT_ALGORITHM", "EdDSA"),
        ("JWT_SIGNING_KEY_FILE", "signing.pem"),
        ("JWT_VERIFY_KEY_FILES", "next.pem"),
    ];
    let list = run(dir.path(), &["keys", "list"], &env);
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let text = String::from_utf8_lossy(&list.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with(&signing_kid) && lines[0].contains("EdDSA  signing"),
        "{text}"
    );
    assert!(
        lines[1].starts_with(&next_kid) && lines[1].contains("ES256  verify"),
        "{text}"
    );
    let none = run(dir.path(), &["keys", "list"], &[]);
    assert_eq!(none.status.code(), Some(1), "HS256 publishes nothing");
}

#[test]
fn a_key_that_does_not_fit_ends_the_start_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    run(
        dir.path(),
        &[
            "keys",
            "generate",
            "--algorithm",
            "EdDSA",
            "--out",
            "ed.pem",
        ],
        &[],
    );
    std::fs::write(dir.path().join("junk.pem"), "not a key").unwrap();
    for (env, setting, says) in [
        (
            vec![
                ("JWT_ALGORITHM", "ES256"),
                ("JWT_SIGNING_KEY_FILE", "ed.pem"),
            ],
            "JWT_SIGNING_KEY_FILE",
            "Ed25519",
        ),
        (
            vec![
                ("JWT_ALGORITHM", "EdDSA"),
                ("JWT_SIGNING_KEY_FILE", "junk.pem"),
            ],
            "JWT_SIGNING_KEY_FILE",
            "junk.pem",
        ),
        (
            vec![
                ("JWT_ALGORITHM", "EdDSA"),
                ("JWT_SIGNING_KEY_FILE", "ed.pem"),
                ("JWT_VERIFY_KEY_FILES", "gone.pem"),
            ],
            "JWT_VERIFY_KEY_FILES",
            "gone.pem",
        ),
        (
            vec![
                ("JWT_ALGORITHM", "EdDSA"),
                ("JWT_SIGNING_KEY_FILE", "ed.pem"),
                ("JWT_VERIFY_KEY_FILES", "junk.pem"),
            ],
            "JWT_VERIFY_KEY_FILES",
            "junk.pem",
        ),
        (vec![("JWT_ALGORITHM", "PS256")], "JWT_ALGORITHM", "PS256"),
    ] {
        let mut env = env;
        env.push(("BIND_ADDR", "127.0.0.1:0"));
        let out = run(dir.path(), &["serve"], &env);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{env:?}: {stderr}");
        // Log lines (a warning about the junk file's mode) may come first.
        let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(
            lines[0].contains(setting) && lines[0].contains(says),
            "{stderr}"
        );
        assert!(!stderr.contains("BEGIN"), "no key material in the message");
    }
}

/// Rotation as README tells it, across two servers on one database: publish
/// the new key as a verify key everywhere, then sign with it and keep the
/// old one as a verify key, then retire the old one.
#[tokio::test]
async fn a_key_rotates_across_two_servers_without_a_token_refused_too_early() {
    let Some(database) = TestDatabase::fresh().await else {
        return;
    };
    let database = Arc::new(database);
    let keys = tempfile::tempdir().unwrap();
    let path = |name: &str| keys.path().join(name).display().to_string();
    for name in ["old.pem", "new.pem"] {
        let out = run(
            keys.path(),
            &["keys", "generate", "--algorithm", "EdDSA", "--out", name],
            &[],
        );
        assert!(out.status.success());
    }
    let (old, new) = (path("old.pem"), path("new.pem"));
    let servers = |a: (&str, &str), b: (&str, &str)| {
        let start = |(signing, verify): (&str, &str)| {
            TestServer::start_on(
                Some(database.clone()),
                &[
                    ("JWT_ALGORITHM", "EdDSA"),
                    ("JWT_SECRET", SECRET),
                    ("JWT_SIGNING_KEY_FILE", signing),
                    ("JWT_VERIFY_KEY_FILES", verify),
                ],
            )
        };
        (start(a), start(b))
    };
    let kid_of = |token: &str| header(token)["kid"].as_str().unwrap().to_owned();
    let published = |server: &TestServer| {
        let url = server.url("/.well-known/jwks.json");
        async move {
            let jwks: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
            let mut kids: Vec<String> = jwks["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["kid"].as_str().unwrap().to_owned())
                .collect();
            kids.sort();
            kids
        }
    };

    // 1. Both sign with the old key.
    let (a, b) = servers((&old, ""), (&old, ""));
    let first = a.signup("rotator").await;
    let old_kid = kid_of(&first.access);
    assert!(b.me(&first.access).await["data"]["me"].is_object());

    // 2. The new key is published everywhere, still signing with the old.
    drop((a, b));
    let (a, b) = servers((&old, &new), (&old, &new));
    assert_eq!(published(&a).await.len(), 2);
    assert_eq!(published(&a).await, published(&b).await);
    let second = Session::from_payload(&a.login("rotator", PASSWORD).await, "login");
    assert_eq!(kid_of(&second.access), old_kid);

    // 3. A signs with the new key (the old one kept to verify); B not yet.
    drop((a, b));
    let (a, b) = servers((&new, &old), (&old, &new));
    let third = Session::from_payload(&a.login("rotator", PASSWORD).await, "login");
    let new_kid = kid_of(&third.access);
    assert_ne!(new_kid, old_kid);
    let fourth = Session::from_payload(&b.login("rotator", PASSWORD).await, "login");
    assert_eq!(kid_of(&fourth.access), old_kid);
    for (who, server) in [("A", &a), ("B", &b)] {
        for token in [&first.access, &second.access, &third.access, &fourth.access] {
            assert!(
                server.me(token).await["data"]["me"].is_object(),
                "{who} accepts {}",
                kid_of(token)
            );
        }
    }
    // Revocation is still at once, whichever key signed: logout on B, refused on A.
    b.logout(&third.refresh).await;
    assert_eq!(reason(&a.me(&third.access).await), "revoked");

    // 4. The old key retired: its tokens are refused, the new key's accepted.
    drop((a, b));
    let (a, b) = servers((&new, ""), (&new, ""));
    assert_eq!(published(&a).await, vec![new_kid.clone()]);
    for server in [&a, &b] {
        assert_eq!(
            reason(&server.me(&fourth.access).await),
            "invalid",
            "a retired key's token"
        );
        let fresh = Session::from_payload(&server.login("rotator", PASSWORD).await, "login");
        assert_eq!(kid_of(&fresh.access), new_kid);
        assert!(a.me(&fresh.access).await["data"]["me"].is_object());
        assert!(b.me(&fresh.access).await["data"]["me"].is_object());
    }
    // Refresh tokens never depended on the asymmetric key.
    assert!(a.refresh(&fourth.refresh).await["data"]["refreshToken"].is_object());
}

/// Hasura's documented JWT format: its namespace, every session variable a
/// string, the default role among the allowed ones; an ADMIN is
/// `authgraph_admin`, never Hasura's own `admin`.
#[apply(backends)]
async fn the_hasura_profile_carries_hasura_s_claims(#[case] backend: Backend) {
    let Some(server) = TestServer::start_process_with(
        backend,
        &[("JWT_ALGORITHM", "ES256"), ("JWT_CLAIMS", "hasura")],
    )
    .await
    else {
        return;
    };
    let user = server.signup("hasurauser").await;
    let claims = claims(&user.access);
    let hasura = &claims["https://hasura.io/jwt/claims"];
    assert_eq!(
        hasura,
        &json!({
            "x-hasura-user-id": user.user_id,
            "x-hasura-default-role": "user",
            "x-hasura-allowed-roles": ["user"],
        }),
        "{claims}"
    );
    assert!(
        crate::helpers::claims(&user.refresh)
            .get("https://hasura.io/jwt/claims")
            .is_none()
    );
    assert!(
        server.me(&user.access).await["data"]["me"].is_object(),
        "authgraph reads its own claims"
    );

    server.admin("hasuraadmin").await;
    let admin = Session::from_payload(&server.login("hasuraadmin", PASSWORD).await, "login");
    let hasura = crate::helpers::claims(&admin.access)["https://hasura.io/jwt/claims"].clone();
    let allowed: Vec<&str> = hasura["x-hasura-allowed-roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|role| role.as_str().expect("roles are strings"))
        .collect();
    assert_eq!(allowed, ["user", "authgraph_admin"]);
    assert!(!allowed.contains(&"admin"), "never Hasura's admin");
    let default = hasura["x-hasura-default-role"].as_str().unwrap();
    assert!(allowed.contains(&default), "the default role is allowed");
    assert!(hasura["x-hasura-user-id"].is_string());
    assert_eq!(crate::helpers::claims(&admin.access)["role"], "ADMIN");

    // The standard profile carries no namespace.
    let plain = TestServer::start_with(Backend::Sqlite, &[("JWT_ALGORITHM", "ES256")])
        .await
        .unwrap();
    let session = plain.signup("plain").await;
    assert!(
        crate::helpers::claims(&session.access)
            .get("https://hasura.io/jwt/claims")
            .is_none()
    );
}

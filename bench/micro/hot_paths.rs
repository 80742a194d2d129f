//! Micro-benchmarks of the hot paths: token encode/decode, the guard (decode
//! plus its one query), the cheapest query by the same path (the round trip
//! every protected request pays), and raw Argon2id verification. On SQLite
//! the guard and the round trip are also measured through the pool alone
//! (`*_pool`), the path they took before reads ran in place.
//!
//! `bench/run.sh` runs these pinned to the server's core and reads the figures
//! from `target/criterion`. The database is a SQLite file, or PostgreSQL when
//! `AUTHGRAPH_BENCH_DATABASE_URL` is set.

use std::sync::Arc;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use authgraph::auth::api_key::NewKey;
use authgraph::auth::bearer::{Credentials, authenticate};
use authgraph::auth::jwt::{Subject, TokenType, Tokens};
use authgraph::auth::password::Hasher;
use authgraph::events::Source;
use authgraph::ratelimit::RateLimiter;
use authgraph::secret::Secret;
use authgraph::state::AppState;
use authgraph::store::{self, NewSession, NewUser, Store};
use criterion::{Criterion, criterion_group, criterion_main};
use entity::user::Role;
use migration::{Migrator, MigratorTrait};
use uuid::Uuid;

fn tokens() -> Tokens {
    Tokens::new(&Secret::from("b".repeat(32)), 900, 604_800, 0)
}

/// Access tokens signed and checked under each asymmetric algorithm (refresh
/// tokens stay HS256 whatever the algorithm: `jwt/*` above).
fn jwt_asymmetric(c: &mut Criterion) {
    use authgraph::auth::jwt::TokenRules;
    use authgraph::auth::keys::{KeyKind, KeySet, generate};
    let (user, sid) = (Uuid::new_v4(), Uuid::new_v4());
    let now = chrono::Utc::now().timestamp();
    for kind in [KeyKind::Ed25519, KeyKind::P256, KeyKind::Rsa] {
        let keys = KeySet::new(kind, "bench.pem", &generate(kind).unwrap(), &[]).unwrap();
        let rules = TokenRules {
            access_ttl: 900,
            refresh_ttl: 604_800,
            issuer: Some("https://auth.example.com".into()),
            audience: Some("authgraph".into()),
            ..TokenRules::default()
        };
        let tokens = Tokens::with_keys(&Secret::from("b".repeat(32)), Some(keys), rules);
        let (token, _) = tokens
            .issue(user_subject(user), sid, TokenType::Access, now)
            .unwrap();
        let mut group = c.benchmark_group(format!("jwt_{}", kind.algorithm_name()));
        group.bench_function("encode", |b| {
            b.iter(|| {
                tokens
                    .issue(user_subject(user), sid, TokenType::Access, now)
                    .unwrap()
            })
        });
        // A token's first check (`decode` remembers a checked token, and
        // its later uses cost what `decode_remembered` does): the same
        // signature and claims checks, minus the remembering.
        group.bench_function("decode", |b| {
            b.iter(|| tokens.decode_ignoring_expiry(&token).unwrap())
        });
        group.bench_function("decode_remembered", |b| {
            b.iter(|| tokens.decode(&token, TokenType::Access).unwrap())
        });
        group.finish();
    }
}

fn jwt(c: &mut Criterion) {
    let tokens = tokens();
    let (user, sid) = (Uuid::new_v4(), Uuid::new_v4());
    let now = chrono::Utc::now().timestamp();
    let (token, _) = tokens
        .issue(user_subject(user), sid, TokenType::Access, now)
        .unwrap();
    let mut group = c.benchmark_group("jwt");
    group.bench_function("encode", |b| {
        b.iter(|| {
            tokens
                .issue(user_subject(user), sid, TokenType::Access, now)
                .unwrap()
        })
    });
    // The first check of a token, and its later uses (see above).
    group.bench_function("decode", |b| {
        b.iter(|| tokens.decode_ignoring_expiry(&token).unwrap())
    });
    group.bench_function("decode_remembered", |b| {
        b.iter(|| tokens.decode(&token, TokenType::Access).unwrap())
    });
    group.finish();
}

/// A USER whose address is not verified.
fn user_subject(id: Uuid) -> Subject {
    Subject {
        id,
        role: Role::User,
        email_verified: false,
    }
}

fn app_state(store: Store) -> AppState {
    AppState {
        store,
        tokens: tokens(),
        hasher: Hasher::new(1).unwrap(),
        limiter: RateLimiter::new(0),
        metrics: authgraph::metrics::Metrics::new().unwrap(),
        clock: authgraph::state::Clock,
        refresh_cookie: false,
        login_failures_per_hour: 0,
        verified_only: false,
        reauth_window: 300,
        mfa: authgraph::auth::mfa::Mfa::new(&Secret::from("d".repeat(32)), "authgraph".into(), 300),
        mailer: None,
    }
}

/// A server-shaped state with one user and a live session: on a SQLite file,
/// or on the empty PostgreSQL database `AUTHGRAPH_BENCH_DATABASE_URL` names.
async fn state(dir: &std::path::Path) -> (Arc<AppState>, String, String) {
    let url = std::env::var("AUTHGRAPH_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}/bench.db?mode=rwc", dir.display()));
    let db = store::connect(&url, Default::default()).await.unwrap();
    Migrator::up(&db, None).await.unwrap();
    let state = app_state(Store::open(db).await.unwrap());
    let (user_id, sid) = (Uuid::now_v7(), Uuid::new_v4());
    let now = chrono::Utc::now();
    let (token, claims) = state
        .tokens
        .issue(
            user_subject(user_id),
            sid,
            TokenType::Access,
            now.timestamp(),
        )
        .unwrap();
    state
        .store
        .create_user(
            NewUser {
                id: user_id,
                username: authgraph::domain::Username::parse("bench").unwrap(),
                email: authgraph::domain::Email::parse("bench@example.com").unwrap(),
                password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
                    .into(),
            },
            NewSession {
                id: sid,
                user_agent: None,
                now,
                expires_at: claims.exp,
            },
            None,
            &Source::default(),
        )
        .await
        .unwrap();
    let key = NewKey::generate().unwrap();
    let created = state
        .store
        .create_api_key(
            entity::api_key::Model {
                id: Uuid::now_v7(),
                user_id,
                name: "bench".into(),
                prefix: key.prefix,
                key_hash: key.hash,
                created_at: now,
                last_used_at: None,
                expires_at: now.timestamp() + 86_400,
                revoked_at: None,
            },
            20,
            (&Source::default(), None),
        )
        .await
        .unwrap();
    assert!(created);
    (Arc::new(state), token, key.key)
}

fn database(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (state, token, key) = rt.block_on(state(dir.path()));
    let now = || chrono::Utc::now().timestamp();
    let pooled = app_state(Store::pooled_only(state.store.connection().clone()));
    let credentials = Credentials::Bearer(token);
    let key = Credentials::ApiKey(key);
    let mut group = c.benchmark_group("db");
    group.bench_function("round_trip", |b| {
        b.to_async(&rt)
            .iter(|| async { state.store.round_trip().await.unwrap() })
    });
    group.bench_function("guard", |b| {
        b.to_async(&rt).iter(|| async {
            authenticate(
                &state.tokens,
                &state.store,
                &credentials,
                now(),
                &Source::default(),
            )
            .await
            .unwrap()
        })
    });
    group.bench_function("guard_api_key", |b| {
        b.to_async(&rt).iter(|| async {
            authenticate(&state.tokens, &state.store, &key, now(), &Source::default())
                .await
                .unwrap()
        })
    });
    if state.store.connection().get_database_backend() == sea_orm::DbBackend::Sqlite {
        group.bench_function("round_trip_pool", |b| {
            b.to_async(&rt)
                .iter(|| async { pooled.store.round_trip().await.unwrap() })
        });
        group.bench_function("guard_pool", |b| {
            b.to_async(&rt).iter(|| async {
                authenticate(
                    &pooled.tokens,
                    &pooled.store,
                    &credentials,
                    now(),
                    &Source::default(),
                )
                .await
                .unwrap()
            })
        });
    }
    group.finish();
}

fn argon2(c: &mut Criterion) {
    let hash = Argon2::default()
        .hash_password(b"correct horse battery")
        .unwrap()
        .to_string();
    let parsed = PasswordHash::new(&hash).unwrap();
    let mut group = c.benchmark_group("argon2");
    group.sample_size(20);
    group.bench_function("verify", |b| {
        b.iter(|| {
            Argon2::default()
                .verify_password(b"correct horse battery", &parsed)
                .unwrap()
        })
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! { name = benches; config = config(); targets = jwt, jwt_asymmetric, database, argon2 }
criterion_main!(benches);

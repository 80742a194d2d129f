//! The parity suite: every outcome of the ledger, on every backend. SQLite's
//! file runs each case twice, in place and on the pool alone; PostgreSQL
//! runs when `AUTHGRAPH_TEST_POSTGRES_URL` names a server (`.ci/run` sets
//! it, and with `AUTHGRAPH_TEST_REQUIRE_POSTGRES` a missing one fails).

use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{SubsecRound, Utc};
use entity::{revocation, session, user};
use migration::{Migrator, MigratorTrait};
use rstest::rstest;
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseConnection, EntityTrait, IntoActiveModel,
    PaginatorTrait, Set, TransactionTrait,
};
use uuid::Uuid;

use super::sqlite::CHECKPOINT_EVERY;
use super::{Rotation, RotationRules};
use crate::domain::{Email, Username};
use crate::events::{Actor, EndReason, Source};
use crate::store::{NewSession, NewUser, Store, TokenRef};

/// Where the suite's changes come from: nowhere in particular.
const NO_SOURCE: Source = Source {
    ip: None,
    user_agent: None,
    request_id: None,
};

/// [`NO_SOURCE`] as a rotation takes it.
static QUIET: std::sync::LazyLock<std::sync::Arc<Source>> =
    std::sync::LazyLock::new(|| std::sync::Arc::new(NO_SOURCE));

fn at(seconds: i64) -> chrono::DateTime<Utc> {
    chrono::DateTime::from_timestamp(seconds, 0).unwrap()
}

/// Ends session `sid` at `now` (a logout), `exp` its token's expiry.
async fn end(store: &Store, sid: Uuid, exp: i64, now: i64) {
    let by = (&NO_SOURCE, Actor::SYSTEM);
    store
        .end_session(Uuid::nil(), sid, exp, EndReason::Logout, by, at(now))
        .await
        .unwrap();
}

mod in_place;

#[derive(Debug, Clone, Copy)]
enum Backend {
    SqliteInPlace,
    SqlitePool,
    Postgres,
}

/// A fresh database of `backend` and a store on it; dropped with it.
struct Fixture {
    store: Store,
    _dir: tempfile::TempDir,
    postgres: Option<(String, String)>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.postgres.take() else {
            return;
        };
        // Drop runs inside a test's runtime: do the async work on a thread of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let admin = sea_orm::Database::connect(&admin_url).await.ok()?;
                let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                let _ = admin.execute_unprepared(&sql).await;
                admin.close().await.ok()
            })
        })
        .join();
    }
}

async fn fixture(backend: Backend) -> Option<Fixture> {
    let dir = tempfile::tempdir().unwrap();
    let (db, postgres) = match backend {
        Backend::SqliteInPlace | Backend::SqlitePool => {
            let url = format!("sqlite://{}/ledger.db?mode=rwc", dir.path().display());
            (connect(&url).await, None)
        }
        Backend::Postgres => {
            let Ok(admin_url) = std::env::var("AUTHGRAPH_TEST_POSTGRES_URL") else {
                assert!(
                    std::env::var_os("AUTHGRAPH_TEST_REQUIRE_POSTGRES").is_none(),
                    "PostgreSQL is required for this run: set AUTHGRAPH_TEST_POSTGRES_URL"
                );
                eprintln!(
                    "*** ledger parity on PostgreSQL SKIPPED: AUTHGRAPH_TEST_POSTGRES_URL is unset"
                );
                return None;
            };
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let name = format!(
                "authgraph_ledger_{}_{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            );
            let admin = sea_orm::Database::connect(&admin_url).await.unwrap();
            admin
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .unwrap();
            admin.close().await.unwrap();
            let mut url = url::Url::parse(&admin_url).unwrap();
            url.set_path(&name);
            (connect(url.as_str()).await, Some((admin_url, name)))
        }
    };
    let store = match backend {
        Backend::SqlitePool => Store::pooled_only(db),
        _ => Store::open(db).await.unwrap(),
    };
    assert_eq!(
        store.ledger.is_in_place(),
        matches!(backend, Backend::SqliteInPlace),
        "{backend:?}"
    );
    Some(Fixture {
        store,
        _dir: dir,
        postgres,
    })
}

async fn connect(url: &str) -> DatabaseConnection {
    let db = crate::store::connect(url, Default::default())
        .await
        .unwrap();
    Migrator::up(&db, None).await.unwrap();
    db
}

/// A user with one live session, expiring in a minute.
async fn user(store: &Store, name: &str) -> (user::Model, Uuid) {
    let sid = Uuid::new_v4();
    let user = store
        .create_user(
            NewUser {
                id: Uuid::now_v7(),
                username: Username::parse(name).unwrap(),
                email: Email::parse(&format!("{name}@example.com")).unwrap(),
                password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            },
            NewSession {
                id: sid,
                user_agent: None,
                now: Utc::now(),
                expires_at: Utc::now().timestamp() + 60,
            },
            None,
            &NO_SOURCE,
        )
        .await
        .unwrap();
    (user, sid)
}

fn token(user: Uuid, sid: Uuid) -> TokenRef {
    TokenRef {
        user,
        sid,
        jti: Uuid::new_v4(),
        exp: Utc::now().timestamp() + 60,
    }
}

fn grace(seconds: i64) -> RotationRules {
    RotationRules {
        grace: seconds,
        ..RotationRules::default()
    }
}

async fn session_row(store: &Store, sid: Uuid) -> Option<session::Model> {
    session::Entity::find_by_id(sid)
        .one(store.connection())
        .await
        .unwrap()
}

async fn revocations(store: &Store) -> u64 {
    revocation::Entity::find()
        .count(store.connection())
        .await
        .unwrap()
}

/// The backends every case runs on.
macro_rules! on_every_backend {
    ($(#[$meta:meta])* async fn $name:ident($store:ident) $body:block) => {
        #[rstest]
        #[case::sqlite_in_place(Backend::SqliteInPlace)]
        #[case::sqlite_pool(Backend::SqlitePool)]
        #[case::postgres(Backend::Postgres)]
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $(#[$meta])*
        async fn $name(#[case] backend: Backend) {
            let Some(fixture) = fixture(backend).await else {
                return;
            };
            let $store = &fixture.store;
            $body
        }
    };
}

on_every_backend! {
    /// A live token rotates once: the session moves on and the token is used.
    async fn a_live_token_rotates(store) {
        let (alice, sid) = user(store, "alice").await;
        let old = token(alice.id, sid);
        let now = Utc::now().trunc_subsecs(3);
        let exp = now.timestamp() + 3_600;
        let Rotation::Rotated(profile) = store.rotate(&old, now, exp,RotationRules::default(), &QUIET).await.unwrap() else {
            panic!("rotated");
        };
        assert_eq!(profile, user::Profile::from(alice.clone()));
        let row = session_row(store, sid).await.unwrap();
        assert_eq!((row.last_used_at, row.expires_at), (now, exp));
        assert!(store.is_revoked(Uuid::new_v4(), old.jti).await.unwrap(), "used");
        assert!(!store.is_revoked(sid, Uuid::new_v4()).await.unwrap(), "the session goes on");
    }
}

on_every_backend! {
    /// A used token presented again ends its session, and then counts as ended.
    async fn a_reused_token_ends_its_session(store) {
        let (alice, sid) = user(store, "alice").await;
        let old = token(alice.id, sid);
        let now = Utc::now();
        assert!(matches!(store.rotate(&old, now, 0,RotationRules::default(), &QUIET).await.unwrap(), Rotation::Rotated(_)));
        assert!(matches!(store.rotate(&old, now, 0,RotationRules::default(), &QUIET).await.unwrap(), Rotation::Reused));
        assert!(store.is_revoked(sid, Uuid::new_v4()).await.unwrap(), "the session ended");
        let newer = token(alice.id, sid);
        assert!(matches!(store.rotate(&newer, now, 0,RotationRules::default(), &QUIET).await.unwrap(), Rotation::Revoked));
        assert!(!store.is_revoked(Uuid::new_v4(), newer.jti).await.unwrap(), "nothing written");
        assert!(store.user_unless_revoked(alice.id, sid, newer.jti).await.unwrap().is_none());
    }
}

/// The security events of `kind` in the log, oldest first.
async fn events_of(store: &Store, kind: &str) -> Vec<entity::security_event::Model> {
    use sea_orm::{ColumnTrait, QueryFilter, QueryOrder};
    entity::security_event::Entity::find()
        .filter(entity::security_event::Column::Kind.eq(kind))
        .order_by_asc(entity::security_event::Column::Position)
        .all(store.connection())
        .await
        .unwrap()
}

on_every_backend! {
    /// A reuse's `session.ended` is written with the session's end, in the
    /// ledger's transaction: one, however many times the token comes back,
    /// and none for a rotation.
    async fn a_reuse_records_one_session_ended_and_a_rotation_none(store) {
        let (alice, sid) = user(store, "alice").await;
        let old = token(alice.id, sid);
        let now = Utc::now();
        let from = std::sync::Arc::new(Source {
            ip: Some("203.0.113.9".parse().unwrap()),
            user_agent: Some("thief/1.0".into()),
            request_id: Some("req-1".into()),
        });
        assert!(matches!(store.rotate(&old, now, 0, RotationRules::default(), &from).await.unwrap(), Rotation::Rotated(_)));
        assert!(events_of(store, "session.ended").await.is_empty(), "a rotation writes no event");
        assert!(matches!(store.rotate(&old, now, 0, RotationRules::default(), &from).await.unwrap(), Rotation::Reused));
        assert!(matches!(store.rotate(&old, now, 0, RotationRules::default(), &from).await.unwrap(), Rotation::Revoked));
        let ended = events_of(store, "session.ended").await;
        assert_eq!(ended.len(), 1, "{ended:?}");
        let event = &ended[0];
        assert_eq!((event.user_id, event.session_id), (Some(alice.id), Some(sid)));
        assert!(event.failed);
        assert_eq!(event.actor_kind, "ANONYMOUS");
        assert_eq!(event.detail, r#"{"reason":"refresh_reused"}"#);
        assert_eq!(event.ip.as_deref(), Some("203.0.113.9"));
        assert_eq!(event.user_agent.as_deref(), Some("thief/1.0"));
        assert_eq!(event.request_id.as_deref(), Some("req-1"));
    }
}

on_every_backend! {
    /// Reuses racing (the in-place path gathers them into one commit) end
    /// the session once, with one `session.ended`.
    async fn concurrent_reuses_record_one_session_ended(store) {
        let (alice, sid) = user(store, "alice").await;
        let old = token(alice.id, sid);
        assert!(matches!(store.rotate(&old, Utc::now(), 0, RotationRules::default(), &QUIET).await.unwrap(), Rotation::Rotated(_)));
        let reuses: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.rotate(&old, Utc::now(), 0, RotationRules::default(), &QUIET).await.unwrap() })
            })
            .collect();
        for reuse in reuses {
            assert!(matches!(reuse.await.unwrap(), Rotation::Reused | Rotation::Revoked));
        }
        assert_eq!(events_of(store, "session.ended").await.len(), 1);
    }
}

on_every_backend! {
    /// An event appended in a transaction that then fails leaves nothing,
    /// and its position is not lost to the next one (no gap).
    async fn a_rolled_back_change_leaves_no_event(store) {
        use crate::events::{Event, Kind};
        let db = store.connection();
        let (alice, _) = user(store, "alice").await;
        let first = events_of(store, "user.signed_up").await;
        let txn = db.begin().await.unwrap();
        let event = Event::by_user(Kind::EmailVerified {}, alice.id);
        let written = crate::store::append_in(&txn, &NO_SOURCE, Utc::now(), std::slice::from_ref(&event)).await.unwrap();
        // A forced failure after the insert: the change goes, and its event with it.
        let failed = txn.execute_unprepared("SELECT * FROM no_such_table").await;
        assert!(failed.is_err());
        txn.rollback().await.unwrap();
        drop(written);
        assert!(events_of(store, "email.verified").await.is_empty());
        store.record(&NO_SOURCE, Utc::now(), &[event]).await.unwrap();
        let after = events_of(store, "email.verified").await;
        assert_eq!(after.len(), 1);
        assert!(after[0].position > first[0].position);
    }
}

on_every_backend! {
    /// Verified-only rules refuse an unverified user's live token without
    /// writing anything; the same token rotates once the address is verified.
    async fn an_unverified_users_token_waits_for_verification(store) {
        let (alice, sid) = user(store, "alice").await;
        assert!(!alice.email_verified);
        let old = token(alice.id, sid);
        let now = Utc::now().trunc_subsecs(3);
        let rules = RotationRules { grace: 0, verified_only: true };
        let before = session_row(store, sid).await.unwrap();
        assert!(matches!(store.rotate(&old, now, now.timestamp() + 60, rules, &QUIET).await.unwrap(), Rotation::Unverified));
        assert_eq!(revocations(store).await, 0, "nothing written");
        assert_eq!(session_row(store, sid).await.unwrap(), before, "the session did not move");
        store.verify_email(alice.id, &NO_SOURCE, Utc::now()).await.unwrap();
        assert!(matches!(store.rotate(&old, now, now.timestamp() + 60, rules, &QUIET).await.unwrap(), Rotation::Rotated(_)));
    }
}

on_every_backend! {
    /// Without a grace, a used token is reuse even when the request that
    /// presents it read the clock before the rotation that won (concurrent
    /// refreshes, or two servers' clocks a moment apart).
    async fn without_a_grace_an_earlier_clock_is_still_reuse(store) {
        let (alice, sid) = user(store, "alice").await;
        let old = token(alice.id, sid);
        let now = Utc::now().trunc_subsecs(3);
        assert!(matches!(store.rotate(&old, now, 0, RotationRules::default(), &QUIET).await.unwrap(), Rotation::Rotated(_)));
        let earlier = now - chrono::Duration::seconds(1);
        assert!(matches!(store.rotate(&old, earlier, 0, RotationRules::default(), &QUIET).await.unwrap(), Rotation::Reused));
        assert!(store.is_revoked(sid, Uuid::new_v4()).await.unwrap(), "the session ended");
    }
}

on_every_backend! {
    /// Within the grace a used token is superseded and ends nothing; after
    /// it, reuse ends the session as without one.
    async fn a_token_rotated_within_the_grace_ends_nothing(store) {
        let (alice, sid) = user(store, "alice").await;
        let old = token(alice.id, sid);
        let now = Utc::now().trunc_subsecs(3);
        assert!(matches!(store.rotate(&old, now, 0,grace(10), &QUIET).await.unwrap(), Rotation::Rotated(_)));
        let soon = now + chrono::Duration::seconds(9);
        assert!(matches!(store.rotate(&old, soon, 0,grace(10), &QUIET).await.unwrap(), Rotation::Superseded));
        assert!(!store.is_revoked(sid, Uuid::new_v4()).await.unwrap(), "the session goes on");
        let newer = token(alice.id, sid);
        assert!(matches!(store.rotate(&newer, soon, 0,grace(10), &QUIET).await.unwrap(), Rotation::Rotated(_)));
        let later = soon + chrono::Duration::seconds(10);
        assert!(matches!(store.rotate(&newer, later, 0,grace(10), &QUIET).await.unwrap(), Rotation::Reused));
        assert!(store.is_revoked(sid, Uuid::new_v4()).await.unwrap(), "the session ended");
    }
}

on_every_backend! {
    /// Of concurrent rotations of one token under a grace, one wins and the
    /// rest are superseded: the session goes on.
    async fn concurrent_rotations_under_a_grace_keep_the_session(store) {
        let (alice, sid) = user(store, "alice").await;
        let old = token(alice.id, sid);
        let rotations: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.rotate(&old, Utc::now(), 0,grace(10), &QUIET).await.unwrap() })
            })
            .collect();
        let mut rotated = 0;
        for rotation in rotations {
            match rotation.await.unwrap() {
                Rotation::Rotated(_) => rotated += 1,
                Rotation::Superseded => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(rotated, 1);
        assert!(!store.is_revoked(sid, Uuid::new_v4()).await.unwrap(), "the session goes on");
    }
}

on_every_backend! {
    /// A token of an ended session, or whose session row is gone, is revoked.
    async fn an_ended_session_is_revoked(store) {
        let (alice, sid) = user(store, "alice").await;
        let now = Utc::now();
        end(store, sid, 0, now.timestamp()).await;
        let old = token(alice.id, sid);
        assert!(matches!(store.rotate(&old, now, 0,RotationRules::default(), &QUIET).await.unwrap(), Rotation::Revoked));
        assert_eq!(revocations(store).await, 1, "nothing written");

        let (bob, gone) = user(store, "bob").await;
        session::Entity::delete_by_id(gone).exec(store.connection()).await.unwrap();
        let old = token(bob.id, gone);
        assert!(matches!(store.rotate(&old, now, 0,RotationRules::default(), &QUIET).await.unwrap(), Rotation::Revoked));
        assert!(!store.is_revoked(Uuid::new_v4(), old.jti).await.unwrap(), "rolled back");
    }
}

on_every_backend! {
    /// A token whose user is gone is the unknown-user outcome, and writes nothing.
    async fn an_unknown_user_is_told_apart(store) {
        let old = token(Uuid::new_v4(), Uuid::new_v4());
        assert!(matches!(
            store.rotate(&old, Utc::now(), 0,RotationRules::default(), &QUIET).await.unwrap(),
            Rotation::UnknownUser
        ));
        assert_eq!(revocations(store).await, 0);
        assert!(store.user_unless_revoked(old.user, old.sid, old.jti).await.unwrap().is_none());
    }
}

on_every_backend! {
    /// Of concurrent rotations of one token, exactly one gets through; the
    /// others are reuse, so the session ends.
    async fn of_concurrent_rotations_exactly_one_wins(store) {
        let (alice, sid) = user(store, "alice").await;
        let old = token(alice.id, sid);
        let rotations: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.rotate(&old, Utc::now(), 0,RotationRules::default(), &QUIET).await.unwrap() })
            })
            .collect();
        let mut rotated = 0;
        for rotation in rotations {
            match rotation.await.unwrap() {
                Rotation::Rotated(_) => rotated += 1,
                Rotation::Reused | Rotation::Revoked => {}
                Rotation::UnknownUser | Rotation::Superseded | Rotation::Unverified => {
                    panic!("the user is there, no grace, no rules")
                }
            }
        }
        assert_eq!(rotated, 1);
        assert!(store.is_revoked(sid, Uuid::new_v4()).await.unwrap(), "the session ended");
    }
}

on_every_backend! {
    /// The guard's read and the revocation check, for each kind of token.
    async fn reads_tell_live_from_revoked(store) {
        let (alice, sid) = user(store, "alice").await;
        let (bob, bob_sid) = user(store, "bob").await;
        store.set_role(bob.id, user::Role::Admin, (&NO_SOURCE, Actor::SYSTEM, None), Utc::now()).await.unwrap();
        let used = token(alice.id, sid);
        assert!(matches!(store.rotate(&used, Utc::now(), 0,RotationRules::default(), &QUIET).await.unwrap(), Rotation::Rotated(_)));
        end(store, bob_sid, 0, 0).await;
        let live = Uuid::new_v4();
        let cases = [
            (alice.id, sid, live, true),
            (alice.id, sid, used.jti, false),
            (bob.id, bob_sid, live, false),
            (bob.id, Uuid::new_v4(), live, true),
            (Uuid::new_v4(), Uuid::new_v4(), live, false),
        ];
        for (user_id, sid, jti, found) in cases {
            let read = store.user_unless_revoked(user_id, sid, jti).await.unwrap();
            assert_eq!(read.is_some(), found, "user {user_id} sid {sid} jti {jti}");
        }
        let admin = store.user_unless_revoked(bob.id, Uuid::new_v4(), live).await.unwrap();
        assert_eq!(admin.map(|u| u.role), Some(user::Role::Admin));
        // Every column as SeaORM reads the row, the timestamp to the stored digit.
        let row = store.find_user(alice.id).await.unwrap().unwrap();
        let read = store.user_unless_revoked(alice.id, sid, live).await.unwrap().unwrap();
        assert_eq!(
            (read.id, read.username, read.email, read.role, read.created_at, read.email_verified),
            (row.id, row.username, row.email, row.role, row.created_at, row.email_verified)
        );
        assert!(store.is_revoked(sid, used.jti).await.unwrap());
        assert!(store.is_revoked(bob_sid, live).await.unwrap());
        assert!(!store.is_revoked(sid, live).await.unwrap());
    }
}

on_every_backend! {
    /// The prune deletes what expired, but an ended session's revocation
    /// stays while the session row does, even one a racing refresh extended.
    async fn the_prune_never_revives_a_session(store) {
        let (_, sid) = user(store, "alice").await;
        let expired = token(Uuid::new_v4(), Uuid::new_v4());
        end(store, expired.sid, 1_000, 0).await;
        end(store, sid, 5_000, 0).await;
        // A refresh that committed while the session ended moved it on.
        let mut row = session_row(store, sid).await.unwrap().into_active_model();
        row.expires_at = Set(9_000);
        row.update(store.connection()).await.unwrap();

        assert_eq!(store.prune(6_000).await.unwrap(), 1, "only the expired revocation");
        assert!(store.is_revoked(sid, Uuid::new_v4()).await.unwrap(), "still ended");
        assert!(!store.is_revoked(expired.sid, expired.jti).await.unwrap());
        assert_eq!(store.prune(9_001).await.unwrap(), 2, "the session and its end");
        assert_eq!(revocations(store).await, 0);
    }
}

fn api_key(user_id: Uuid, hash: &str) -> entity::api_key::Model {
    let now = Utc::now().trunc_subsecs(3);
    entity::api_key::Model {
        id: Uuid::now_v7(),
        user_id,
        name: "script".into(),
        prefix: "abcd1234".into(),
        key_hash: hash.into(),
        created_at: now,
        last_used_at: None,
        expires_at: now.timestamp() + 3_600,
        revoked_at: None,
    }
}

on_every_backend! {
    /// The guard's read of an API key: its holder's profile and the key's
    /// state, revoked and used ones too; nothing for an unknown hash.
    async fn a_key_is_read_with_its_holder(store) {
        let (alice, _) = user(store, "alice").await;
        let key = api_key(alice.id, &"a".repeat(64));
        assert!(store.create_api_key(key.clone(), 20, (&NO_SOURCE, None)).await.unwrap());
        let found = store.key_holder(&key.key_hash).await.unwrap().expect("the key");
        assert_eq!(found.user, user::Profile::from(alice.clone()));
        assert_eq!((found.key_id, found.expires_at), (key.id, key.expires_at));
        assert_eq!((found.revoked_at, found.last_used_at), (None, None));
        assert!(store.key_holder(&"b".repeat(64)).await.unwrap().is_none());

        let now = Utc::now().timestamp();
        assert!(store.touch_api_key(key.id, now).await.unwrap());
        assert!(!store.touch_api_key(key.id, now + 59).await.unwrap(), "within the minute");
        assert!(store.touch_api_key(key.id, now + 60).await.unwrap());
        assert!(store.revoke_api_key(alice.id, key.id, (&NO_SOURCE, Actor::user(alice.id), None), at(now)).await.unwrap());
        assert!(!store.revoke_api_key(alice.id, key.id, (&NO_SOURCE, Actor::user(alice.id), None), at(now)).await.unwrap(), "once");
        let found = store.key_holder(&key.key_hash).await.unwrap().expect("still read");
        assert_eq!((found.revoked_at, found.last_used_at), (Some(now), Some(now + 60)));
    }
}

on_every_backend! {
    /// Concurrent creations never pass the cap.
    async fn concurrent_creations_keep_to_the_cap(store) {
        let (alice, _) = user(store, "alice").await;
        let creations: Vec<_> = (0..8)
            .map(|i| {
                let (store, key) = (store.clone(), api_key(alice.id, &format!("{i:064}")));
                tokio::spawn(async move { store.create_api_key(key, 5, (&NO_SOURCE, None)).await })
            })
            .collect();
        let mut created = 0;
        for creation in creations {
            if creation.await.unwrap().unwrap() {
                created += 1;
            }
        }
        assert_eq!(created, 5);
        assert_eq!(store.api_keys_of(alice.id).await.unwrap().len(), 5);
    }
}

//! The ledger in place on a SQLite file: what only it does (its reads and
//! writes match the pool's, it waits for other writers and checkpoints,
//! keeps the WAL small, shares commits), beside the parity suite.

use super::*;

#[tokio::test]
async fn a_revocation_by_the_pool_counts_on_the_next_read_in_place() {
    let fixture = fixture(Backend::SqliteInPlace).await.unwrap();
    let in_place = &fixture.store;
    let pooled = Store::pooled_only(in_place.connection().clone());
    let (alice, sid) = user(&pooled, "alice").await;
    let jti = Uuid::new_v4();
    // Warm the reader, so a stale snapshot would show.
    assert!(
        in_place
            .user_unless_revoked(alice.id, sid, jti)
            .await
            .unwrap()
            .is_some()
    );
    end(&pooled, sid, 0, 0).await;
    assert!(
        in_place
            .user_unless_revoked(alice.id, sid, jti)
            .await
            .unwrap()
            .is_none()
    );
    assert!(in_place.is_revoked(sid, jti).await.unwrap());
}

#[tokio::test]
async fn an_in_memory_database_has_no_in_place_ledger() {
    let db = connect("sqlite::memory:").await;
    assert!(!Store::open(db).await.unwrap().ledger.is_in_place());
}

/// The row texts of `table` for `id`, as SQLite holds them.
async fn raw(store: &Store, sql: &str, id: Uuid) -> Vec<String> {
    let row = store
        .connection()
        .query_one_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Sqlite,
            sql,
            [id.into()],
        ))
        .await
        .unwrap()
        .unwrap();
    (0..3)
        .map(|i| {
            let text: Option<String> = row.try_get_by_index(i).ok();
            text.unwrap_or_else(|| row.try_get_by_index::<i64>(i).unwrap().to_string())
        })
        .collect()
}

#[tokio::test]
async fn a_rotation_in_place_writes_what_the_pool_writes() {
    let fixture = fixture(Backend::SqliteInPlace).await.unwrap();
    let in_place = &fixture.store;
    let pooled = Store::pooled_only(in_place.connection().clone());
    let (alice, first) = user(in_place, "alice").await;
    let second = Uuid::new_v4();
    let new = NewSession {
        id: second,
        user_agent: None,
        now: Utc::now(),
        expires_at: 0,
    };
    assert!(
        in_place
            .start_session(
                alice.id,
                &alice.password_hash,
                new,
                crate::events::Method::Password,
                &QUIET
            )
            .await
            .unwrap()
    );
    let (here, there) = (token(alice.id, first), token(alice.id, second));
    let now = Utc::now().trunc_subsecs(3);
    let exp = now.timestamp() + 3_600;
    assert!(matches!(
        in_place
            .rotate(&here, now, exp, RotationRules::default(), &QUIET)
            .await
            .unwrap(),
        Rotation::Rotated(_)
    ));
    assert!(matches!(
        pooled
            .rotate(&there, now, exp, RotationRules::default(), &QUIET)
            .await
            .unwrap(),
        Rotation::Rotated(_)
    ));
    let session = "SELECT last_used_at, expires_at, created_at FROM sessions WHERE id = ?";
    let (a, b) = (
        raw(in_place, session, first).await,
        raw(in_place, session, second).await,
    );
    assert_eq!(
        a[..2],
        b[..2],
        "the same text and numbers, whoever wrote them"
    );
    let revocation = "SELECT kind, revoked_at, expires_at FROM revocations WHERE id = ?";
    assert_eq!(
        raw(in_place, revocation, here.jti).await,
        raw(in_place, revocation, there.jti).await
    );
    // Reuse ends the session with the same row on either path.
    assert!(matches!(
        in_place
            .rotate(&here, now, exp, RotationRules::default(), &QUIET)
            .await
            .unwrap(),
        Rotation::Reused
    ));
    assert!(matches!(
        pooled
            .rotate(&there, now, exp, RotationRules::default(), &QUIET)
            .await
            .unwrap(),
        Rotation::Reused
    ));
    assert_eq!(
        raw(in_place, revocation, first).await,
        raw(in_place, revocation, second).await
    );
}

#[tokio::test]
async fn a_rotation_meeting_another_writer_waits_for_it_in_place() {
    let fixture = fixture(Backend::SqliteInPlace).await.unwrap();
    let store = &fixture.store;
    let crate::store::ledger::TokenLedger::InPlace(in_place) = &store.ledger else {
        panic!("in place");
    };
    let (alice, sid) = user(store, "alice").await;
    let old = token(alice.id, sid);
    // Another writer holds SQLite's write lock.
    let txn = store.connection().begin().await.unwrap();
    txn.execute_unprepared("UPDATE users SET email = email")
        .await
        .unwrap();
    let rotation = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .rotate(&old, Utc::now(), 0, RotationRules::default(), &QUIET)
                .await
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(!rotation.is_finished(), "it waits for the lock");
    txn.commit().await.unwrap();
    assert!(matches!(
        rotation.await.unwrap().unwrap(),
        Rotation::Rotated(_)
    ));
    assert!(store.is_revoked(Uuid::new_v4(), old.jti).await.unwrap());
    assert_eq!(
        in_place.commits(),
        1,
        "in place, on a blocking thread, not through the pool"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotations_in_place_keep_the_wal_from_growing() {
    let fixture = fixture(Backend::SqliteInPlace).await.unwrap();
    let store = &fixture.store;
    let (alice, sid) = user(store, "alice").await;
    let wal = fixture._dir.path().join("ledger.db-wal");
    let mut largest = 0;
    for _ in 0..4 * CHECKPOINT_EVERY {
        let rotated = store
            .rotate(
                &token(alice.id, sid),
                Utc::now(),
                0,
                RotationRules::default(),
                &QUIET,
            )
            .await
            .unwrap();
        assert!(matches!(rotated, Rotation::Rotated(_)));
        largest = largest.max(std::fs::metadata(&wal).unwrap().len());
        tokio::task::yield_now().await;
    }
    let page = 4096;
    // With passive checkpoints only, the WAL grew by about five pages a
    // rotation (10,548 pages after 2,000) and never started over: about
    // twenty per CHECKPOINT_EVERY after these rotations. With RESTART the
    // most is one interval's worth (six or seven a rotation) and what the
    // rotations write while the passive checkpoint before it copies: 6,900
    // to 7,500 pages alone, 8,500 beside the whole suite.
    eprintln!("largest WAL: {} pages", largest / page);
    let bound = u64::from(CHECKPOINT_EVERY) * 12 * page;
    assert!(largest < bound, "largest WAL {largest} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_meeting_a_checkpoint_waits_for_it_then_runs_in_place() {
    let fixture = fixture(Backend::SqliteInPlace).await.unwrap();
    let store = &fixture.store;
    let crate::store::ledger::TokenLedger::InPlace(in_place) = &store.ledger else {
        panic!("in place");
    };
    let (alice, sid) = user(store, "alice").await;
    // A pool transaction holds SQLite's write lock, so the checkpoint waits
    // for it while holding the writer.
    let txn = store.connection().begin().await.unwrap();
    txn.execute_unprepared("UPDATE users SET email = email")
        .await
        .unwrap();
    let checkpoint = tokio::task::spawn_blocking({
        let in_place = in_place.clone();
        move || in_place.checkpoint(std::time::Duration::from_secs(5))
    });
    while !in_place.writer_is_held() {
        tokio::task::yield_now().await;
    }
    let commits = in_place.commits();
    let rotation = tokio::spawn({
        let store = store.clone();
        let old = token(alice.id, sid);
        async move {
            store
                .rotate(&old, Utc::now(), 0, RotationRules::default(), &QUIET)
                .await
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(!rotation.is_finished(), "it waits");
    txn.commit().await.unwrap();
    checkpoint.await.unwrap().unwrap();
    assert!(matches!(
        rotation.await.unwrap().unwrap(),
        Rotation::Rotated(_)
    ));
    assert_eq!(
        in_place.commits(),
        commits + 1,
        "it ran in place once the checkpoint let go, not through the pool"
    );
}

/// Frames in the WAL of the database in `dir` since it last started over.
fn wal_frames(dir: &std::path::Path) -> i64 {
    let conn = rusqlite::Connection::open(dir.join("ledger.db")).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", (), |row| row.get(1))
        .unwrap()
}

#[tokio::test]
async fn concurrent_rotations_in_place_share_one_commit() {
    let fixture = fixture(Backend::SqliteInPlace).await.unwrap();
    let store = &fixture.store;
    let crate::store::ledger::TokenLedger::InPlace(in_place) = &store.ledger else {
        panic!("in place");
    };
    let mut tokens = Vec::new();
    for name in 0..16 {
        let (holder, sid) = user(store, &format!("user{name}")).await;
        tokens.push(token(holder.id, sid));
    }
    in_place
        .checkpoint(std::time::Duration::from_secs(5))
        .unwrap();
    let outcomes = futures::future::join_all(
        tokens
            .iter()
            .map(|old| store.rotate(old, Utc::now(), 0, RotationRules::default(), &QUIET)),
    )
    .await;
    for outcome in outcomes {
        assert!(matches!(outcome.unwrap(), Rotation::Rotated(_)));
    }
    for old in &tokens {
        assert!(store.is_revoked(Uuid::new_v4(), old.jti).await.unwrap());
        assert!(!store.is_revoked(old.sid, Uuid::new_v4()).await.unwrap());
    }
    assert_eq!(in_place.commits(), 16);
    // One at a time, each rotation writes its pages again: four or more.
    let frames = wal_frames(fixture._dir.path());
    assert!(frames < 16, "{frames} WAL frames for 16 rotations");
}

#[tokio::test]
async fn a_gathering_rotation_dropped_still_answers_the_rest() {
    let fixture = fixture(Backend::SqliteInPlace).await.unwrap();
    let store = &fixture.store;
    let (alice, alice_sid) = user(store, "alice").await;
    let (bob, bob_sid) = user(store, "bob").await;
    let first = token(alice.id, alice_sid);
    let second = token(bob.id, bob_sid);
    let mut gathering =
        Box::pin(store.rotate(&first, Utc::now(), 0, RotationRules::default(), &QUIET));
    assert!(
        futures::poll!(gathering.as_mut()).is_pending(),
        "it gathers"
    );
    let mut queued =
        Box::pin(store.rotate(&second, Utc::now(), 0, RotationRules::default(), &QUIET));
    assert!(
        futures::poll!(queued.as_mut()).is_pending(),
        "it waits for the batch"
    );
    drop(gathering);
    assert!(matches!(queued.await.unwrap(), Rotation::Rotated(_)));
    assert!(
        store.is_revoked(Uuid::new_v4(), first.jti).await.unwrap(),
        "the dropped request's rotation committed with the rest"
    );
}

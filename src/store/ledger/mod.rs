//! The token ledger: the blacklist and the hot path over it. The guard's
//! read, the revocation check and a refresh's rotation run on every
//! protected request, so they sit behind one seam with two backends, chosen
//! once when the store opens:
//!
//! - [`PoolLedger`]: SeaORM's pool. PostgreSQL, and an in-memory SQLite.
//! - [`InPlaceLedger`]: a SQLite file, read and written on the calling
//!   thread; it owns its fallback to the pool when SQLite is busy, and its
//!   WAL checkpoints.
//!
//! Both give the same answers: the parity suite (`tests.rs`) runs every
//! outcome on each backend.

mod pool;
mod sqlite;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use entity::user;
use sea_orm::{DatabaseConnection, DbErr};
use uuid::Uuid;

use pool::PoolLedger;
use sqlite::InPlaceLedger;

use super::TokenRef;
use crate::events::{Actor, EndReason, Event, Kind, Source};

/// What became of a refresh token presented for rotation.
#[derive(Debug)]
pub enum Rotation {
    /// It was live: now it is revoked, and the session's new tokens may be issued.
    Rotated(user::Profile),
    /// It had been rotated before: its session has now been ended.
    Reused,
    /// It was rotated less than the grace ago (a second tab with the same
    /// cookie): refused, and nothing ended.
    Superseded,
    /// Its session had ended.
    Revoked,
    /// Its user is gone.
    UnknownUser,
    /// Its user's address is not verified, and the rules ask for it:
    /// refused, nothing written, and the token still works once it is.
    Unverified,
}

/// How a rotation treats a token that is live but not to be rotated yet.
/// A reused refresh token's `session.ended`: a failure, by nobody known.
/// Both backends write it in the transaction that ends the session.
fn reuse(old: &TokenRef) -> Event {
    Event::new(
        Kind::SessionEnded {
            reason: EndReason::RefreshReused,
        },
        Some(old.user),
        Actor::ANONYMOUS,
    )
    .in_session(Some(old.sid))
}

#[derive(Debug, Clone, Copy, Default)]
pub struct RotationRules {
    /// Seconds after its rotation a token is `Superseded` rather than reused.
    pub grace: i64,
    /// Refuse (`Unverified`) a user whose address is not verified.
    pub verified_only: bool,
}

impl RotationRules {
    /// `Unverified` for a live token whose user this refuses.
    fn refuses(&self, user: &user::Profile) -> bool {
        self.verified_only && !user.email_verified
    }
}

/// What the guard's read of an API key found: the key's holder and what
/// decides whether the key still opens anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHolder {
    pub user: user::Profile,
    pub key_id: Uuid,
    /// Unix seconds.
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

#[derive(Clone)]
pub(crate) enum TokenLedger {
    Pool(PoolLedger),
    InPlace(Arc<InPlaceLedger>),
}

impl TokenLedger {
    /// In place on a SQLite file, else on the pool.
    pub(crate) async fn open(db: &DatabaseConnection) -> Result<Self, DbErr> {
        Ok(match InPlaceLedger::open(db).await? {
            Some(in_place) => Self::InPlace(Arc::new(in_place)),
            None => Self::pool_only(db),
        })
    }

    /// On the pool, whatever the database (for comparisons).
    pub(crate) fn pool_only(db: &DatabaseConnection) -> Self {
        Self::Pool(PoolLedger::new(db.clone()))
    }

    fn pool(&self) -> &PoolLedger {
        match self {
            Self::Pool(pool) => pool,
            Self::InPlace(in_place) => in_place.pool(),
        }
    }

    /// The user of a token, in one round trip: `None` when the user is gone
    /// or the token's `jti` or `sid` is revoked. No password hash is read.
    pub(crate) async fn user_unless_revoked(
        &self,
        user_id: Uuid,
        sid: Uuid,
        jti: Uuid,
    ) -> Result<Option<user::Profile>, DbErr> {
        match self {
            Self::Pool(pool) => pool.user_unless_revoked(user_id, sid, jti).await,
            Self::InPlace(in_place) => in_place.user_unless_revoked(user_id, sid, jti).await,
        }
    }

    /// The API key whose SHA-256 is `key_hash` and its user, in one round
    /// trip; `None` for no such key. Revoked and expired keys are found
    /// too: the caller tells them apart.
    pub(crate) async fn key_holder(&self, key_hash: &str) -> Result<Option<KeyHolder>, DbErr> {
        match self {
            Self::Pool(pool) => pool.key_holder(key_hash).await,
            Self::InPlace(in_place) => in_place.key_holder(key_hash).await,
        }
    }

    /// Is a token with this `sid` and `jti` revoked?
    pub(crate) async fn is_revoked(&self, sid: Uuid, jti: Uuid) -> Result<bool, DbErr> {
        match self {
            Self::Pool(pool) => pool.is_revoked(sid, jti).await,
            Self::InPlace(in_place) => in_place.is_revoked(sid, jti).await,
        }
    }

    /// Revokes the presented refresh token and moves its session on, or says
    /// why not: a token used before ends its session (reuse detection),
    /// unless it was rotated less than `rules.grace` seconds ago.
    pub(crate) async fn rotate(
        &self,
        old: &TokenRef,
        now: DateTime<Utc>,
        new_expires_at: i64,
        rules: RotationRules,
        source: &Arc<Source>,
    ) -> Result<Rotation, DbErr> {
        match self {
            Self::Pool(pool) => pool.rotate(old, now, new_expires_at, rules, source).await,
            Self::InPlace(in_place) => {
                in_place
                    .rotate(old, now, new_expires_at, rules, source)
                    .await
            }
        }
    }

    /// Deletes revocations and sessions whose every token expired before
    /// `cutoff` (Unix seconds; the caller subtracts the leeway). Returns rows
    /// deleted.
    ///
    /// A session's revocation goes only with its session row, whatever its
    /// own `expires_at` says: a refresh committing while the session ended
    /// may have moved the session on (its tokens are refused, but they
    /// expire later). The session row always holds the expiry of the newest
    /// token, so while it lives, so does the revocation, and the session can
    /// never come back.
    pub(crate) async fn prune(&self, cutoff: i64) -> Result<u64, DbErr> {
        self.pool().prune(cutoff).await
    }

    /// `SELECT 1` by the path the guard's reads take: the round trip every
    /// protected request pays at least. For benchmarks.
    pub(crate) async fn round_trip(&self) -> Result<(), DbErr> {
        match self {
            Self::InPlace(in_place) => in_place.round_trip(),
            Self::Pool(pool) => pool.round_trip().await,
        }
    }

    #[cfg(test)]
    pub(crate) fn is_in_place(&self) -> bool {
        matches!(self, Self::InPlace(_))
    }
}

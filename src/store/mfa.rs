//! The second factor's rows: TOTP credentials (pending, then enabled),
//! recovery codes (MACs), and the `mfaToken`s of logins waiting for a code.
//! Every use of a code is one conditional write, so a code counts once
//! however many requests present it at once.

use entity::{mfa_challenge, recovery_code, session, totp_credential};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    TransactionTrait,
};
use uuid::Uuid;

use super::Store;
use super::events::append_in;
use super::sessions::{end_each, ended_by_user, live_sessions_of};
use crate::events::{EndReason, Event, Kind, Method, Source};

type At = chrono::DateTime<chrono::Utc>;

/// Ends every pending `mfaToken` of `user_id` (its password changed).
pub(super) async fn void_challenges_in(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    now: i64,
) -> Result<(), DbErr> {
    mfa_challenge::Entity::update_many()
        .col_expr(mfa_challenge::Column::EndedAt, Expr::value(now))
        .filter(mfa_challenge::Column::UserId.eq(user_id))
        .filter(mfa_challenge::Column::EndedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

async fn replace_codes_in(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    macs: &[String],
) -> Result<(), DbErr> {
    recovery_code::Entity::delete_many()
        .filter(recovery_code::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    let rows = macs.iter().map(|mac| recovery_code::ActiveModel {
        id: Set(Uuid::new_v4()),
        user_id: Set(user_id),
        code_mac: Set(mac.clone()),
        used_at: Set(None),
    });
    recovery_code::Entity::insert_many(rows)
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Ends the live sessions of `user_id` but `keep`; returns how many.
async fn end_others_in(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    keep: Option<Uuid>,
    now: i64,
) -> Result<Vec<Event>, DbErr> {
    let mut others = live_sessions_of(user_id, now);
    if let Some(keep) = keep {
        others = others.filter(session::Column::Id.ne(keep));
    }
    let others = others.all(db).await?;
    end_each(
        db,
        others.iter().map(|s| (s.id, s.expires_at)).collect(),
        now,
        ended_by_user(user_id, EndReason::MfaChanged),
    )
    .await
}

/// The factor a proof was accepted as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Factor {
    Totp,
    RecoveryCode,
}

impl Factor {
    /// The sign-in method of a password and this factor.
    pub fn after_password(self) -> Method {
        match self {
            Self::Totp => Method::PasswordTotp,
            Self::RecoveryCode => Method::PasswordRecoveryCode,
        }
    }
}

/// A recovery code used: `mfa.recovery_code_used`, with the codes left.
async fn code_used_in(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    sid: Option<Uuid>,
) -> Result<Event, DbErr> {
    use sea_orm::PaginatorTrait;
    let remaining = recovery_code::Entity::find()
        .filter(recovery_code::Column::UserId.eq(user_id))
        .filter(recovery_code::Column::UsedAt.is_null())
        .count(db)
        .await?;
    Ok(Event::by_user(Kind::RecoveryCodeUsed { remaining }, user_id).in_session(sid))
}

/// What a presented code could be for a user's credential: the TOTP steps
/// it matches (later than the last accepted), and the MAC it would have as a
/// recovery code. Using it up takes the first that counts.
#[derive(Debug, Default)]
pub struct Proof {
    pub steps: Vec<i64>,
    pub recovery_mac: Option<String>,
}

/// How [`Store::finish_challenge`] ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Finish {
    /// The code is used, the challenge ended: sign in.
    Done(Factor),
    /// The code counts for nothing; nothing changed.
    WrongCode,
    /// Another request ended the challenge (or it expired); nothing changed.
    Gone,
}

/// Records the first of `proof`'s steps later than the last accepted (an
/// enabled credential's), else uses its recovery code; each one conditional
/// write, so of concurrent requests with one code one wins: `true` for it.
async fn use_proof_in(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    proof: &Proof,
    now: i64,
) -> Result<Option<Factor>, DbErr> {
    for &step in &proof.steps {
        let accepted = totp_credential::Entity::update_many()
            .col_expr(totp_credential::Column::LastStep, Expr::value(step))
            .filter(totp_credential::Column::UserId.eq(user_id))
            .filter(totp_credential::Column::EnabledAt.is_not_null())
            .filter(totp_credential::Column::LastStep.lt(step))
            .exec(db)
            .await?;
        if accepted.rows_affected == 1 {
            return Ok(Some(Factor::Totp));
        }
    }
    if let Some(mac) = &proof.recovery_mac {
        let used = recovery_code::Entity::update_many()
            .col_expr(recovery_code::Column::UsedAt, Expr::value(now))
            .filter(recovery_code::Column::UserId.eq(user_id))
            .filter(recovery_code::Column::CodeMac.eq(mac.as_str()))
            .filter(recovery_code::Column::UsedAt.is_null())
            .exec(db)
            .await?;
        return Ok((used.rows_affected == 1).then_some(Factor::RecoveryCode));
    }
    Ok(None)
}

impl Store {
    /// The user's TOTP credential, pending or enabled.
    #[tracing::instrument(name = "db.mfa.totp", level = "debug", skip_all, err(level = "debug"))]
    pub async fn totp_of(&self, user_id: Uuid) -> Result<Option<totp_credential::Model>, DbErr> {
        totp_credential::Entity::find_by_id(user_id)
            .one(&self.db)
            .await
    }

    /// Is MFA on for the user?
    pub async fn mfa_enabled(&self, user_id: Uuid) -> Result<bool, DbErr> {
        Ok(self
            .totp_of(user_id)
            .await?
            .is_some_and(|totp| totp.enabled_at.is_some()))
    }

    /// Starts (or starts over) an enrollment with the sealed secret;
    /// `false`, and nothing changed, when MFA is on already.
    #[tracing::instrument(
        name = "db.mfa.start_enrollment",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn start_enrollment(
        &self,
        user_id: Uuid,
        sealed_secret: String,
        now: i64,
    ) -> Result<bool, DbErr> {
        let txn = self.db.begin().await?;
        // A pending enrollment is started over.
        totp_credential::Entity::delete_many()
            .filter(totp_credential::Column::UserId.eq(user_id))
            .filter(totp_credential::Column::EnabledAt.is_null())
            .exec(&txn)
            .await?;
        let inserted = totp_credential::Entity::insert(totp_credential::ActiveModel {
            user_id: Set(user_id),
            sealed_secret: Set(sealed_secret),
            created_at: Set(now),
            enabled_at: Set(None),
            last_step: Set(0),
        })
        .exec_without_returning(&txn)
        .await;
        match inserted {
            Ok(_) => {
                txn.commit().await?;
                Ok(true)
            }
            // An enabled credential holds the row.
            Err(err)
                if matches!(
                    err.sql_err(),
                    Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
                ) =>
            {
                txn.rollback().await?;
                Ok(false)
            }
            Err(err) => Err(err),
        }
    }

    /// Enables the pending credential with its first code's `step`: the
    /// recovery codes stored, every session but `keep` ended. `None`, and
    /// nothing changed, when there is no pending credential or the step is
    /// not later than the last accepted.
    #[tracing::instrument(
        name = "db.mfa.enable",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn enable_mfa(
        &self,
        user_id: Uuid,
        step: i64,
        macs: &[String],
        keep: Option<Uuid>,
        source: &Source,
        at: At,
    ) -> Result<Option<u64>, DbErr> {
        let now = at.timestamp();
        let txn = self.db.begin().await?;
        let enabled = totp_credential::Entity::update_many()
            .col_expr(totp_credential::Column::EnabledAt, Expr::value(now))
            .col_expr(totp_credential::Column::LastStep, Expr::value(step))
            .filter(totp_credential::Column::UserId.eq(user_id))
            .filter(totp_credential::Column::EnabledAt.is_null())
            .filter(totp_credential::Column::LastStep.lt(step))
            .exec(&txn)
            .await?;
        if enabled.rows_affected == 0 {
            txn.rollback().await?;
            return Ok(None);
        }
        replace_codes_in(&txn, user_id, macs).await?;
        let ended = end_others_in(&txn, user_id, keep, now).await?;
        let count = ended.len() as u64;
        let mut events = vec![Event::by_user(Kind::MfaEnabled {}, user_id).in_session(keep)];
        events.extend(ended);
        let written = append_in(&txn, source, at, &events).await?;
        txn.commit().await?;
        written.log();
        Ok(Some(count))
    }

    /// Uses `proof` up for the user's enabled credential (see [`Proof`]):
    /// `true` when a step or the code counted.
    #[tracing::instrument(
        name = "db.mfa.use_proof",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn use_proof(
        &self,
        user_id: Uuid,
        proof: &Proof,
        (source, sid): (&Source, Option<Uuid>),
        at: At,
    ) -> Result<bool, DbErr> {
        let txn = self.db.begin().await?;
        let Some(factor) = use_proof_in(&txn, user_id, proof, at.timestamp()).await? else {
            txn.rollback().await?;
            return Ok(false);
        };
        let mut written = crate::events::Written::default();
        if factor == Factor::RecoveryCode {
            let used = code_used_in(&txn, user_id, sid).await?;
            written = append_in(&txn, source, at, &[used]).await?;
        }
        txn.commit().await?;
        written.log();
        Ok(true)
    }

    /// Replaces the user's recovery codes.
    #[tracing::instrument(
        name = "db.mfa.replace_codes",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn replace_recovery_codes(
        &self,
        user_id: Uuid,
        macs: &[String],
        (source, sid): (&Source, Option<Uuid>),
        at: At,
    ) -> Result<(), DbErr> {
        let txn = self.db.begin().await?;
        replace_codes_in(&txn, user_id, macs).await?;
        let event = Event::by_user(Kind::RecoveryCodesRegenerated {}, user_id).in_session(sid);
        let written = append_in(&txn, source, at, &[event]).await?;
        txn.commit().await?;
        written.log();
        Ok(())
    }

    /// Turns MFA off: the credential and the codes gone, pending
    /// `mfaToken`s void, every session but `keep` ended. Returns how many.
    #[tracing::instrument(
        name = "db.mfa.disable",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn disable_mfa(
        &self,
        user_id: Uuid,
        keep: Option<Uuid>,
        source: &Source,
        at: At,
    ) -> Result<u64, DbErr> {
        let now = at.timestamp();
        let txn = self.db.begin().await?;
        totp_credential::Entity::delete_many()
            .filter(totp_credential::Column::UserId.eq(user_id))
            .exec(&txn)
            .await?;
        recovery_code::Entity::delete_many()
            .filter(recovery_code::Column::UserId.eq(user_id))
            .exec(&txn)
            .await?;
        void_challenges_in(&txn, user_id, now).await?;
        let ended = end_others_in(&txn, user_id, keep, now).await?;
        let count = ended.len() as u64;
        let mut events = vec![Event::by_user(Kind::MfaDisabled {}, user_id).in_session(keep)];
        events.extend(ended);
        let written = append_in(&txn, source, at, &events).await?;
        txn.commit().await?;
        written.log();
        Ok(count)
    }

    /// Stores a login's pending second step.
    #[tracing::instrument(
        name = "db.mfa.create_challenge",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn create_challenge(
        &self,
        challenge: mfa_challenge::Model,
        source: &Source,
        at: At,
    ) -> Result<(), DbErr> {
        let challenged = Event::by_user(
            Kind::LoginMfaChallenged {
                method: Method::Password,
            },
            challenge.user_id,
        );
        let txn = self.db.begin().await?;
        mfa_challenge::Entity::insert(mfa_challenge::ActiveModel::from(challenge))
            .exec_without_returning(&txn)
            .await?;
        let written = append_in(&txn, source, at, &[challenged]).await?;
        txn.commit().await?;
        written.log();
        Ok(())
    }

    /// The pending second step whose `mfaToken` hashes to `token_hash`.
    #[tracing::instrument(
        name = "db.mfa.challenge",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn challenge(&self, token_hash: &str) -> Result<Option<mfa_challenge::Model>, DbErr> {
        mfa_challenge::Entity::find()
            .filter(mfa_challenge::Column::TokenHash.eq(token_hash))
            .one(&self.db)
            .await
    }

    /// Reserves one of challenge `id`'s `max` attempts before its code is
    /// checked: `true` for a request that got one while the challenge is live
    /// at `now`. One conditional write, so of any number of concurrent
    /// requests at most `max` are ever checked; a right code then ends the
    /// challenge ([`Store::finish_challenge`]), a wrong one keeps its attempt.
    #[tracing::instrument(
        name = "db.mfa.reserve_attempt",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn reserve_attempt(&self, id: Uuid, max: i32, now: i64) -> Result<bool, DbErr> {
        let failures = Expr::col(mfa_challenge::Column::Failures);
        let reserved = mfa_challenge::Entity::update_many()
            .col_expr(mfa_challenge::Column::Failures, failures.add(1))
            .filter(mfa_challenge::Column::Id.eq(id))
            .filter(mfa_challenge::Column::EndedAt.is_null())
            .filter(mfa_challenge::Column::Failures.lt(max))
            .filter(mfa_challenge::Column::ExpiresAt.gt(now))
            .exec(&self.db)
            .await?;
        Ok(reserved.rows_affected == 1)
    }

    /// Finishes challenge `id` with `proof`, in one transaction: the code is
    /// used up exactly when the challenge ends here, so a request that loses
    /// the challenge to another spends no recovery code and no step.
    #[tracing::instrument(
        name = "db.mfa.finish_challenge",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn finish_challenge(
        &self,
        id: Uuid,
        user_id: Uuid,
        proof: &Proof,
        source: &Source,
        at: At,
    ) -> Result<Finish, DbErr> {
        let now = at.timestamp();
        let txn = self.db.begin().await?;
        // The factor's rows first, then the challenge's: the order
        // `disable_mfa` takes them in, so the two never wait on each other.
        let Some(factor) = use_proof_in(&txn, user_id, proof, now).await? else {
            txn.rollback().await?;
            return Ok(Finish::WrongCode);
        };
        let ended = mfa_challenge::Entity::update_many()
            .col_expr(mfa_challenge::Column::EndedAt, Expr::value(now))
            .filter(mfa_challenge::Column::Id.eq(id))
            .filter(mfa_challenge::Column::EndedAt.is_null())
            .filter(mfa_challenge::Column::ExpiresAt.gt(now))
            .exec(&txn)
            .await?;
        if ended.rows_affected == 0 {
            txn.rollback().await?;
            return Ok(Finish::Gone);
        }
        let mut written = crate::events::Written::default();
        if factor == Factor::RecoveryCode {
            let used = code_used_in(&txn, user_id, None).await?;
            written = append_in(&txn, source, at, &[used]).await?;
        }
        txn.commit().await?;
        written.log();
        Ok(Finish::Done(factor))
    }

    /// Deletes challenges that expired before `cutoff`.
    #[tracing::instrument(name = "db.mfa.prune", level = "debug", skip_all, err(level = "debug"))]
    pub async fn prune_challenges(&self, cutoff: i64) -> Result<u64, DbErr> {
        let deleted = mfa_challenge::Entity::delete_many()
            .filter(mfa_challenge::Column::ExpiresAt.lt(cutoff))
            .exec(&self.db)
            .await?;
        Ok(deleted.rows_affected)
    }
}

//! Mail tokens and the outbox: a token's hash and its sealed mail are
//! written in one transaction (nothing is lost if the process dies after
//! it), and the mail worker claims, sends and marks rows here.

use entity::mail_token::{self, Purpose};
use entity::{login_failure, mail_window, outbox, session, user};
use sea_orm::sea_query::{Expr, ExprTrait, LockBehavior, LockType, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait, FromQueryResult,
    QueryFilter, Set, TransactionTrait,
};
use uuid::Uuid;

use super::Store;
use super::api_keys::revoke_keys_in;
use super::events::append_in;
use super::mfa::void_challenges_in;
use super::sessions::{end_each, ended_by_user, live_sessions_of};
use super::throttle::{WINDOW, count_in_window};
use super::throttle_key;
use crate::events::{EndReason, Event, KeyRevocation, Kind, Source};

/// Most mails queued to one address an hour; over it a request still
/// answers `true` and sends nothing.
pub const MAILS_PER_ADDRESS_PER_HOUR: u32 = 5;

/// A mail to queue with its token: the token's hash is kept, the token
/// itself only sealed in the outbox row.
pub struct QueuedMail {
    pub user_id: Uuid,
    pub purpose: Purpose,
    pub token_hash: String,
    /// Unix seconds.
    pub expires_at: i64,
    pub recipient: String,
    pub username: String,
    pub sealed_token: String,
}

/// Writes `mail` on `db` (a transaction): a newer token voids the older of
/// the same purpose.
pub(super) async fn queue_in(
    db: &impl ConnectionTrait,
    mail: QueuedMail,
    now: i64,
) -> Result<(), DbErr> {
    delete_tokens_in(db, mail.user_id, mail.purpose).await?;
    mail_token::Entity::insert(mail_token::ActiveModel {
        id: Set(Uuid::new_v4()),
        user_id: Set(mail.user_id),
        purpose: Set(mail.purpose),
        token_hash: Set(mail.token_hash),
        expires_at: Set(mail.expires_at),
    })
    .exec_without_returning(db)
    .await?;
    outbox::Entity::insert(outbox::ActiveModel {
        id: Set(Uuid::now_v7()),
        kind: Set(mail.purpose),
        recipient: Set(mail.recipient),
        username: Set(mail.username),
        sealed_token: Set(Some(mail.sealed_token)),
        created_at: Set(now),
        attempts: Set(0),
        next_attempt_at: Set(now),
        claimed_until: Set(None),
        sent_at: Set(None),
    })
    .exec_without_returning(db)
    .await
    .map(|_| ())
}

/// See [`Store::count_mail_request`]; on `db` (a signup's transaction).
pub(super) async fn count_request_in(
    db: &impl ConnectionTrait,
    address: &str,
    now: i64,
) -> Result<bool, DbErr> {
    let limit = MAILS_PER_ADDRESS_PER_HOUR;
    use mail_window::{Column, Entity};
    let (counted, _) = count_in_window::<Entity>(
        db,
        [
            Column::AddressHash,
            Column::Requests,
            Column::WindowStartedAt,
        ],
        &throttle_key(address),
        now,
        limit,
    )
    .await?;
    Ok(counted <= i64::from(limit))
}

/// Deletes `user_id`'s tokens of `purpose` on `db`: a newer one voids them,
/// using one ends the rest, `changePassword` voids reset links.
async fn delete_tokens_in(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    purpose: Purpose,
) -> Result<(), DbErr> {
    mail_token::Entity::delete_many()
        .filter(mail_token::Column::UserId.eq(user_id))
        .filter(mail_token::Column::Purpose.eq(purpose))
        .exec(db)
        .await
        .map(|_| ())
}

/// Deletes the token of `token_hash` and `purpose` on `db`: its user when it
/// had not expired. One statement, so of concurrent uses one gets the user.
async fn use_token_in(
    db: &impl ConnectionTrait,
    token_hash: &str,
    purpose: Purpose,
    now: i64,
) -> Result<Option<Uuid>, DbErr> {
    #[derive(FromQueryResult)]
    struct Used {
        user_id: Uuid,
        expires_at: i64,
    }
    let delete = Query::delete()
        .from_table(mail_token::Entity)
        .and_where(mail_token::Column::TokenHash.eq(token_hash))
        .and_where(mail_token::Column::Purpose.eq(purpose))
        .returning(
            Query::returning().columns([mail_token::Column::UserId, mail_token::Column::ExpiresAt]),
        )
        .to_owned();
    let used = Used::find_by_statement(db.get_database_backend().build(&delete))
        .one(db)
        .await?;
    Ok(used
        .filter(|used| used.expires_at > now)
        .map(|used| used.user_id))
}

impl Store {
    /// Queues `mail` with its token, in one transaction.
    #[tracing::instrument(
        name = "db.mail.queue",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn queue_mail(&self, mail: QueuedMail, now: i64) -> Result<(), DbErr> {
        let txn = self.db.begin().await?;
        queue_in(&txn, mail, now).await?;
        txn.commit().await
    }

    /// Counts a request for mail to `address` (known or not) against
    /// [`MAILS_PER_ADDRESS_PER_HOUR`], in one upsert: `true` while it is
    /// within the limit.
    #[tracing::instrument(
        name = "db.mail.count_request",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn count_mail_request(&self, address: &str, now: i64) -> Result<bool, DbErr> {
        count_request_in(&self.db, address, now).await
    }

    /// The writes of a request that sends no mail (an unknown address, or
    /// one over its limit): a transaction of the same shape as
    /// [`Self::queue_mail`]'s, so both take about as long.
    #[tracing::instrument(
        name = "db.mail.queue_nothing",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn queue_nothing(&self) -> Result<(), DbErr> {
        let txn = self.db.begin().await?;
        // What voiding older tokens costs a known address (no row matches).
        delete_tokens_in(&txn, Uuid::nil(), Purpose::PasswordReset).await?;
        txn.commit().await
    }

    /// Deletes mail windows that ended, spent tokens' leftovers
    /// (expired tokens) and mails sent before `sent_cutoff`.
    #[tracing::instrument(
        name = "db.mail.prune",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn prune_mail(&self, now: i64) -> Result<u64, DbErr> {
        let requests = mail_window::Entity::delete_many()
            .filter(mail_window::Column::WindowStartedAt.lte(now - WINDOW))
            .exec(&self.db)
            .await?;
        let tokens = mail_token::Entity::delete_many()
            .filter(mail_token::Column::ExpiresAt.lte(now))
            .exec(&self.db)
            .await?;
        let sent = outbox::Entity::delete_many()
            .filter(outbox::Column::SentAt.lt(now - 7 * 24 * 3600))
            .exec(&self.db)
            .await?;
        Ok(requests.rows_affected + tokens.rows_affected + sent.rows_affected)
    }

    /// Uses up a token of `purpose`: its user when it was good (known, not
    /// expired, not used), and it is gone either way after. One statement,
    /// so of concurrent uses exactly one gets the user.
    #[tracing::instrument(
        name = "db.mail.use_token",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn use_mail_token(
        &self,
        token_hash: &str,
        purpose: Purpose,
        now: i64,
    ) -> Result<Option<Uuid>, DbErr> {
        use_token_in(&self.db, token_hash, purpose, now).await
    }

    /// The user of a good token of `purpose`, leaving the token in place.
    #[tracing::instrument(
        name = "db.mail.peek_token",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn peek_mail_token(
        &self,
        token_hash: &str,
        purpose: Purpose,
        now: i64,
    ) -> Result<Option<user::Model>, DbErr> {
        let token = mail_token::Entity::find()
            .filter(mail_token::Column::TokenHash.eq(token_hash))
            .filter(mail_token::Column::Purpose.eq(purpose))
            .filter(mail_token::Column::ExpiresAt.gt(now))
            .all(&self.db)
            .await?
            .into_iter()
            .next();
        match token {
            Some(token) => self.find_user(token.user_id).await,
            None => Ok(None),
        }
    }

    /// Sets `user_id`'s address as verified; its verification tokens go.
    #[tracing::instrument(
        name = "db.mail.verify_email",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn verify_email(
        &self,
        user_id: Uuid,
        source: &Source,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), DbErr> {
        let txn = self.db.begin().await?;
        let verified = user::Entity::update_many()
            .col_expr(user::Column::EmailVerified, Expr::value(true))
            .filter(user::Column::Id.eq(user_id))
            .filter(user::Column::EmailVerified.eq(false))
            .exec(&txn)
            .await?;
        delete_tokens_in(&txn, user_id, Purpose::EmailVerification).await?;
        let mut written = crate::events::Written::default();
        if verified.rows_affected == 1 {
            let event = Event::by_user(Kind::EmailVerified {}, user_id);
            written = append_in(&txn, source, at, &[event]).await?;
        }
        txn.commit().await?;
        written.log();
        Ok(())
    }

    /// A password reset with the token of `token_hash`, in one transaction:
    /// the token used up, the new hash, the address verified (the mail
    /// proved it), every reset token gone, every session ended, every API
    /// key revoked, every pending `mfaToken` void (MFA stays on), the
    /// throttle's counts for the username and the email
    /// cleared. Returns how many sessions ended; `None`, and nothing changed, when the token is
    /// not good (any more: of concurrent resets with one token, one wins).
    #[tracing::instrument(
        name = "db.mail.reset_password",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn reset_password(
        &self,
        token_hash: &str,
        hash: String,
        source: &Source,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<u64>, DbErr> {
        let now = at.timestamp();
        let txn = self.db.begin().await?;
        let Some(user_id) = use_token_in(&txn, token_hash, Purpose::PasswordReset, now).await?
        else {
            txn.rollback().await?;
            return Ok(None);
        };
        let Some(user) = user::Entity::find_by_id(user_id).one(&txn).await? else {
            txn.rollback().await?;
            return Ok(None);
        };
        user::Entity::update_many()
            .col_expr(user::Column::PasswordHash, Expr::value(hash))
            .col_expr(user::Column::EmailVerified, Expr::value(true))
            .filter(user::Column::Id.eq(user_id))
            .exec(&txn)
            .await?;
        delete_tokens_in(&txn, user_id, Purpose::PasswordReset).await?;
        let sessions: Vec<session::Model> = live_sessions_of(user_id, now).all(&txn).await?;
        let ended = end_each(
            &txn,
            sessions.iter().map(|s| (s.id, s.expires_at)).collect(),
            now,
            ended_by_user(user_id, EndReason::PasswordReset),
        )
        .await?;
        let keys = revoke_keys_in(&txn, user_id, now).await?;
        void_challenges_in(&txn, user_id, now).await?;
        login_failure::Entity::delete_many()
            .filter(
                login_failure::Column::Id
                    .is_in([throttle_key(&user.username), throttle_key(&user.email)]),
            )
            .exec(&txn)
            .await?;
        let reset = Kind::PasswordReset {
            sessions_ended: ended.len() as u64,
            api_keys_revoked: keys.len() as u64,
        };
        let mut events = vec![Event::by_user(reset, user_id)];
        let sessions_ended = ended.len() as u64;
        events.extend(ended);
        events.extend(keys.into_iter().map(|key_id| {
            let revoked = Kind::ApiKeyRevoked {
                key_id,
                reason: KeyRevocation::PasswordReset,
            };
            Event::by_user(revoked, user_id)
        }));
        let written = append_in(&txn, source, at, &events).await?;
        txn.commit().await?;
        written.log();
        Ok(Some(sessions_ended))
    }

    /// Claims up to `limit` mails that are due at `now`, for `lease` seconds:
    /// another worker (on this server or another) skips them meanwhile; a
    /// worker that died lets its claim lapse and the mail goes out later.
    #[tracing::instrument(
        name = "db.outbox.claim",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn claim_mails(
        &self,
        now: i64,
        lease: i64,
        limit: u64,
    ) -> Result<Vec<outbox::Model>, DbErr> {
        let backend = self.db.get_database_backend();
        let mut due = Query::select();
        due.column(outbox::Column::Id)
            .from(outbox::Entity)
            .and_where(outbox::Column::SentAt.is_null())
            .and_where(outbox::Column::NextAttemptAt.lte(now))
            .and_where(
                outbox::Column::ClaimedUntil
                    .is_null()
                    .or(outbox::Column::ClaimedUntil.lt(now)),
            )
            .order_by(outbox::Column::Id, sea_orm::Order::Asc)
            .limit(limit);
        // PostgreSQL: rows another server is claiming are skipped, not
        // waited for. SQLite has one writer at a time anyway.
        if backend == DatabaseBackend::Postgres {
            due.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }
        let claim = Query::update()
            .table(outbox::Entity)
            .value(outbox::Column::ClaimedUntil, now + lease)
            .value(
                outbox::Column::Attempts,
                Expr::col(outbox::Column::Attempts).add(1),
            )
            .and_where(outbox::Column::Id.in_subquery(due))
            .returning_all()
            .to_owned();
        outbox::Model::find_by_statement(backend.build(&claim))
            .all(&self.db)
            .await
    }

    /// The mail went out: its sealed token is erased.
    #[tracing::instrument(
        name = "db.outbox.sent",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn mail_sent(&self, id: Uuid, now: i64) -> Result<(), DbErr> {
        outbox::Entity::update_many()
            .col_expr(outbox::Column::SentAt, Expr::value(now))
            .col_expr(
                outbox::Column::SealedToken,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                outbox::Column::ClaimedUntil,
                Expr::value(Option::<i64>::None),
            )
            .filter(outbox::Column::Id.eq(id))
            .exec(&self.db)
            .await
            .map(|_| ())
    }

    /// Sending failed: try again at `next_attempt_at`.
    #[tracing::instrument(
        name = "db.outbox.retry",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn mail_failed(&self, id: Uuid, next_attempt_at: i64) -> Result<(), DbErr> {
        outbox::Entity::update_many()
            .col_expr(outbox::Column::NextAttemptAt, Expr::value(next_attempt_at))
            .col_expr(
                outbox::Column::ClaimedUntil,
                Expr::value(Option::<i64>::None),
            )
            .filter(outbox::Column::Id.eq(id))
            .exec(&self.db)
            .await
            .map(|_| ())
    }

    /// `changePassword` voids pending reset tokens.
    pub(super) async fn void_reset_tokens(
        db: &impl ConnectionTrait,
        user_id: Uuid,
    ) -> Result<(), DbErr> {
        delete_tokens_in(db, user_id, Purpose::PasswordReset).await
    }
}

//! User rows: accounts, credentials, the user list and roles.

use entity::{session, user};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, SqlErr, TransactionTrait,
};
use uuid::Uuid;

use super::Store;
use super::events::append_in;
use super::mfa::void_challenges_in;
use super::sessions::{NewSession, end_each, ended_by_user, insert_session, live_sessions_of};
use crate::domain::{Email, Username};
use crate::events::{Actor, EndReason, Event, Kind, Source};

pub struct NewUser {
    pub id: Uuid,
    pub username: Username,
    pub email: Email,
    pub password_hash: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("{0} taken")]
    Taken(&'static str),
    #[error(transparent)]
    Db(#[from] DbErr),
}

#[derive(Debug, thiserror::Error)]
pub enum SetRoleError {
    #[error("the last admin can't be demoted")]
    LastAdmin,
    #[error("no such user")]
    UnknownUser,
    #[error(transparent)]
    Db(#[from] DbErr),
}

impl Store {
    /// Inserts the user, its first session and (mail on) its verification
    /// mail in one transaction. The unique indexes decide races: of
    /// concurrent signups of one name, one wins.
    #[tracing::instrument(
        name = "db.user.create",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn create_user(
        &self,
        new: NewUser,
        first_session: NewSession,
        verification: Option<super::QueuedMail>,
        source: &Source,
    ) -> Result<user::Model, CreateUserError> {
        let (sid, at) = (first_session.id, first_session.now);
        let user = user::ActiveModel {
            id: Set(new.id),
            username_key: Set(new.username.key()),
            username: Set(new.username.as_str().to_owned()),
            email: Set(new.email.as_str().to_owned()),
            password_hash: Set(new.password_hash),
            role: Set(user::Role::User),
            created_at: Set(first_session.now),
            email_verified: Set(false),
        };
        let now = first_session.now.timestamp();
        let txn = self.db.begin().await?;
        let user = match user.insert(&txn).await {
            Ok(user) => user,
            Err(err) => {
                return Err(match err.sql_err() {
                    Some(SqlErr::UniqueConstraintViolation(detail)) => {
                        CreateUserError::Taken(if detail.contains("email") {
                            "email"
                        } else {
                            "username"
                        })
                    }
                    _ => err.into(),
                });
            }
        };
        insert_session(&txn, user.id, first_session).await?;
        // An address asked for mail before it had an account counts too.
        if let Some(mail) = verification
            && super::mail::count_request_in(&txn, &mail.recipient, now).await?
        {
            super::mail::queue_in(&txn, mail, now).await?;
        }
        let signed_up = Event::by_user(Kind::SignedUp {}, user.id).in_session(Some(sid));
        let written = append_in(&txn, source, at, &[signed_up]).await?;
        txn.commit().await?;
        written.log();
        Ok(user)
    }

    /// The user a login names: by email when it has an `@`, else by username ignoring case.
    #[tracing::instrument(
        name = "db.user.find_for_login",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn find_for_login(&self, identifier: &str) -> Result<Option<user::Model>, DbErr> {
        match super::login_lookup(identifier) {
            Some(query) => self.unique(query).await,
            None => Ok(None),
        }
    }

    /// The stored password hash of `user_id`, for a field that checks the password.
    #[tracing::instrument(
        name = "db.user.password_hash",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn password_hash(&self, user_id: Uuid) -> Result<Option<String>, DbErr> {
        Ok(self
            .unique(user::Entity::find_by_id(user_id))
            .await?
            .map(|user| user.password_hash))
    }

    /// Replaces the password hash `verified` (the one the current password
    /// was checked against) with `hash` and ends every other live session, in
    /// one transaction. `None`, and nothing changed, when the stored hash is
    /// no longer `verified` (another change won). Else how many sessions ended.
    ///
    /// The update comes first: it takes the user row's lock (PostgreSQL) or
    /// the write lock (SQLite), so a login racing it either committed its
    /// session before, and is ended here, or checks the new hash after
    /// (see [`Store::start_session`]).
    #[tracing::instrument(
        name = "db.user.change_password",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn change_password(
        &self,
        user_id: Uuid,
        verified: &str,
        hash: String,
        keep: Uuid,
        source: &Source,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<u64>, DbErr> {
        let now = at.timestamp();
        let txn = self.db.begin().await?;
        let updated = user::Entity::update_many()
            .col_expr(user::Column::PasswordHash, Expr::value(hash))
            .filter(user::Column::Id.eq(user_id))
            .filter(user::Column::PasswordHash.eq(verified))
            .exec(&txn)
            .await?;
        if updated.rows_affected == 0 {
            txn.rollback().await?;
            return Ok(None);
        }
        let others = live_sessions_of(user_id, now)
            .filter(session::Column::Id.ne(keep))
            .all(&txn)
            .await?;
        let ended = end_each(
            &txn,
            others.iter().map(|s| (s.id, s.expires_at)).collect(),
            now,
            ended_by_user(user_id, EndReason::PasswordChanged),
        )
        .await?;
        Store::void_reset_tokens(&txn, user_id).await?;
        void_challenges_in(&txn, user_id, now).await?;
        let changed = Event::by_user(
            Kind::PasswordChanged {
                sessions_ended: ended.len() as u64,
            },
            user_id,
        )
        .in_session(Some(keep));
        let mut events = vec![changed];
        events.extend(ended);
        let written = append_in(&txn, source, at, &events).await?;
        txn.commit().await?;
        written.log();
        Ok(Some(events.len() as u64 - 1))
    }

    /// Users in a stable order (by id: UUIDv7, so oldest first), after `after`.
    #[tracing::instrument(name = "db.user.list", level = "debug", skip_all, err(level = "debug"))]
    pub async fn users_page(
        &self,
        after: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<user::Profile>, DbErr> {
        let mut query = user::Entity::find()
            .order_by_asc(user::Column::Id)
            .limit(limit);
        if let Some(after) = after {
            query = query.filter(user::Column::Id.gt(after));
        }
        query.into_partial_model().all(&self.db).await
    }

    #[tracing::instrument(
        name = "db.user.count",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn count_users(&self) -> Result<u64, DbErr> {
        user::Entity::find().count(&self.db).await
    }

    #[tracing::instrument(name = "db.user.find", level = "debug", skip_all, err(level = "debug"))]
    pub async fn find_user(&self, id: Uuid) -> Result<Option<user::Model>, DbErr> {
        self.unique(user::Entity::find_by_id(id)).await
    }

    /// Gives `user_id` `role`, refusing to leave the service without an admin.
    /// Concurrent demotions serialise: on PostgreSQL by locking the admin rows
    /// first, on SQLite because the first statement is a write.
    #[tracing::instrument(
        name = "db.user.set_role",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn set_role(
        &self,
        user_id: Uuid,
        role: user::Role,
        (source, by, sid): (&Source, Actor, Option<Uuid>),
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<user::Model, SetRoleError> {
        let txn = self.db.begin().await?;
        let postgres = txn.get_database_backend() == DatabaseBackend::Postgres;
        if postgres {
            user::Entity::find()
                .filter(user::Column::Role.eq(user::Role::Admin))
                .lock_exclusive()
                .all(&txn)
                .await?;
        }
        // Only a change is written (and recorded): with two roles, a row
        // that changed had the other one.
        let updated = user::Entity::update_many()
            .col_expr(user::Column::Role, Expr::value(role))
            .filter(user::Column::Id.eq(user_id))
            .filter(user::Column::Role.ne(role))
            .exec(&txn)
            .await?;
        let user = super::unique(&txn, user::Entity::find_by_id(user_id))
            .await?
            .ok_or(SetRoleError::UnknownUser)?;
        if updated.rows_affected == 0 {
            txn.rollback().await?;
            return Ok(user);
        }
        let admins = user::Entity::find()
            .filter(user::Column::Role.eq(user::Role::Admin))
            .count(&txn)
            .await?;
        if admins == 0 {
            txn.rollback().await?;
            return Err(SetRoleError::LastAdmin);
        }
        let from = match role {
            user::Role::Admin => user::Role::User,
            user::Role::User => user::Role::Admin,
        };
        let changed = Kind::RoleChanged {
            from: role_name(from),
            to: role_name(role),
        };
        let event = Event::new(changed, Some(user_id), by).in_session(sid);
        let written = append_in(&txn, source, at, &[event]).await?;
        txn.commit().await?;
        written.log();
        Ok(user)
    }
}

fn role_name(role: user::Role) -> &'static str {
    match role {
        user::Role::User => "USER",
        user::Role::Admin => "ADMIN",
    }
}

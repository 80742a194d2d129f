use chrono::{DateTime, Utc};
use entity::{session, user};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter,
    Set, SqlErr, TransactionTrait,
};
use uuid::Uuid;

use super::Store;
use crate::domain::{Email, Username};

pub struct NewUser {
    pub id: Uuid,
    pub username: Username,
    pub email: Email,
    pub password_hash: String,
}

/// The session row written when a login (or signup) starts a session.
pub struct NewSession {
    pub id: Uuid,
    pub user_agent: Option<String>,
    pub now: DateTime<Utc>,
    /// Unix seconds when its newest token expires.
    pub expires_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("{0} taken")]
    Taken(&'static str),
    #[error(transparent)]
    Db(#[from] DbErr),
}

impl Store {
    /// Inserts the user and its first session in one transaction. The unique
    /// indexes decide races: of concurrent signups of one name, one wins.
    pub async fn create_user(
        &self,
        new: NewUser,
        first_session: NewSession,
    ) -> Result<user::Model, CreateUserError> {
        let user = user::ActiveModel {
            id: Set(new.id),
            username_key: Set(new.username.key()),
            username: Set(new.username.as_str().to_owned()),
            email: Set(new.email.as_str().to_owned()),
            password_hash: Set(new.password_hash),
            role: Set(user::Role::User),
            created_at: Set(first_session.now),
        };
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
        txn.commit().await?;
        Ok(user)
    }

    /// The user a login names: by email when it has an `@`, else by username ignoring case.
    pub async fn find_for_login(&self, identifier: &str) -> Result<Option<user::Model>, DbErr> {
        let identifier = identifier.trim();
        // No stored name or email holds a NUL (signup refuses control
        // characters), and PostgreSQL refuses one in a text parameter.
        if identifier.contains('\0') {
            return Ok(None);
        }
        let filter = if identifier.contains('@') {
            user::Column::Email.eq(identifier.to_lowercase())
        } else {
            user::Column::UsernameKey.eq(identifier.to_ascii_lowercase())
        };
        self.unique(user::Entity::find().filter(filter)).await
    }

    /// Starts a session for a login that verified `user`'s password against
    /// `verified_hash`, only if that is still the user's hash: a login racing
    /// a password change either starts before the change (and the change
    /// ends it) or starts nothing. One statement, so it can't interleave: on
    /// SQLite it takes the write lock, and on PostgreSQL it locks the user
    /// row (`FOR SHARE`), waiting for a change under way and checking the
    /// hash again once that commits. False when the hash changed.
    pub async fn start_session(
        &self,
        user_id: Uuid,
        verified_hash: &str,
        new: NewSession,
    ) -> Result<bool, DbErr> {
        let mut source = Query::select();
        source
            .exprs([
                Expr::val(new.id),
                Expr::val(user_id),
                Expr::val(new.now),
                Expr::val(new.now),
                Expr::val(new.expires_at),
                Expr::val(new.user_agent),
            ])
            .from(user::Entity)
            .and_where(user::Column::Id.eq(user_id))
            .and_where(user::Column::PasswordHash.eq(verified_hash));
        if self.db.get_database_backend() == DbBackend::Postgres {
            source.lock_shared();
        }
        let insert = Query::insert()
            .into_table(session::Entity)
            .columns([
                session::Column::Id,
                session::Column::UserId,
                session::Column::CreatedAt,
                session::Column::LastUsedAt,
                session::Column::ExpiresAt,
                session::Column::UserAgent,
            ])
            .select_from(source)
            .map_err(|err| DbErr::Custom(err.to_string()))?
            .to_owned();
        let inserted = self.db.execute(&insert).await?;
        Ok(inserted.rows_affected() == 1)
    }

    /// The stored password hash of `user_id`, for a field that checks the password.
    pub async fn password_hash(&self, user_id: Uuid) -> Result<Option<String>, DbErr> {
        Ok(self
            .unique(user::Entity::find_by_id(user_id))
            .await?
            .map(|user| user.password_hash))
    }

    /// The user of a token, in one round trip: `None` when the user is gone or
    /// the token's `jti` or `sid` is revoked. No password hash is read.
    pub async fn user_unless_revoked(
        &self,
        user_id: Uuid,
        sid: Uuid,
        jti: Uuid,
    ) -> Result<Option<user::Profile>, DbErr> {
        if let Some(found) = self.in_place(|r| r.user_unless_revoked(user_id, sid, jti)) {
            return Ok(found);
        }
        Ok(user_unless_revoked(user_id, sid, jti)
            .all(&self.db)
            .await?
            .into_iter()
            .next())
    }
}

/// The guard's query on the pool: the user's profile unless a revocation row
/// names the token's `sid` or `jti`. (Not `.one()`; see [`Store::unique`].)
fn user_unless_revoked(
    user_id: Uuid,
    sid: Uuid,
    jti: Uuid,
) -> sea_orm::Selector<sea_orm::SelectModel<user::Profile>> {
    let revoked = Query::select()
        .expr(Expr::cust("1"))
        .from(entity::revocation::Entity)
        .and_where(entity::revocation::Column::Id.is_in([sid, jti]))
        .to_owned();
    user::Entity::find_by_id(user_id)
        .filter(Expr::exists(revoked).not())
        .into_partial_model::<user::Profile>()
}

async fn insert_session(
    db: &impl sea_orm::ConnectionTrait,
    user_id: Uuid,
    new: NewSession,
) -> Result<(), DbErr> {
    session::ActiveModel {
        id: Set(new.id),
        user_id: Set(user_id),
        created_at: Set(new.now),
        last_used_at: Set(new.now),
        expires_at: Set(new.expires_at),
        user_agent: Set(new.user_agent),
    }
    .insert(db)
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use sea_orm::DbBackend;

    use super::*;

    #[test]
    fn the_guard_s_query_reads_no_password_hash() {
        let (id, sid, jti) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        for backend in [DbBackend::Sqlite, DbBackend::Postgres] {
            let sql = user_unless_revoked(id, sid, jti)
                .into_statement(backend)
                .to_string();
            assert!(sql.contains("username"), "{sql}");
            assert!(!sql.contains("password_hash"), "{sql}");
        }
    }
}

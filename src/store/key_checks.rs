//! Check values of the keys every server of one database must share (the
//! data key), and a sealed value to try a key on when a database from
//! before the check has none.

use entity::{key_check, outbox, totp_credential};
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QuerySelect, Set};

use super::Store;

/// A value sealed under the data key, with what sealed it.
#[derive(Debug)]
pub enum Sealed {
    /// A TOTP secret.
    TotpSecret(String),
    /// A queued mail's token.
    OutboxToken(String),
}

impl Store {
    /// The check value stored under `name`, if any.
    #[tracing::instrument(
        name = "db.key_check.get",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn key_check(&self, name: &str) -> Result<Option<String>, DbErr> {
        Ok(key_check::Entity::find_by_id(name.to_owned())
            .one(&self.db)
            .await?
            .map(|check| check.check_value))
    }

    /// Stores `check_value` under `name` unless one is there already
    /// (another server's, started at the same moment), and returns the one
    /// stored: one statement decides which.
    #[tracing::instrument(
        name = "db.key_check.put",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn put_key_check(
        &self,
        name: &str,
        check_value: &str,
        now: i64,
    ) -> Result<String, DbErr> {
        key_check::Entity::insert(key_check::ActiveModel {
            name: Set(name.to_owned()),
            check_value: Set(check_value.to_owned()),
            created_at: Set(now),
        })
        .on_conflict_do_nothing_on([key_check::Column::Name])
        .exec_without_returning(&self.db)
        .await?;
        self.key_check(name)
            .await?
            .ok_or_else(|| DbErr::RecordNotFound("the key check just stored".into()))
    }

    /// One value sealed under the data key, if the database holds any.
    #[tracing::instrument(
        name = "db.key_check.sealed",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn a_sealed_value(&self) -> Result<Option<Sealed>, DbErr> {
        let secret = totp_credential::Entity::find()
            .select_only()
            .column(totp_credential::Column::SealedSecret)
            .limit(1)
            .into_tuple::<String>()
            .one(&self.db)
            .await?;
        if let Some(secret) = secret {
            return Ok(Some(Sealed::TotpSecret(secret)));
        }
        let token = outbox::Entity::find()
            .select_only()
            .column(outbox::Column::SealedToken)
            .filter(outbox::Column::SealedToken.is_not_null())
            .limit(1)
            .into_tuple::<Option<String>>()
            .one(&self.db)
            .await?
            .flatten();
        Ok(token.map(Sealed::OutboxToken))
    }
}

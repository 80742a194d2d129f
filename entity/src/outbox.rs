use sea_orm::entity::prelude::*;

use crate::mail_token::Purpose;

/// A mail to send, written in the transaction that made its token; the
/// mail worker claims it, sends it (retrying with backoff) and marks it sent.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Which mail: a reset link or a verification link.
    pub kind: Purpose,
    pub recipient: String,
    /// The name the mail greets.
    pub username: String,
    /// The token, sealed under the data key; erased once the mail is sent.
    pub sealed_token: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    pub attempts: i32,
    /// Unix seconds: not sent before this (backoff after a failure).
    pub next_attempt_at: i64,
    /// Unix seconds: a worker holds the row until then.
    pub claimed_until: Option<i64>,
    /// Unix seconds.
    pub sent_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

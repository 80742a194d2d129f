use sea_orm::entity::prelude::*;

/// What a revocation covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum Kind {
    /// One token, by its `jti`: a refresh token that has been rotated.
    #[sea_orm(string_value = "token")]
    Token,
    /// Every token of a session, by its `sid`.
    #[sea_orm(string_value = "session")]
    Session,
}

/// The blacklist: a token whose `jti` or `sid` is here is refused.
/// A row can go once every token it covers has expired (`expires_at`); a
/// session's row, only once its session row has gone too.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "revocations")]
pub struct Model {
    /// A `jti` or a `sid` (both random UUIDs, so they never collide).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub kind: Kind,
    /// Unix seconds.
    pub revoked_at: i64,
    /// Unix seconds after which no token this row covers is valid any more.
    pub expires_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

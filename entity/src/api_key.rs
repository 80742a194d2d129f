use sea_orm::entity::prelude::*;

/// A long-lived credential of a user (`Authorization: Token ag_...`): only
/// its SHA-256 hash is kept, beside the prefix shown in lists.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    /// The 8 characters after `ag_`: tells keys apart in a list, opens nothing.
    pub prefix: String,
    /// SHA-256 of the whole key, hex.
    pub key_hash: String,
    pub created_at: DateTimeUtc,
    /// Unix seconds, written at most once a minute.
    pub last_used_at: Option<i64>,
    /// Unix seconds.
    pub expires_at: i64,
    /// Unix seconds; the row stays until it expires, so a revoked key is
    /// told apart from a made-up one.
    pub revoked_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::Id",
        on_delete = "Cascade"
    )]
    User,
}

impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

use sea_orm::entity::prelude::*;

/// A user's TOTP authenticator: pending until a first correct code enables it.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "totp_credentials")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    /// The secret, sealed under the data key's TOTP subkey: never stored plain.
    pub sealed_secret: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; `None` while the enrollment waits for its first code.
    pub enabled_at: Option<i64>,
    /// The newest time step accepted: a code counts only for a later one.
    pub last_step: i64,
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

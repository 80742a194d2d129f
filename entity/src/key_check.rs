use sea_orm::entity::prelude::*;

/// The check value of a key every server of the database must hold
/// (`data_key`): a MAC of a fixed label under a subkey used for nothing
/// else, stored by the first server to start.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "key_checks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    /// HMAC-SHA256, hex.
    pub check_value: String,
    /// Unix seconds.
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

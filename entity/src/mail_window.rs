use sea_orm::entity::prelude::*;

/// Mail requests for one address, known or not, in the current window: what
/// the per-address limit counts, written alike whether or not an account has
/// the address, and decided by one upsert.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "mail_windows")]
pub struct Model {
    /// SHA-256 (hex) of the address, trimmed and lower-cased.
    #[sea_orm(primary_key, auto_increment = false)]
    pub address_hash: String,
    /// Requests counted in this window.
    pub requests: i32,
    /// Unix seconds: when the window began; it lasts an hour.
    pub window_started_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

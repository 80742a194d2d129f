use sea_orm::entity::prelude::*;

/// Failed password (or second-factor) checks of one account identifier in
/// the current window: the per-account throttle, shared by every server on
/// the database.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "login_failures")]
pub struct Model {
    /// SHA-256 (hex) of the identifier as typed, trimmed and lower-cased.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Checks counted in this window (an attempt counts when it starts, and
    /// is taken back when the password proves right).
    pub failures: i32,
    /// Unix seconds: when the window began; it lasts an hour.
    pub window_started_at: i64,
    /// The `window_started_at` of the window whose refusal was recorded as
    /// a `login.failed` event (`throttled`): one per identifier and window.
    pub throttled_noted_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

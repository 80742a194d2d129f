use sea_orm::entity::prelude::*;

/// One security event: the append-only log, read in `position` order.
/// Events are only ever inserted (and pruned once past retention).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "security_events")]
pub struct Model {
    /// The log's order: commit order (see `store/events.rs`).
    #[sea_orm(primary_key, auto_increment = false)]
    pub position: i64,
    /// UUIDv7: the event's name to the outside world.
    #[sea_orm(unique)]
    pub id: Uuid,
    /// Unix microseconds.
    pub occurred_at: i64,
    /// Dotted: `login.succeeded`, `session.ended`, ...
    pub kind: String,
    /// The outcome: `FAILURE` when true.
    pub failed: bool,
    pub user_id: Option<Uuid>,
    pub session_id: Option<Uuid>,
    /// `USER`, `ADMIN`, `API_KEY`, `SYSTEM` or `ANONYMOUS`.
    pub actor_kind: String,
    pub actor_id: Option<Uuid>,
    pub ip: Option<String>,
    /// At most 256 characters.
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    /// The kind's `detail`, a JSON object, as text.
    pub detail: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

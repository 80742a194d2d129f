//! The security-event log: appended in the transaction of the change an
//! event records, read newest first by position, pruned past retention.
//!
//! ## Why a position is commit order
//!
//! Readers (the queries, and later the webhook dispatcher and the
//! revocation stream) follow the log by position and must never find a gap
//! filled behind them. A bare sequence does not give that on PostgreSQL:
//! transaction A takes 7, B takes 8, B commits, a reader sees 8 and moves
//! past 7 for good before A commits. So on PostgreSQL a position is taken
//! from the one row of `security_event_positions` (`UPDATE ... SET last =
//! last + 1`), whose row lock is held until the writer commits or rolls
//! back: the next writer waits for it, so positions are handed out, and
//! become visible, in commit order, and a rolled-back one is handed out
//! again (no gaps at all). The price is that event-writing transactions
//! take turns at their commit across the fleet; every event is appended as
//! the last statements of its transaction (after every other lock it
//! takes, so the wait can't deadlock), which keeps each turn to one round
//! trip and the commit. Sign-ins, the most frequent writers, are bounded
//! by Argon2 well below that rate (README, "Benchmarks"); rotations write
//! no event. The alternative, transaction ids read below
//! `pg_snapshot_xmin`, keeps writers apart but holds every reader back
//! behind the oldest transaction still running, anywhere in the database.
//!
//! On SQLite there is one writer at a time, so `AUTOINCREMENT` is commit
//! order already (and never reuses a position, even once pruning emptied
//! the table).

use chrono::{DateTime, Utc};
use entity::security_event;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement, Value,
};
use uuid::Uuid;

use super::Store;
use crate::events::{Event, Recorded, Source, Written};

/// At most this many characters of a user agent are kept.
pub const MAX_USER_AGENT: usize = 256;

/// Rows a prune deletes per statement.
const PRUNE_BATCH: u64 = 1000;

const COLUMNS: &str = "id, occurred_at, kind, failed, user_id, session_id, actor_kind, \
                       actor_id, ip, user_agent, request_id, detail";

/// SQLite's insert (the in-place ledger binds the same twelve values).
pub(crate) const SQLITE_INSERT: &str = "INSERT INTO security_events (id, occurred_at, kind, \
     failed, user_id, session_id, actor_kind, actor_id, ip, user_agent, request_id, detail) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING position";

/// An event's row before it has a position: the values every backend binds,
/// in [`COLUMNS`]' order.
pub(crate) struct Row {
    pub id: Uuid,
    pub occurred_at: i64,
    pub kind: String,
    pub failed: bool,
    pub user_id: Option<Uuid>,
    pub session_id: Option<Uuid>,
    pub actor_kind: &'static str,
    pub actor_id: Option<Uuid>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub detail: String,
}

impl Row {
    pub(crate) fn new(source: &Source, at: DateTime<Utc>, event: &Event) -> Self {
        let (kind, detail) = event.kind.name_and_detail();
        let user_agent = source.user_agent.as_deref().map(|ua| {
            ua.char_indices()
                .nth(MAX_USER_AGENT)
                .map_or(ua, |(cut, _)| &ua[..cut])
                .to_owned()
        });
        Self {
            id: Uuid::now_v7(),
            occurred_at: at.timestamp_micros(),
            kind,
            failed: event.kind.failed(),
            user_id: event.user_id,
            session_id: event.session_id,
            actor_kind: event.actor.kind.as_str(),
            actor_id: event.actor.id,
            ip: source.ip.map(|ip| ip.to_canonical().to_string()),
            user_agent,
            request_id: source.request_id.as_deref().map(str::to_owned),
            detail,
        }
    }

    fn values(&self) -> Vec<Value> {
        vec![
            self.id.into(),
            self.occurred_at.into(),
            self.kind.clone().into(),
            self.failed.into(),
            self.user_id.into(),
            self.session_id.into(),
            self.actor_kind.into(),
            self.actor_id.into(),
            self.ip.clone().into(),
            self.user_agent.clone().into(),
            self.request_id.clone().into(),
            self.detail.clone().into(),
        ]
    }

    pub(crate) fn recorded(self, position: i64, event: &Event) -> Recorded {
        Recorded {
            id: self.id,
            position,
            kind: self.kind,
            failed: self.failed,
            user_id: self.user_id,
            session_id: self.session_id,
            actor: event.actor,
            ip: self.ip,
            user_agent: self.user_agent,
            request_id: self.request_id,
            detail: self.detail,
        }
    }
}

/// Appends `events` in the transaction `db`, from `source` at `at`. Call it
/// last in the transaction (see the module's note), and log what it returns
/// once the transaction committed.
pub(crate) async fn append_in(
    db: &impl ConnectionTrait,
    source: &Source,
    at: DateTime<Utc>,
    events: &[Event],
) -> Result<Written, DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => format!(
            "WITH p AS (UPDATE security_event_positions SET last = last + 1 WHERE id = 1 \
             RETURNING last) \
             INSERT INTO security_events (position, {COLUMNS}) \
             SELECT p.last, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 FROM p \
             RETURNING position"
        ),
        _ => SQLITE_INSERT.to_owned(),
    };
    let mut written = Vec::with_capacity(events.len());
    for event in events {
        let row = Row::new(source, at, event);
        let inserted = db
            .query_one_raw(Statement::from_sql_and_values(backend, &sql, row.values()))
            .await?
            .ok_or_else(|| DbErr::RecordNotInserted)?;
        let position: i64 = inserted.try_get("", "position")?;
        written.push(row.recorded(position, event));
    }
    Ok(Written(written))
}

/// What a page of the log is narrowed to.
#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    pub user_id: Option<Uuid>,
    /// Exact kinds (a `prefix.*` is expanded by the caller); empty: any.
    pub kinds: Vec<String>,
    /// Unix microseconds, inclusive.
    pub since: Option<i64>,
    /// Unix microseconds, exclusive.
    pub until: Option<i64>,
    /// Canonical text of an address.
    pub ip: Option<String>,
}

impl Store {
    /// Writes `events` on their own (a refusal, which changes nothing else)
    /// and logs them.
    #[tracing::instrument(
        name = "db.events.record",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn record(
        &self,
        source: &Source,
        at: DateTime<Utc>,
        events: &[Event],
    ) -> Result<(), DbErr> {
        use sea_orm::TransactionTrait;
        let txn = self.db.begin().await?;
        let written = append_in(&txn, source, at, events).await?;
        txn.commit().await?;
        written.log();
        Ok(())
    }

    /// Up to `limit` events matching `filter` below position `before`,
    /// newest (highest position) first.
    #[tracing::instrument(
        name = "db.events.page",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn events_page(
        &self,
        filter: &EventFilter,
        before: Option<i64>,
        limit: u64,
    ) -> Result<Vec<security_event::Model>, DbErr> {
        use security_event::Column;
        let mut condition = Condition::all();
        if let Some(before) = before {
            condition = condition.add(Column::Position.lt(before));
        }
        if let Some(user_id) = filter.user_id {
            condition = condition.add(Column::UserId.eq(user_id));
        }
        if !filter.kinds.is_empty() {
            condition = condition.add(Column::Kind.is_in(filter.kinds.iter().cloned()));
        }
        if let Some(since) = filter.since {
            condition = condition.add(Column::OccurredAt.gte(since));
        }
        if let Some(until) = filter.until {
            condition = condition.add(Column::OccurredAt.lt(until));
        }
        if let Some(ip) = &filter.ip {
            condition = condition.add(Column::Ip.eq(ip.as_str()));
        }
        security_event::Entity::find()
            .filter(condition)
            .order_by_desc(Column::Position)
            .limit(limit)
            .all(&self.db)
            .await
    }

    /// Deletes events that occurred before `cutoff` (Unix microseconds), a
    /// batch at a time, so no statement holds the table for long. Returns
    /// rows deleted.
    #[tracing::instrument(
        name = "db.events.prune",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn prune_events(&self, cutoff: i64) -> Result<u64, DbErr> {
        use security_event::Column;
        let mut deleted = 0;
        loop {
            let batch: Vec<i64> = security_event::Entity::find()
                .select_only()
                .column(Column::Position)
                .filter(Column::OccurredAt.lt(cutoff))
                .order_by_asc(Column::Position)
                .limit(PRUNE_BATCH)
                .into_tuple()
                .all(&self.db)
                .await?;
            let Some(&last) = batch.last() else {
                return Ok(deleted);
            };
            let done = security_event::Entity::delete_many()
                .filter(Column::Position.lte(last))
                .filter(Column::OccurredAt.lt(cutoff))
                .exec(&self.db)
                .await?;
            deleted += done.rows_affected;
            if (batch.len() as u64) < PRUNE_BATCH {
                return Ok(deleted);
            }
        }
    }
}

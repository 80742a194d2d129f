//! Security events: `Query.securityEvents` (ADMIN), `User.securityEvents`
//! (the user themself, or an ADMIN), and the `access.denied` event every
//! `FORBIDDEN` answer records (`record_denials`, run by the pipeline once
//! an operation is done).

use std::sync::Arc;

use async_graphql::extensions::ExtensionContext;
use async_graphql::{Context, Enum, ID, InputObject, Json, Object, PathSegment, SimpleObject};
use entity::{security_event, user};
use uuid::Uuid;

use super::context::{AdminOnly, ContextExt, RequestMeta};
use super::paging::{self, PageInfo};
use super::scalars::DateTime;
use crate::domain::InvalidInput;
use crate::error::AppError;
use crate::error::code;
use crate::events::{Actor as EventActor, Event, KINDS, Kind};
use crate::state::AppState;
use crate::store::EventFilter;

const DEFAULT_PAGE: i32 = 20;
const MAX_PAGE: i32 = 100;
const CURSOR_PREFIX: &str = "event:";

fn encode_cursor(position: i64) -> String {
    paging::encode_cursor(CURSOR_PREFIX, position)
}

fn decode_cursor(cursor: &str) -> Option<i64> {
    paging::decode_cursor(CURSOR_PREFIX, cursor).filter(|position: &i64| *position > 0)
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum SecurityEventOutcome {
    Success,
    Failure,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum ActorKind {
    User,
    Admin,
    ApiKey,
    System,
    Anonymous,
}

/// Who acted.
#[derive(SimpleObject)]
pub struct Actor {
    kind: ActorKind,
    /// USER, ADMIN: a user id; API_KEY: the key's id; else null.
    id: Option<ID>,
}

/// One entry of the security-event log.
pub struct SecurityEvent(security_event::Model);

#[Object]
impl SecurityEvent {
    /// UUIDv7. The log's order is its position (see `securityEvents`), not this id's.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn occurred_at(&self) -> DateTime {
        DateTime(chrono::DateTime::from_timestamp_micros(self.0.occurred_at).unwrap_or_default())
    }

    /// Dotted: `login.succeeded`, `session.ended`, ... (README, "Security events").
    async fn kind(&self) -> &str {
        &self.0.kind
    }

    async fn outcome(&self) -> SecurityEventOutcome {
        match self.0.failed {
            true => SecurityEventOutcome::Failure,
            false => SecurityEventOutcome::Success,
        }
    }

    /// The account concerned; null when none (an unknown account).
    async fn user_id(&self) -> Option<ID> {
        self.0.user_id.map(|id| ID(id.to_string()))
    }

    /// The session started, ended, or acted in.
    async fn session_id(&self) -> Option<ID> {
        self.0.session_id.map(|id| ID(id.to_string()))
    }

    async fn actor(&self) -> Actor {
        let kind = match self.0.actor_kind.as_str() {
            "ADMIN" => ActorKind::Admin,
            "API_KEY" => ActorKind::ApiKey,
            "SYSTEM" => ActorKind::System,
            "ANONYMOUS" => ActorKind::Anonymous,
            _ => ActorKind::User,
        };
        Actor {
            kind,
            id: self.0.actor_id.map(|id| ID(id.to_string())),
        }
    }

    /// The client IP; null for SYSTEM.
    async fn ip(&self) -> Option<&str> {
        self.0.ip.as_deref()
    }

    /// At most 256 characters.
    async fn user_agent(&self) -> Option<&str> {
        self.0.user_agent.as_deref()
    }

    /// The request's `X-Request-Id`.
    async fn request_id(&self) -> Option<&str> {
        self.0.request_id.as_deref()
    }

    /// The kind's keys; never a secret.
    async fn detail(&self) -> Json<serde_json::Value> {
        Json(serde_json::from_str(&self.0.detail).unwrap_or_else(|_| serde_json::json!({})))
    }
}

#[derive(SimpleObject)]
pub struct SecurityEventEdge {
    cursor: String,
    node: SecurityEvent,
}

#[derive(SimpleObject)]
pub struct SecurityEventConnection {
    edges: Vec<SecurityEventEdge>,
    page_info: PageInfo,
}

#[derive(InputObject, Default)]
pub struct SecurityEventFilter {
    user_id: Option<ID>,
    /// Exact kinds, or `prefix.*` (every kind of `prefix`).
    kinds: Option<Vec<String>>,
    /// Inclusive.
    since: Option<DateTime>,
    /// Exclusive.
    until: Option<DateTime>,
    ip: Option<String>,
}

/// The kinds a filter names, each checked and `prefix.*` expanded.
fn kinds_of(asked: &[String]) -> Result<Vec<String>, InvalidInput> {
    let mut kinds = Vec::new();
    for kind in asked {
        let matching: Vec<&str> = match kind.strip_suffix(".*") {
            Some(prefix) => KINDS
                .iter()
                .copied()
                .filter(|known| {
                    known
                        .strip_prefix(prefix)
                        .is_some_and(|rest| rest.starts_with('.'))
                })
                .collect(),
            None => KINDS
                .iter()
                .copied()
                .filter(|known| known == kind)
                .collect(),
        };
        if matching.is_empty() {
            return Err(InvalidInput::new(
                "kinds",
                "names a kind that is not one of API.md's (or a prefix.* of none)",
            ));
        }
        kinds.extend(matching.into_iter().map(str::to_owned));
    }
    Ok(kinds)
}

impl SecurityEventFilter {
    fn parse(self) -> Result<EventFilter, InvalidInput> {
        let user_id = match self.user_id {
            Some(id) => Some(
                Uuid::parse_str(&id)
                    .map_err(|_| InvalidInput::new("userId", "is not a user id"))?,
            ),
            None => None,
        };
        let micros = |at: Option<DateTime>| at.map(|at| at.0.timestamp_micros());
        let (since, until) = (micros(self.since), micros(self.until));
        if let (Some(since), Some(until)) = (since, until)
            && since > until
        {
            return Err(InvalidInput::new("since", "must not be after until"));
        }
        let ip = match self.ip {
            Some(ip) => Some(
                ip.trim()
                    .parse::<std::net::IpAddr>()
                    .map_err(|_| InvalidInput::new("ip", "is not an IP address"))?
                    .to_canonical()
                    .to_string(),
            ),
            None => None,
        };
        Ok(EventFilter {
            user_id,
            kinds: kinds_of(self.kinds.as_deref().unwrap_or_default())?,
            since,
            until,
            ip,
        })
    }
}

/// A page of the events `filter` lets through, newest first.
pub(super) async fn page(
    ctx: &Context<'_>,
    filter: EventFilter,
    first: Option<i32>,
    after: Option<String>,
) -> Result<SecurityEventConnection, AppError> {
    // An omitted variable reaches here as null: it means the default too.
    let first = first.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&first) {
        return Err(InvalidInput::new("first", "must be between 1 and 100").into());
    }
    let before = match after.as_deref() {
        None => None,
        Some(cursor) => Some(
            decode_cursor(cursor)
                .ok_or(InvalidInput::new("after", "is not a cursor from this list"))?,
        ),
    };
    let limit = u64::try_from(first).unwrap_or(1);
    // One extra row tells whether another page follows.
    let mut rows = ctx
        .state()
        .store
        .events_page(&filter, before, limit + 1)
        .await?;
    let has_next_page = rows.len() as u64 > limit;
    rows.truncate(first as usize);
    let edges: Vec<SecurityEventEdge> = rows
        .into_iter()
        .map(|row| SecurityEventEdge {
            cursor: encode_cursor(row.position),
            node: SecurityEvent(row),
        })
        .collect();
    Ok(SecurityEventConnection {
        page_info: PageInfo::new(has_next_page, edges.last().map(|e| e.cursor.clone())),
        edges,
    })
}

/// `User.securityEvents`: the user's own, or anyone's to an ADMIN.
pub(super) async fn of_user(
    ctx: &Context<'_>,
    user_id: Uuid,
    first: Option<i32>,
    after: Option<String>,
) -> Result<SecurityEventConnection, AppError> {
    let requester = ctx.requester().await?;
    if requester.user.id != user_id && requester.user.role != user::Role::Admin {
        return Err(AppError::Forbidden);
    }
    let filter = EventFilter {
        user_id: Some(user_id),
        ..EventFilter::default()
    };
    page(ctx, filter, first, after).await
}

#[derive(Default)]
pub struct EventQuery;

#[Object]
impl EventQuery {
    /// Every event, newest (highest position) first, narrowed by `filter`. ADMIN only.
    /// A cursor is a position: events that arrive while paging never shift a
    /// page, repeat or leave a gap.
    #[graphql(guard = "AdminOnly")]
    async fn security_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
        filter: Option<SecurityEventFilter>,
    ) -> Result<SecurityEventConnection, AppError> {
        let filter = filter.unwrap_or_default().parse()?;
        page(ctx, filter, first, after).await
    }
}

/// Records an `access.denied` for each `FORBIDDEN` in `response`: the
/// operation is the root field of the error's path. A failure to write is
/// logged; the answer stands.
pub(super) async fn record_denials(ctx: &ExtensionContext<'_>, response: &async_graphql::Response) {
    let forbidden = response.errors.iter().filter(|err| {
        err.extensions
            .as_ref()
            .and_then(|ext| ext.get("code"))
            .is_some_and(|code| *code == async_graphql::Value::from(code::FORBIDDEN))
    });
    let operations: Vec<String> = forbidden
        .map(|err| match err.path.first() {
            Some(PathSegment::Field(name)) => name.clone(),
            _ => String::new(),
        })
        .collect();
    if operations.is_empty() {
        return;
    }
    let (Some(state), Some(meta)) = (
        ctx.data_opt::<Arc<AppState>>(),
        ctx.data_opt::<RequestMeta>(),
    ) else {
        return;
    };
    let requester = meta.requester_seen().await;
    let events: Vec<Event> = operations
        .into_iter()
        .map(|operation| {
            let denied = Kind::AccessDenied { operation };
            match &requester {
                Some(requester) => {
                    let actor = match requester.api_key() {
                        Some(key) => EventActor::api_key(key),
                        None => EventActor::user(requester.user.id),
                    };
                    Event::new(denied, Some(requester.user.id), actor).in_session(requester.sid())
                }
                None => Event::new(denied, None, EventActor::ANONYMOUS),
            }
        })
        .collect();
    if let Err(err) = state
        .store
        .record(&meta.source, state.clock.now(), &events)
        .await
    {
        tracing::error!(error = %err, "could not record an access.denied event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_anything_else() {
        assert_eq!(decode_cursor(&encode_cursor(42)), Some(42));
        let user_cursor = paging::encode_cursor("user:", "0190");
        for bad in [
            "",
            "abc",
            "42",
            &user_cursor,
            &paging::encode_cursor("event:", -1),
        ] {
            assert_eq!(decode_cursor(bad), None, "{bad}");
        }
    }

    #[test]
    fn kinds_are_exact_or_a_known_prefix() {
        let kinds = kinds_of(&["login.*".into(), "session.ended".into()]).unwrap();
        assert!(kinds.contains(&"login.failed".to_owned()), "{kinds:?}");
        assert!(kinds.contains(&"session.ended".to_owned()));
        assert!(!kinds.iter().any(|k| k.starts_with("logins")));
        for bad in ["login", "nope.*", "login.succeeded.*", "log.*", ""] {
            assert_eq!(kinds_of(&[bad.into()]).unwrap_err().field, "kinds", "{bad}");
        }
    }
}

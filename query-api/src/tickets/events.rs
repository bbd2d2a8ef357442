//! Loading one ticket's events from the event store, and deciding whether the caller may see
//! the ticket at all.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRef, Path};
use chrono::{DateTime, Utc};
use helpdesk_domain::Principal;
use helpdesk_domain::access::{self, Access, Action, TicketFacts};
use helpdesk_domain::ticket::TicketEvent;
use helpdesk_domain::ticket::upcast::upcast;
use helpdesk_platform::auth::Verifier;
use sqlx::PgPool;

use crate::error::QueryError;

/// One stored event of a ticket.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub sequence: u64,
    pub global_position: i64,
    pub event_type: String,
    /// The version the event was stored with (`event` is upcast to the current one).
    pub event_version: String,
    pub recorded_at: DateTime<Utc>,
    pub metadata: BTreeMap<String, String>,
    pub event: TicketEvent,
    /// The event's link in the ticket's hash chain, lower-case hex.
    pub hash: String,
}

impl StoredEvent {
    /// The event as the stream carried it.
    pub fn from_envelope(
        envelope: &helpdesk_schemas::EventEnvelope,
    ) -> Result<StoredEvent, serde_json::Error> {
        Ok(StoredEvent {
            sequence: u64::try_from(envelope.sequence).unwrap_or_default(),
            global_position: envelope.global_position,
            event_type: envelope.event_type.clone(),
            event_version: envelope.event_version.clone(),
            recorded_at: envelope.recorded_at,
            metadata: envelope.metadata.clone(),
            event: envelope.ticket_event()?,
            hash: envelope.hash.clone().unwrap_or_default(),
        })
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    aggregate_id: String,
    sequence: i64,
    global_position: i64,
    event_type: String,
    event_version: String,
    recorded_at: DateTime<Utc>,
    payload: serde_json::Value,
    metadata: serde_json::Value,
    hash: String,
}

/// Parses the `{id}` path segment as a ticket id; anything else (including a segment that is
/// not valid percent-encoded UTF-8) cannot name a ticket: 404.
pub fn ticket_id(path: Result<Path<String>, PathRejection>) -> Result<String, QueryError> {
    let Path(raw) = path.map_err(|_| QueryError::TicketNotFound)?;
    uuid::Uuid::try_parse(&raw)
        .map(|id| id.hyphenated().to_string())
        .map_err(|_| QueryError::TicketNotFound)
}

/// The columns a [`StoredEvent`] is read from.
const COLUMNS: &str = "aggregate_id, sequence, global_position, event_type, event_version, \
     recorded_at, payload, metadata, \
     encode(hash, 'hex') AS hash";

/// Every event of ticket `id`, oldest first; empty when there is no such ticket.
pub async fn load(pool: &PgPool, id: &str) -> Result<Vec<StoredEvent>, QueryError> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM events \
          WHERE aggregate_type = 'Ticket' AND aggregate_id = $1 ORDER BY sequence"
    ))
    .bind(id)
    .fetch_all(pool)
    .await
    .map_err(QueryError::internal)?;
    rows.into_iter().map(stored).collect()
}

/// The events of the tickets `ids` up to global position `up_to`, grouped by ticket (in the
/// order of `ids`), each ticket's oldest first.
pub async fn load_many(
    pool: &PgPool,
    ids: &[String],
    up_to: i64,
) -> Result<Vec<Vec<StoredEvent>>, QueryError> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM events \
          WHERE aggregate_type = 'Ticket' AND aggregate_id = ANY($1) AND global_position <= $2 \
          ORDER BY aggregate_id, sequence"
    ))
    .bind(ids)
    .bind(up_to)
    .fetch_all(pool)
    .await
    .map_err(QueryError::internal)?;
    let mut by_ticket: BTreeMap<String, Vec<StoredEvent>> = BTreeMap::new();
    for row in rows {
        let id = row.aggregate_id.clone();
        by_ticket.entry(id).or_default().push(stored(row)?);
    }
    Ok(ids
        .iter()
        .map(|id| by_ticket.remove(id).unwrap_or_default())
        .collect())
}

fn stored(row: Row) -> Result<StoredEvent, QueryError> {
    let payload = upcast(&row.event_type, &row.event_version, row.payload);
    let event: TicketEvent = serde_json::from_value(payload).map_err(QueryError::internal)?;
    let metadata = match row.metadata {
        serde_json::Value::Object(map) => map
            .into_iter()
            .map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
            .collect(),
        _ => BTreeMap::new(),
    };
    Ok(StoredEvent {
        sequence: u64::try_from(row.sequence).unwrap_or_default(),
        global_position: row.global_position,
        event_type: row.event_type,
        event_version: row.event_version,
        recorded_at: row.recorded_at,
        metadata,
        event,
        hash: row.hash,
    })
}

/// Whether `principal` may read the ticket whose first event is `events[0]`: 404 otherwise, so
/// that a customer cannot learn that someone else's ticket exists.
pub fn authorize_read<S>(
    state: &S,
    principal: &Principal,
    events: &[StoredEvent],
) -> Result<(), QueryError>
where
    Arc<Verifier>: FromRef<S>,
{
    let Some(TicketEvent::TicketOpened(opened)) = events.first().map(|e| &e.event) else {
        return Err(QueryError::TicketNotFound);
    };
    // The current group decides visibility for group-scoped agents.
    let group = events
        .iter()
        .rev()
        .find_map(|e| match &e.event {
            TicketEvent::TicketAssigned(assigned) => Some(assigned.group.as_deref()),
            _ => None,
        })
        .unwrap_or(opened.group.as_deref());
    let facts = TicketFacts {
        requester_id: &opened.requester.customer_id,
        group,
    };
    let scope = Arc::<Verifier>::from_ref(state).agent_scope();
    match access::decide(principal, scope, Action::Read, Some(facts)) {
        Access::Allowed => Ok(()),
        Access::Forbidden(_) | Access::Hidden => Err(QueryError::TicketNotFound),
    }
}

//! `GET /api/v1/tickets/{id}/history`: every event of a ticket, with who, when and why.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRef, Path, State};
use chrono::{DateTime, Utc};
use helpdesk_domain::access;
use helpdesk_domain::ticket::{TicketEvent, Visibility};
use helpdesk_platform::auth::{Authenticated, Verifier};
use helpdesk_platform::problem::Problem;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::ToSchema;

use super::events::{self, StoredEvent};
use crate::error::QueryError;

/// Who caused an event.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HistoryActor {
    pub id: String,
    pub role: String,
}

/// One event of a ticket's history.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HistoryEntry {
    pub sequence: u64,
    pub global_position: i64,
    pub event_type: String,
    /// The version `payload` has: always the current one (older events are upcast).
    pub event_version: String,
    /// The version the event was stored with.
    pub stored_event_version: String,
    pub recorded_at: DateTime<Utc>,
    /// When the command was accepted (the command API's clock).
    pub occurred_at: Option<String>,
    pub actor: HistoryActor,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
    pub request_id: Option<String>,
    /// The event's fields, upcast to the current version, as in
    /// `schemas/events/<event_type>.v<event_version>.json`.
    pub payload: serde_json::Value,
    /// The stored event's link in the ticket's hash chain, lower-case hex (see
    /// docs/audit-hash-chain.md; `GET /api/v1/audit/verify` re-walks the chain).
    pub hash: String,
}

/// Every event of one ticket, oldest first.
///
/// Read from the event store (exact even while projections lag). Customers see their own
/// tickets only, without internal notes.
#[utoipa::path(
    get, path = "/api/v1/tickets/{id}/history", tag = "tickets",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Ticket id (UUID)")),
    responses(
        (status = 200, description = "The ticket's events", body = Vec<HistoryEntry>),
        (status = 401, description = "Missing, expired or invalid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such ticket, or not yours", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_history<S>(
    State(state): State<S>,
    Authenticated(principal): Authenticated,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Vec<HistoryEntry>>, QueryError>
where
    S: Clone + Send + Sync + 'static,
    PgPool: FromRef<S>,
    Arc<Verifier>: FromRef<S>,
{
    let id = events::ticket_id(id)?;
    let all = events::load(&PgPool::from_ref(&state), &id).await?;
    events::authorize_read(&state, &principal, &all)?;
    let staff = access::sees_internal_notes(&principal);
    let entries = all
        .into_iter()
        .filter(|stored| staff || !is_internal_note(&stored.event))
        .map(entry)
        .collect::<Result<_, _>>()?;
    Ok(Json(entries))
}

fn is_internal_note(event: &TicketEvent) -> bool {
    matches!(event, TicketEvent::ReplyAdded(reply) if reply.visibility == Visibility::Internal)
}

fn entry(stored: StoredEvent) -> Result<HistoryEntry, QueryError> {
    // The payload without its type tag, as on the wire.
    let payload = match serde_json::to_value(&stored.event).map_err(QueryError::internal)? {
        serde_json::Value::Object(map) if map.len() == 1 => map
            .into_iter()
            .next()
            .map_or(serde_json::Value::Null, |(_, v)| v),
        other => other,
    };
    let meta = |key: &str| stored.metadata.get(key).cloned();
    Ok(HistoryEntry {
        sequence: stored.sequence,
        global_position: stored.global_position,
        event_type: stored.event_type,
        event_version: stored.event.version().to_owned(),
        stored_event_version: stored.event_version,
        recorded_at: stored.recorded_at,
        occurred_at: meta("occurred_at"),
        actor: HistoryActor {
            id: meta("actor_id").unwrap_or_default(),
            role: meta("actor_role").unwrap_or_default(),
        },
        correlation_id: meta("correlation_id"),
        causation_id: meta("causation_id"),
        request_id: meta("request_id"),
        payload,
        hash: stored.hash,
    })
}

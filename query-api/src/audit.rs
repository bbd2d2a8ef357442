//! `GET /api/v1/audit/events`: the global event feed, in commit order, for auditors.
//!
//! The order is the relay's: `(tx_id, global_position)`, among events whose transaction is
//! older than every running one, so a page never skips an event that commits later with a lower
//! position. The cursor is a global position (`after`, answered as `next`); its transaction id
//! is looked up. With `Accept: application/x-ndjson` the whole range is streamed page by page,
//! never held in memory.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRef, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use helpdesk_domain::Role;
use helpdesk_platform::auth::{Authenticated, Verifier};
use helpdesk_platform::event_log::Cursor;
use helpdesk_platform::problem::Problem;
use helpdesk_schemas::EventEnvelope;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::{IntoParams, ToSchema};

use crate::error::QueryError;

/// Default and largest page.
const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;
/// Page size of an NDJSON export.
const EXPORT_PAGE: i64 = 1000;
const NDJSON: &str = "application/x-ndjson";

/// Feed filters and paging.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedParams {
    /// Start after this global position (a `next` from the previous page); from the start when
    /// absent.
    pub after: Option<i64>,
    /// Events per page, 1–1000 (default 100). Ignored by the NDJSON export.
    pub limit: Option<i64>,
    /// Only events of this type, e.g. `ReplyAdded`.
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// Only events whose actor has this id.
    pub actor: Option<String>,
    /// Only events recorded at or after this instant (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Only events recorded before this instant (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// Only events of this aggregate type, e.g. `Ticket`.
    pub aggregate_type: Option<String>,
}

/// One page of the feed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FeedPage {
    /// The events, in commit order, as published on the event stream.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<EventEnvelope>,
    /// Pass as `after` for the next page (the last event's position; `after` again when empty).
    pub next: Option<i64>,
    /// True when the page reached the events committed so far.
    pub end_of_feed: bool,
}

/// The global event feed, for auditors and admins.
#[utoipa::path(
    get, path = "/api/v1/audit/events", tag = "audit",
    security(("bearer" = [])),
    params(FeedParams),
    responses(
        (status = 200, description = "A page of events (or, with Accept: application/x-ndjson, every matching event, one JSON object per line)", body = FeedPage),
        (status = 400, description = "Invalid parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, expired or invalid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an auditor or admin", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn feed<S>(
    State(state): State<S>,
    Authenticated(principal): Authenticated,
    headers: HeaderMap,
    params: Result<Query<FeedParams>, QueryRejection>,
) -> Result<Response, QueryError>
where
    S: Clone + Send + Sync + 'static,
    PgPool: FromRef<S>,
    Arc<Verifier>: FromRef<S>,
{
    if !matches!(principal.role, Role::Auditor | Role::Admin) {
        return Err(QueryError::Forbidden);
    }
    let Query(params) = params?;
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(QueryError::InvalidParameter {
            name: "limit",
            detail: format!("must be between 1 and {MAX_LIMIT}"),
        });
    }
    let pool = PgPool::from_ref(&state);
    let start = cursor_after(&pool, params.after).await?;
    if wants_ndjson(&headers) {
        return Ok(export(pool, start, params));
    }
    let (events, _) = page(&pool, start, &params, limit).await?;
    let end_of_feed = (events.len() as i64) < limit;
    let next = events.last().map(|e| e.global_position).or(params.after);
    Ok(Json(FeedPage {
        events,
        next,
        end_of_feed,
    })
    .into_response())
}

fn wants_ndjson(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains(NDJSON))
}

/// The cursor just after global position `after`.
async fn cursor_after(pool: &PgPool, after: Option<i64>) -> Result<Cursor, QueryError> {
    let Some(position) = after else {
        return Ok(Cursor::default());
    };
    let tx_id: Option<i64> =
        sqlx::query_scalar("SELECT tx_id::text::bigint FROM events WHERE global_position = $1")
            .bind(position)
            .fetch_optional(pool)
            .await
            .map_err(QueryError::internal)?;
    let tx_id = tx_id.ok_or(QueryError::InvalidParameter {
        name: "after",
        detail: format!("no event has global position {position}"),
    })?;
    Ok(Cursor { tx_id, position })
}

#[derive(sqlx::FromRow)]
struct Row {
    tx: i64,
    envelope: serde_json::Value,
}

/// Up to `limit` matching events after `start`, and the cursor after the last one.
async fn page(
    pool: &PgPool,
    start: Cursor,
    filters: &FeedParams,
    limit: i64,
) -> Result<(Vec<EventEnvelope>, Cursor), QueryError> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT tx_id::text::bigint AS tx, json_build_object( \
                  'event_id', event_id, 'global_position', global_position, \
                  'aggregate_type', aggregate_type, 'aggregate_id', aggregate_id, \
                  'sequence', sequence, 'event_type', event_type, \
                  'event_version', event_version, 'recorded_at', recorded_at, \
                  'metadata', metadata, 'payload', payload, \
                  'hash', encode(hash, 'hex'))::jsonb AS envelope \
           FROM events \
          WHERE (tx_id, global_position) > ($1::text::xid8, $2) \
            AND tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
            AND ($3::text IS NULL OR event_type = $3) \
            AND ($4::text IS NULL OR metadata->>'actor_id' = $4) \
            AND ($5::timestamptz IS NULL OR recorded_at >= $5) \
            AND ($6::timestamptz IS NULL OR recorded_at < $6) \
            AND ($7::text IS NULL OR aggregate_type = $7) \
          ORDER BY tx_id, global_position \
          LIMIT $8",
    )
    .bind(start.tx_id.to_string())
    .bind(start.position)
    .bind(&filters.event_type)
    .bind(&filters.actor)
    .bind(filters.from)
    .bind(filters.to)
    .bind(&filters.aggregate_type)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(QueryError::internal)?;
    let mut cursor = start;
    let mut events = Vec::with_capacity(rows.len());
    for row in rows {
        let mut envelope: EventEnvelope =
            serde_json::from_value(row.envelope).map_err(QueryError::internal)?;
        envelope.payload = untagged(envelope.payload);
        cursor = Cursor {
            tx_id: row.tx,
            position: envelope.global_position,
        };
        events.push(envelope);
    }
    Ok((events, cursor))
}

/// The stored payload is tagged by its event name; the feed, like the stream, carries the
/// bare event.
fn untagged(payload: serde_json::Value) -> serde_json::Value {
    match payload {
        serde_json::Value::Object(map) if map.len() == 1 => map
            .into_iter()
            .next()
            .map_or(serde_json::Value::Null, |(_, value)| value),
        other => other,
    }
}

/// Streams every matching event after `start` as NDJSON, one page in memory at a time.
fn export(pool: PgPool, start: Cursor, filters: FeedParams) -> Response {
    let pages = futures::stream::unfold(Some(start), move |cursor| {
        let (pool, filters) = (pool.clone(), filters.clone());
        async move {
            let cursor = cursor?;
            match page(&pool, cursor, &filters, EXPORT_PAGE).await {
                Ok((events, _)) if events.is_empty() => None,
                Ok((events, next)) => {
                    let mut lines = Vec::new();
                    for event in &events {
                        if serde_json::to_writer(&mut lines, event).is_err() {
                            return Some((Err(std::io::Error::other("serialize")), None));
                        }
                        lines.push(b'\n');
                    }
                    let more = events.len() as i64 == EXPORT_PAGE;
                    Some((Ok(bytes::Bytes::from(lines)), more.then_some(next)))
                }
                Err(error) => {
                    tracing::error!(%error, "audit export failed mid-stream");
                    Some((Err(std::io::Error::other(error.to_string())), None))
                }
            }
        }
    });
    let mut response = Body::from_stream(pages).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(NDJSON));
    response
}

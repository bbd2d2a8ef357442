//! Ticket reads.

pub mod view;

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRef, Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use helpdesk_domain::access::{self, Access, Action, TicketFacts};
use helpdesk_domain::ticket::TicketEvent;
use helpdesk_platform::auth::{Authenticated, Verifier};
use helpdesk_platform::problem::Problem;
use sqlx::PgPool;

use crate::error::QueryError;
use view::TicketView;

/// Read one ticket with its conversation.
///
/// Folded from the event store, so it reflects every accepted command at once. Customers get
/// their own tickets only (any other id is 404) and never see internal notes.
#[utoipa::path(
    get, path = "/api/v1/tickets/{id}", tag = "tickets",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Ticket id (UUID)")),
    responses(
        (status = 200, description = "The ticket", body = TicketView, headers(("ETag" = String))),
        (status = 401, description = "Missing, expired or invalid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such ticket, or not yours", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_ticket<S>(
    State(state): State<S>,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
) -> Result<Response, QueryError>
where
    S: Clone + Send + Sync + 'static,
    PgPool: FromRef<S>,
    Arc<Verifier>: FromRef<S>,
{
    let id = uuid::Uuid::try_parse(&id)
        .map_err(|_| QueryError::TicketNotFound)?
        .hyphenated()
        .to_string();
    let pool = PgPool::from_ref(&state);
    let view = load(&pool, &id).await?.ok_or(QueryError::TicketNotFound)?;
    let facts = TicketFacts {
        requester_id: &view.requester.customer_id,
        group: view.group.as_deref(),
    };
    let scope = Arc::<Verifier>::from_ref(&state).agent_scope();
    if access::decide(&principal, scope, Action::Read, Some(facts)) != Access::Allowed {
        return Err(QueryError::TicketNotFound);
    }
    let view = if access::sees_internal_notes(&principal) {
        view
    } else {
        view.without_internal_notes()
    };
    let etag =
        HeaderValue::from_str(&format!("\"{}\"", view.version)).map_err(QueryError::internal)?;
    let mut response = Json(view).into_response();
    response.headers_mut().insert(header::ETAG, etag);
    Ok(response)
}

async fn load(pool: &PgPool, id: &str) -> Result<Option<TicketView>, QueryError> {
    let rows: Vec<(i64, DateTime<Utc>, serde_json::Value)> = sqlx::query_as(
        "SELECT sequence, recorded_at, payload::jsonb FROM events \
         WHERE aggregate_type = 'Ticket' AND aggregate_id = $1 ORDER BY sequence",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .map_err(QueryError::internal)?;
    let mut events = Vec::with_capacity(rows.len());
    for (sequence, at, payload) in rows {
        let event: TicketEvent = serde_json::from_value(payload).map_err(QueryError::internal)?;
        events.push((u64::try_from(sequence).unwrap_or_default(), at, event));
    }
    Ok(TicketView::fold(events))
}

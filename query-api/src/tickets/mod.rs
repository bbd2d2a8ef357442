//! Ticket reads, straight from the event store: the current state, the state at any past
//! instant or version (`as_of`), and the full history. Exact even while projections lag.

pub mod events;
pub mod history;
pub mod view;

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRef, Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use helpdesk_domain::access;
use helpdesk_platform::auth::{Authenticated, Verifier};
use helpdesk_platform::problem::Problem;
use serde::Deserialize;
use sqlx::PgPool;
use utoipa::IntoParams;

use crate::error::QueryError;
use view::TicketView;

/// Query parameters of a ticket read.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadParams {
    /// Time travel: an RFC 3339 instant (the ticket as recorded at that moment) or a version
    /// number (the ticket after that many events). Before the ticket existed: 404.
    pub as_of: Option<String>,
}

/// Where to stop folding events.
enum AsOf {
    Now,
    Instant(DateTime<Utc>),
    Version(u64),
}

impl AsOf {
    fn parse(raw: Option<&str>) -> Result<AsOf, QueryError> {
        let Some(raw) = raw else {
            return Ok(AsOf::Now);
        };
        if let Ok(version) = raw.parse::<u64>() {
            return Ok(AsOf::Version(version));
        }
        DateTime::parse_from_rfc3339(raw)
            .map(|at| AsOf::Instant(at.with_timezone(&Utc)))
            .map_err(|_| QueryError::InvalidParameter {
                name: "as_of",
                detail: "must be an RFC 3339 instant (2026-11-21T14:02:00Z) or a version number"
                    .into(),
            })
    }

    fn includes(&self, event: &events::StoredEvent) -> bool {
        match self {
            AsOf::Now => true,
            AsOf::Instant(at) => event.recorded_at <= *at,
            AsOf::Version(version) => event.sequence <= *version,
        }
    }
}

/// Read one ticket with its conversation, now or as it was.
///
/// Folded from the event store, so it reflects every accepted command at once. Customers get
/// their own tickets only (any other id is 404) and never see internal notes.
#[utoipa::path(
    get, path = "/api/v1/tickets/{id}", tag = "tickets",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Ticket id (UUID)"), ReadParams),
    responses(
        (status = 200, description = "The ticket", body = TicketView, headers(("ETag" = String))),
        (status = 400, description = "Invalid as_of", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, expired or invalid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such ticket (at that time), or not yours", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_ticket<S>(
    State(state): State<S>,
    Authenticated(principal): Authenticated,
    id: Result<Path<String>, PathRejection>,
    params: Result<Query<ReadParams>, QueryRejection>,
) -> Result<Response, QueryError>
where
    S: Clone + Send + Sync + 'static,
    PgPool: FromRef<S>,
    Arc<Verifier>: FromRef<S>,
{
    let Query(params) = params?;
    let as_of = AsOf::parse(params.as_of.as_deref())?;
    let id = events::ticket_id(id)?;
    let all = events::load(&PgPool::from_ref(&state), &id).await?;
    events::authorize_read(&state, &principal, &all)?;
    let folded = all
        .into_iter()
        .filter(|event| as_of.includes(event))
        .map(|e| (e.sequence, e.recorded_at, e.event));
    let view = TicketView::fold(folded).ok_or(QueryError::TicketNotFound)?;
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

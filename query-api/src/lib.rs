//! The read side of the HTTP API.
//!
//! Today: `GET /api/v1/projections` (pipeline progress for operators), and ticket reads folded
//! from the event store (the source of truth) and filtered by the access policy:
//! `GET /api/v1/tickets/{id}` (with `as_of` time travel) and
//! `GET /api/v1/tickets/{id}/history`; the audit feed `GET /api/v1/audit/events` and the
//! hash-chain check `GET /api/v1/audit/verify`; search (`GET /api/v1/tickets/search`,
//! `GET /api/v1/agents/me/tickets`); the real-time feed (`GET /api/v1/realtime` over
//! WebSocket, `GET /api/v1/realtime/sse`, see [`realtime`]); SLA reports
//! (`GET /api/v1/reports/sla-compliance`, `GET /api/v1/reports/sla-breaches`). [`routes`] is
//! merged by the command API's `app` into the served router and the OpenAPI document.

mod audit;
mod audit_verify;
mod error;
mod projections;
pub mod realtime;
pub mod search;
mod sla_reports;
mod tickets;

use std::sync::Arc;

use axum::extract::FromRef;
use helpdesk_platform::auth::Verifier;
use helpdesk_platform::pipeline::Pipeline;
use sqlx::PgPool;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::QueryError;
pub use tickets::view::{InteractionView, TicketView};

/// The read routes, for any app state that provides a pool and a token verifier.
pub fn routes<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    PgPool: FromRef<S>,
    Arc<Verifier>: FromRef<S>,
    Arc<Pipeline>: FromRef<S>,
    Option<helpdesk_search::projection::SearchReader>: FromRef<S>,
    Option<realtime::Realtime>: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(tickets::get_ticket))
        .routes(routes!(tickets::history::get_history))
        .routes(routes!(projections::list_projections))
        .routes(routes!(audit::feed))
        .routes(routes!(audit_verify::verify_chain))
        .routes(routes!(search::search))
        .routes(routes!(search::my_tickets))
        .routes(routes!(realtime::ws::websocket))
        .routes(routes!(realtime::sse::events))
        .routes(routes!(sla_reports::compliance))
        .routes(routes!(sla_reports::breaches))
}

//! The read side of the HTTP API.
//!
//! Today: `GET /api/v1/projections` (pipeline progress for operators), and ticket reads folded
//! from the event store (the source of truth) and filtered by the access policy:
//! `GET /api/v1/tickets/{id}` (with `as_of` time travel) and
//! `GET /api/v1/tickets/{id}/history`; the audit feed `GET /api/v1/audit/events` and the
//! hash-chain check `GET /api/v1/audit/verify`; search (`GET /api/v1/tickets/search`,
//! `GET /api/v1/agents/me/tickets`); the real-time feed (`GET /api/v1/realtime` over
//! WebSocket, `GET /api/v1/realtime/sse`, see [`realtime`]). SLA reports arrive with a later
//! issue and are added to [`routes`], which the command API's `app` merges into the served
//! router and the OpenAPI document.

mod audit;
mod audit_verify;
mod error;
mod projections;
pub mod realtime;
pub mod search;
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
}

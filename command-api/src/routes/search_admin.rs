//! Rebuilding the search index of this process without downtime (admins).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use helpdesk_domain::access;
use helpdesk_domain::actor::Role;
use helpdesk_platform::auth::Authenticated;
use helpdesk_search::rebuild::{RebuildStatus, SearchAdmin};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::problem::Problem;
use crate::state::AppState;

/// The search administration routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(start_rebuild, rebuild_status))
}

fn not_running() -> Response {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "search-unavailable",
        "Search unavailable",
        "this process serves no search index",
    )
    .into_response()
}

fn forbidden(detail: &str) -> Response {
    Problem::new(StatusCode::FORBIDDEN, "forbidden", "Not allowed", detail).into_response()
}

fn admin_of(state: &AppState) -> Option<&SearchAdmin> {
    state.search_admin.as_ref()
}

/// Rebuild the search index from the event store.
///
/// Builds a new index generation from the event store while the serving one keeps answering,
/// then switches over (the live projector pauses only for the final catch-up). Answers at once;
/// follow progress with `GET /api/v1/search/rebuild`. Admins only.
#[utoipa::path(
    post, path = "/api/v1/search/rebuild", tag = "search",
    security(("bearer" = [])),
    responses(
        (status = 202, description = "The rebuild started", body = RebuildStatus),
        (status = 401, description = "Missing, expired or invalid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A rebuild is already running", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "This process serves no search index", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn start_rebuild(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Response {
    if principal.role != Role::Admin {
        return forbidden("only admins may rebuild the search index");
    }
    let Some(admin) = admin_of(&state) else {
        return not_running();
    };
    match admin.start() {
        Ok(()) => (StatusCode::ACCEPTED, Json(admin.status().await)).into_response(),
        Err(running) => Problem::new(
            StatusCode::CONFLICT,
            "rebuild-running",
            "Rebuild already running",
            running.to_string(),
        )
        .into_response(),
    }
}

/// The search index's generation and the state of its latest rebuild.
///
/// Managers, auditors and admins.
#[utoipa::path(
    get, path = "/api/v1/search/rebuild", tag = "search",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The index and its latest rebuild", body = RebuildStatus),
        (status = 401, description = "Missing, expired or invalid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a manager, auditor or admin", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "This process serves no search index", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn rebuild_status(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Response {
    if !access::may_read_operations(&principal) {
        return forbidden("only managers, auditors and admins may read operational state");
    }
    match admin_of(&state) {
        Some(admin) => Json(admin.status().await).into_response(),
        None => not_running(),
    }
}

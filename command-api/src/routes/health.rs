//! Liveness and readiness probes.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::responses::Health;
use crate::state::AppState;

/// The probe routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is up", body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        checks: BTreeMap::new(),
    })
}

/// Postgres and NATS are reachable.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready to serve", body = Health),
        (status = 503, description = "A dependency is unreachable", body = Health),
    ))]
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let mut checks = BTreeMap::new();
    let postgres = sqlx::query("SELECT 1").execute(&state.pool).await;
    checks.insert(
        "postgres".to_owned(),
        postgres.map_or_else(|e| e.to_string(), |_| "ok".to_owned()),
    );
    let nats = if helpdesk_platform::nats::is_connected(&state.nats) {
        state
            .nats
            .flush()
            .await
            .map_or_else(|e| e.to_string(), |()| "ok".to_owned())
    } else {
        "not connected".to_owned()
    };
    checks.insert("nats".to_owned(), nats);
    let ready = checks.values().all(|check| check == "ok");
    let (status, label) = if ready {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    (
        status,
        Json(Health {
            status: label.to_owned(),
            checks,
        }),
    )
}

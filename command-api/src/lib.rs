//! The command side of the helpdesk's HTTP API, and the composition of the whole HTTP surface.
//!
//! - `routes`: thin handlers (extract → command → execute → respond) and their request and
//!   response types;
//! - `extract`: the checked inputs (JSON body, ticket id, If-Match, Idempotency-Key, request
//!   ids); identity comes from `helpdesk_platform::auth::Authenticated`;
//! - `execute`: load, check, decide, append, with the optimistic-concurrency retry;
//! - `idempotency`: first-response replay for retried POSTs;
//! - `store`: the ticket events' repository (postgres-es reads, a one-statement append);
//! - `relay`: the gap-free tail of the events table into JetStream;
//! - `admission`: the bound on requests in flight (`503 overloaded` past it);
//! - `error` / `problem`: the one mapping from failures to `application/problem+json`;
//! - `metrics`: Prometheus counters and histograms.
//!
//! [`app`] assembles these with the read routes of `helpdesk-query-api` into one router and one
//! OpenAPI document, served with Swagger UI at `/docs`.

pub mod admission;
pub mod error;
pub mod execute;
pub mod extract;
pub mod idempotency;
pub mod metrics;
pub use helpdesk_platform::problem;
pub mod relay;
pub mod routes;
pub mod state;
pub mod store;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::get;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

pub use state::AppState;

use metrics::Metrics;

/// Where the OpenAPI document is served.
pub const OPENAPI_PATH: &str = "/api-docs/openapi.json";
/// Where Swagger UI is served.
pub const DOCS_PATH: &str = "/docs";

/// The OpenAPI document's header: title, description, tags.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Helpdesk API",
        description = "Commands append ticket events to the event store; reads come from read models. \
Errors are application/problem+json (RFC 9457) with a stable `type`; see docs/api-guide.md for \
every problem type and every validation rule.",
        license(name = "AGPL-3.0-or-later")
    ),
    modifiers(&BearerAuth),
    // The messages a WebSocket client sends (no request body names them).
    components(schemas(
        helpdesk_query_api::realtime::protocol::ClientMessage,
        helpdesk_query_api::realtime::summary::QueueFilter,
        helpdesk_query_api::realtime::presence::PresenceState,
    )),
    tags(
        (name = "tickets", description = "Open and work tickets"),
        (name = "operations", description = "Health, readiness, metrics and pipeline status"),
        (name = "audit", description = "The global event feed"),
        (name = "search", description = "Find tickets"),
        (name = "sla", description = "SLA policies and reports"),
        (name = "realtime", description = "Live ticket updates and presence over WebSocket and SSE"),
    )
)]
pub struct ApiDoc;

/// Declares the `bearer` security scheme every `/api/v1` endpoint requires.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some(
                "A JWT with claims sub, role (customer, agent, manager, auditor, admin), groups \
                 and customer_id; `helpdesk token` mints development tokens.",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

impl FromRef<AppState> for Arc<Metrics> {
    fn from_ref(state: &AppState) -> Self {
        state.metrics.clone()
    }
}

/// The OpenAPI router of every command endpoint (and the probes).
pub fn api_routes() -> OpenApiRouter<AppState> {
    routes::tickets::routes()
        .merge(routes::health::routes())
        .merge(routes::search_admin::routes())
        .merge(routes::sla_policies::routes())
}

/// Builds the whole HTTP app: the command routes, `extra` (the read routes), `/metrics`,
/// `/api-docs/openapi.json`, Swagger UI at `/docs`, problem+json fallbacks, request ids and
/// metrics on every route. Returns the router and the OpenAPI document it serves.
pub fn app(state: AppState, extra: OpenApiRouter<AppState>) -> (Router, utoipa::openapi::OpenApi) {
    let api = openapi(extra.clone());
    let (router, _) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(api_routes())
        .merge(extra)
        .split_for_parts();
    let router = router
        .route("/metrics", get(metrics::serve_metrics))
        .merge(SwaggerUi::new(DOCS_PATH).url(OPENAPI_PATH, api.clone()))
        .fallback(routes::tickets::route_not_found)
        .method_not_allowed_fallback(routes::tickets::method_not_allowed)
        .layer(from_fn_with_state(
            state.in_flight.clone(),
            admission::admit,
        ))
        .layer(from_fn_with_state(
            state.metrics.clone(),
            metrics::track_http,
        ))
        .layer(from_fn(extract::assign_request_id))
        .with_state(state);
    (router, api)
}

/// The OpenAPI document of the command routes plus `extra`. Needs no database: the snapshot
/// test and `helpdesk openapi` call it.
pub fn openapi(extra: OpenApiRouter<AppState>) -> utoipa::openapi::OpenApi {
    let (_, mut api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(api_routes())
        .merge(extra)
        .split_for_parts();
    admission::document(&mut api);
    api
}

//! The read side of the HTTP API: search, SLA reports, audit and real-time endpoints over the
//! read models built by `helpdesk-projections`.
//!
//! It serves no routes yet: the read models arrive with the event pipeline, search, SLA,
//! real-time and audit issues. [`routes`] is where they will be added, and the command API's
//! `app` already merges it into the served router and the OpenAPI document.

use utoipa_axum::router::OpenApiRouter;

/// The read routes, generic over the app state they will be mounted in.
pub fn routes<S: Clone + Send + Sync + 'static>() -> OpenApiRouter<S> {
    OpenApiRouter::new()
}

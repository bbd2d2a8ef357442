//! `GET /api/v1/projections`: how far each read model is, for operators.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRef, State};
use helpdesk_domain::access;
use helpdesk_platform::auth::{Authenticated, Verifier};
use helpdesk_platform::pipeline::{Pipeline, ProjectionStatus};
use helpdesk_platform::problem::Problem;
use sqlx::PgPool;

use crate::error::QueryError;

/// Progress of every projection: last applied global position, events waiting in its
/// consumer, and dead letters.
///
/// For managers, auditors and admins.
#[utoipa::path(
    get, path = "/api/v1/projections", tag = "operations",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every projection's progress", body = Vec<ProjectionStatus>),
        (status = 401, description = "Missing, expired or invalid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an operator role", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_projections<S>(
    State(state): State<S>,
    Authenticated(principal): Authenticated,
) -> Result<Json<Vec<ProjectionStatus>>, QueryError>
where
    S: Clone + Send + Sync + 'static,
    PgPool: FromRef<S>,
    Arc<Verifier>: FromRef<S>,
    Arc<Pipeline>: FromRef<S>,
{
    if !access::may_read_operations(&principal) {
        return Err(QueryError::Forbidden);
    }
    let pipeline = Arc::<Pipeline>::from_ref(&state);
    let statuses = pipeline
        .status(&PgPool::from_ref(&state))
        .await
        .map_err(QueryError::internal)?;
    Ok(Json(statuses))
}

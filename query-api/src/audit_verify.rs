//! `GET /api/v1/audit/verify`: re-walks one aggregate's hash chain, for auditors.
//!
//! Every event's hash is recomputed from its stored fields and chained onto the previous
//! stored hash (see docs/audit-hash-chain.md); the answer names the first broken link. The
//! whole store, with the anchor check that detects deleted tails, is verified by
//! `helpdesk audit verify`: over HTTP that would be one very long request.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRef, Query, State};
use helpdesk_domain::Role;
use helpdesk_platform::audit::{self, ChainProblem};
use helpdesk_platform::auth::{Authenticated, Verifier};
use helpdesk_platform::problem::Problem;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::{IntoParams, ToSchema};

use crate::error::QueryError;

/// Which aggregate to verify.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VerifyParams {
    /// The aggregate's id, e.g. a ticket id. Required (400 without it).
    #[param(required = true)]
    pub aggregate_id: Option<String>,
    /// The aggregate's type (default `Ticket`; audit anchors are `AuditAnchor`/`anchor`).
    pub aggregate_type: Option<String>,
}

/// The verdict on one aggregate's chain.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChainVerification {
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// Events walked.
    pub events: u64,
    /// True when every link holds.
    pub clean: bool,
    /// The first broken link, or null when clean.
    pub first_broken: Option<FirstBroken>,
}

/// Where and how a chain breaks.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FirstBroken {
    /// The sequence of the broken link (for `missing-event`, the first absent sequence).
    pub sequence: i64,
    /// `hash-mismatch` (the event was edited), `missing-event` (deleted) or `broken-chain`
    /// (a hash was rewritten, or events replaced).
    pub problem: ChainProblem,
    /// A human explanation.
    pub detail: String,
}

/// Verifies one aggregate's hash chain, for auditors and admins.
///
/// Verifying the whole store (which also detects deleted newest events through the latest
/// audit anchor) is an operator command, `helpdesk audit verify`, not an HTTP request: it reads
/// every event.
#[utoipa::path(
    get, path = "/api/v1/audit/verify", tag = "audit",
    security(("bearer" = [])),
    params(VerifyParams),
    responses(
        (status = 200, description = "The chain was walked (see `clean`)", body = ChainVerification),
        (status = 400, description = "aggregate_id is missing, or a parameter is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, expired or invalid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an auditor or admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The aggregate has no events", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn verify_chain<S>(
    State(state): State<S>,
    Authenticated(principal): Authenticated,
    params: Result<Query<VerifyParams>, QueryRejection>,
) -> Result<Json<ChainVerification>, QueryError>
where
    S: Clone + Send + Sync + 'static,
    PgPool: FromRef<S>,
    Arc<Verifier>: FromRef<S>,
{
    if !matches!(principal.role, Role::Auditor | Role::Admin) {
        return Err(QueryError::Forbidden);
    }
    let Query(params) = params?;
    let aggregate_id = params
        .aggregate_id
        .filter(|id| !id.is_empty())
        .ok_or_else(|| QueryError::InvalidParameter {
            name: "aggregate_id",
            detail: "is required (verify the whole store with `helpdesk audit verify`)".into(),
        })?;
    let aggregate_type = params.aggregate_type.unwrap_or_else(|| "Ticket".into());
    let pool = PgPool::from_ref(&state);
    let report = audit::verify_aggregate(&pool, &aggregate_type, &aggregate_id)
        .await
        .map_err(QueryError::internal)?;
    if report.events == 0 {
        return Err(QueryError::AggregateNotFound);
    }
    Ok(Json(ChainVerification {
        aggregate_type,
        aggregate_id,
        events: report.events,
        clean: report.first_broken.is_none(),
        first_broken: report.first_broken.map(|link| FirstBroken {
            sequence: link.sequence,
            problem: link.problem,
            detail: link.detail,
        }),
    }))
}

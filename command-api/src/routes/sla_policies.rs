//! SLA policies: `POST /api/v1/sla-policies`, `PUT /api/v1/sla-policies/{id}`,
//! `GET /api/v1/sla-policies`. Each policy is an event-sourced aggregate; every change is a new
//! version, and the SLA engine records which version measured each ticket.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{Aggregate, AggregateError, EventStore};
use helpdesk_domain::Principal;
use helpdesk_domain::actor::Role;
use helpdesk_domain::sla::{SlaPolicy, SlaPolicyCommand, SlaPolicyDefinition, SlaPolicyError};
use helpdesk_platform::auth::Authenticated;
use postgres_es::PostgresEventRepository;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::ApiError;
use crate::execute::metadata;
use crate::extract::{IfMatch, JsonBody, RequestContext};
use crate::problem::Problem;
use crate::state::AppState;

/// The SLA policy routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_policy, list_policies))
        .routes(routes!(update_policy))
}

/// One SLA policy in its current version.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SlaPolicyView {
    pub id: String,
    /// The policy's version: 1 when created, one more per update; also its `ETag`.
    pub version: u64,
    #[serde(flatten)]
    pub definition: SlaPolicyDefinition,
}

/// Managers and admins manage SLA policies.
fn may_manage(principal: &Principal) -> Result<(), ApiError> {
    match principal.role {
        Role::Manager | Role::Admin => Ok(()),
        _ => Err(ApiError::Forbidden(
            "only managers and admins manage SLA policies",
        )),
    }
}

/// Create an SLA policy.
///
/// The policy applies to the tickets it matches from their next event on (new tickets at once).
/// Several policies may match a ticket: the one with the lowest `position` applies.
#[utoipa::path(
    post, path = "/api/v1/sla-policies", tag = "sla",
    security(("bearer" = [])),
    request_body(content = SlaPolicyDefinition, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = SlaPolicyView, headers(("ETag" = String), ("Location" = String))),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, expired or invalid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only managers and admins manage SLA policies", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid definition, with a pointer per field", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_policy(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    context: RequestContext,
    body: JsonBody<SlaPolicyDefinition>,
) -> Result<Response, ApiError> {
    may_manage(&principal)?;
    let id = Uuid::now_v7().to_string();
    let command = SlaPolicyCommand::Create {
        policy_id: id.clone(),
        definition: body.value,
    };
    let view = write(&state, &id, &IfMatch::Absent, command, &principal, &context).await?;
    let mut response = answer(StatusCode::CREATED, view)?;
    let location =
        HeaderValue::from_str(&format!("/api/v1/sla-policies/{id}")).map_err(ApiError::internal)?;
    response.headers_mut().insert(header::LOCATION, location);
    Ok(response)
}

/// Replace an SLA policy's definition with a new version.
///
/// Send the whole definition. `If-Match` with the version you edited makes a concurrent edit
/// a `412` instead of a silent overwrite. Running measurements are retargeted with the
/// ticket's next event.
#[utoipa::path(
    put, path = "/api/v1/sla-policies/{id}", tag = "sla",
    security(("bearer" = [])),
    request_body(content = SlaPolicyDefinition, content_type = "application/json"),
    params(
        ("id" = String, Path, description = "Policy id"),
        ("If-Match" = Option<String>, Header, description = "The version you edited, quoted (\"2\")"),
    ),
    responses(
        (status = 200, description = "The new version", body = SlaPolicyView, headers(("ETag" = String))),
        (status = 400, description = "Malformed JSON or header", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, expired or invalid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only managers and admins manage SLA policies", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such policy", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Changed by another request meanwhile", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match is stale", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid definition, or the same as the current one", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn update_policy(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    context: RequestContext,
    id: Result<Path<String>, PathRejection>,
    if_match: IfMatch,
    body: JsonBody<SlaPolicyDefinition>,
) -> Result<Response, ApiError> {
    may_manage(&principal)?;
    let Path(id) = id.map_err(|_| ApiError::PolicyNotFound)?;
    let command = SlaPolicyCommand::Update {
        definition: body.value,
    };
    let view = write(&state, &id, &if_match, command, &principal, &context).await?;
    answer(StatusCode::OK, view)
}

/// Every SLA policy in its current version, in matching order.
#[utoipa::path(
    get, path = "/api/v1/sla-policies", tag = "sla",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The policies, lowest position first", body = Vec<SlaPolicyView>),
        (status = 401, description = "Missing, expired or invalid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Managers, auditors and admins only", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_policies(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<Json<Vec<SlaPolicyView>>, ApiError> {
    if !matches!(principal.role, Role::Manager | Role::Admin | Role::Auditor) {
        return Err(ApiError::Forbidden(
            "only managers, auditors and admins read SLA policies",
        ));
    }
    let policies = helpdesk_projections::sla::policies::current_policies(&state.pool)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(
        policies
            .into_iter()
            .map(|(reference, definition)| SlaPolicyView {
                id: reference.id,
                version: reference.version,
                definition,
            })
            .collect(),
    ))
}

/// Loads the policy, checks `If-Match`, decides and appends; returns the new version.
async fn write(
    state: &AppState,
    id: &str,
    if_match: &IfMatch,
    command: SlaPolicyCommand,
    principal: &Principal,
    context: &RequestContext,
) -> Result<SlaPolicyView, ApiError> {
    let store = PersistedEventStore::<PostgresEventRepository, SlaPolicy>::new_event_store(
        PostgresEventRepository::new(state.pool.clone()),
    );
    let name = command.name();
    let mut loaded = store.load_aggregate(id).await.map_err(ApiError::internal)?;
    let current = u64::try_from(loaded.current_sequence).unwrap_or_default();
    if current > 0 && !if_match.matches(current) {
        return Err(ApiError::PreconditionFailed {
            current_version: current,
            changes: Vec::new(),
        });
    }
    let events = loaded
        .aggregate
        .decide(command)
        .map_err(|error| match error {
            SlaPolicyError::Invalid(violations) => ApiError::Validation(violations),
            SlaPolicyError::NotFound => ApiError::PolicyNotFound,
            SlaPolicyError::NoChange => ApiError::PolicyUnchanged,
            SlaPolicyError::AlreadyExists => {
                ApiError::WriteConflict("a policy with this id exists already".into())
            }
        })?;
    for event in &events {
        loaded.aggregate.apply(event.clone());
    }
    let (reference, definition) = loaded
        .aggregate
        .current()
        .map(|(reference, definition)| (reference, definition.clone()))
        .ok_or_else(|| ApiError::internal("a written policy has a current version"))?;
    match store
        .commit(events, loaded, metadata(&principal.actor(), context, name))
        .await
    {
        Ok(_) => {
            state.relay_wakeup.notify_one();
            Ok(SlaPolicyView {
                id: reference.id,
                version: reference.version,
                definition,
            })
        }
        Err(AggregateError::AggregateConflict) => {
            // Another edit won the append: with `If-Match` that is a stale precondition.
            let latest = store.load_aggregate(id).await.map_err(ApiError::internal)?;
            let version = u64::try_from(latest.current_sequence).unwrap_or_default();
            if !matches!(if_match, IfMatch::Absent) && !if_match.matches(version) {
                return Err(ApiError::PreconditionFailed {
                    current_version: version,
                    changes: Vec::new(),
                });
            }
            Err(ApiError::WriteConflict(
                "the policy was changed by another request meanwhile; read it and retry".into(),
            ))
        }
        Err(error) => Err(ApiError::internal(error)),
    }
}

fn answer(status: StatusCode, view: SlaPolicyView) -> Result<Response, ApiError> {
    let etag =
        HeaderValue::from_str(&format!("\"{}\"", view.version)).map_err(ApiError::internal)?;
    let mut response = (status, Json(view)).into_response();
    response.headers_mut().insert(header::ETAG, etag);
    Ok(response)
}

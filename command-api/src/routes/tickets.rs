//! Ticket command endpoints.

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use helpdesk_domain::Principal;
use helpdesk_domain::ticket::{
    AddInteraction, AssignTicket, ChangeTags, OpenTicket, Requester, TicketCommand,
};
use helpdesk_domain::validation::Violations;
use helpdesk_platform::auth::Authenticated;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::requests::*;
use super::responses::CommandAccepted;
use crate::error::ApiError;
use crate::execute::execute;
use crate::extract::{IdempotencyKey, IfMatch, JsonBody, RequestContext, TicketId};
use crate::idempotency::{IdempotentRequest, run_once};
use crate::problem::Problem;
use crate::state::AppState;

/// The ticket command routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(open_ticket))
        .routes(routes!(change_status))
        .routes(routes!(change_priority))
        .routes(routes!(assign))
        .routes(routes!(change_tags))
        .routes(routes!(add_interaction))
}

/// How a successful command is answered.
struct Answer {
    status: StatusCode,
    location: bool,
    interaction_id: Option<String>,
}

impl Answer {
    const UPDATED: Answer = Answer {
        status: StatusCode::OK,
        location: false,
        interaction_id: None,
    };
}

/// Everything a command needs besides its payload.
struct Call {
    state: AppState,
    principal: Principal,
    context: RequestContext,
}

impl Call {
    async fn run(
        self,
        ticket_id: String,
        if_match: IfMatch,
        command: TicketCommand,
        answer: Answer,
    ) -> Response {
        let result = execute(
            &self.state,
            &ticket_id,
            &if_match,
            command,
            &self.principal,
            &self.context,
        )
        .await;
        let written = match result {
            Ok(written) => written,
            Err(error) => return error.into_response(),
        };
        let body = CommandAccepted {
            id: ticket_id.clone(),
            version: written.version,
            position: written.position,
            interaction_id: answer.interaction_id,
        };
        let mut response = (answer.status, Json(body)).into_response();
        let headers = response.headers_mut();
        if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", written.version)) {
            headers.insert(header::ETAG, etag);
        }
        if answer.location
            && let Ok(location) = HeaderValue::from_str(&format!("/api/v1/tickets/{ticket_id}"))
        {
            headers.insert(header::LOCATION, location);
        }
        response
    }

    /// Runs the command at most once per `Idempotency-Key`.
    async fn run_idempotent(
        self,
        retry: Retry<'_>,
        ticket_id: String,
        if_match: IfMatch,
        command: TicketCommand,
        answer: Answer,
    ) -> Response {
        let pool = self.state.pool.clone();
        let ttl = self.state.idempotency_ttl;
        let Retry { key, route, body } = retry;
        let request = key
            .0
            .map(|key| IdempotentRequest::new(format!("{}:{route}", self.principal.id), key, body));
        let command = self.run(ticket_id, if_match, command, answer);
        run_once(&pool, ttl, request, command).await
    }
}

/// What identifies a retried POST: its `Idempotency-Key`, its route and its raw body.
struct Retry<'a> {
    key: IdempotencyKey,
    route: String,
    body: &'a [u8],
}

/// Everything a `PUT` on a ticket needs besides its body: the caller, the request ids, the
/// ticket and its `If-Match`, checked in that order.
struct TicketUpdate {
    call: Call,
    id: String,
    if_match: IfMatch,
}

impl FromRequestParts<AppState> for TicketUpdate {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Authenticated(principal) = Authenticated::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let context = RequestContext::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let TicketId(id) = TicketId::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let if_match = IfMatch::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let call = Call {
            state: state.clone(),
            principal,
            context,
        };
        Ok(TicketUpdate { call, id, if_match })
    }
}

impl TicketUpdate {
    async fn run(self, command: TicketCommand) -> Response {
        self.call
            .run(self.id, self.if_match, command, Answer::UPDATED)
            .await
    }
}

/// Open a ticket.
///
/// Creates a ticket with status `new`. Answers `201` with `Location`, `ETag` and the new
/// ticket's id, version and global position. Send an `Idempotency-Key` to make retries safe:
/// the same key with the same body returns the first response for 24 hours.
#[utoipa::path(
    post, path = "/api/v1/tickets", tag = "tickets",
    security(("bearer" = [])),
    request_body(content = OpenTicketRequest, content_type = "application/json"),
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "1–255 visible ASCII characters; makes the POST safe to retry"),
    ),
    responses(
        (status = 201, description = "Ticket opened", body = CommandAccepted,
         headers(("Location" = String, description = "URL of the ticket"), ("ETag" = String, description = "The ticket's version, quoted"))),
        (status = 400, description = "Malformed JSON or header", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, expired or invalid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's role may not do this", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Same Idempotency-Key still in flight", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, or Idempotency-Key reused with another body", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn open_ticket(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    context: RequestContext,
    key: IdempotencyKey,
    body: JsonBody<OpenTicketRequest>,
) -> Response {
    let request = body.value;
    let requester = match requester_of(request.requester, &principal) {
        Ok(requester) => requester,
        Err(error) => return error.into_response(),
    };
    let ticket_id = Uuid::now_v7().to_string();
    let command = TicketCommand::Open(OpenTicket {
        ticket_id: ticket_id.clone(),
        subject: request.subject,
        description: request.description,
        priority: request.priority,
        channel: request.channel,
        requester,
        tags: request.tags,
        group: request.group,
    });
    let answer = Answer {
        status: StatusCode::CREATED,
        location: true,
        interaction_id: None,
    };
    let call = Call {
        state,
        principal,
        context,
    };
    let retry = Retry {
        key,
        route: "POST /api/v1/tickets".to_owned(),
        body: &body.raw,
    };
    call.run_idempotent(retry, ticket_id, IfMatch::Absent, command, answer)
        .await
}

/// The requester of a new ticket: as given, or the calling customer when omitted.
fn requester_of(
    given: Option<RequesterRequest>,
    principal: &Principal,
) -> Result<Requester, ApiError> {
    if let Some(given) = given {
        return Ok(Requester {
            customer_id: given.customer_id,
            name: given.name,
            email: given.email,
        });
    }
    match &principal.customer_id {
        Some(customer_id) => Ok(Requester {
            customer_id: customer_id.clone(),
            name: None,
            email: None,
        }),
        None => {
            let mut violations = Violations::default();
            violations.add(
                "/requester",
                "required",
                "staff must name the requester of a ticket they open",
            );
            Err(ApiError::Validation(violations))
        }
    }
}

/// Change a ticket's status.
#[utoipa::path(
    put, path = "/api/v1/tickets/{id}/status", tag = "tickets",
    security(("bearer" = [])),
    request_body(content = ChangeStatusRequest, content_type = "application/json"),
    params(
        ("id" = String, Path, description = "Ticket id (UUID)"),
        ("If-Match" = Option<String>, Header, description = "The version you last saw, quoted (\"3\"); a stale version gets 412"),
    ),
    responses(
        (status = 200, description = "Status changed", body = CommandAccepted, headers(("ETag" = String))),
        (status = 400, description = "Malformed JSON or header", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, expired or invalid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's role may not do this", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such ticket", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Transition not allowed, ticket closed, or lost a write race", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match is stale; `current_version` says the current one", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid status, or the ticket already has it (`no-change`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn change_status(update: TicketUpdate, body: JsonBody<ChangeStatusRequest>) -> Response {
    update
        .run(TicketCommand::ChangeStatus {
            to: body.value.status,
        })
        .await
}

/// Change a ticket's priority.
#[utoipa::path(
    put, path = "/api/v1/tickets/{id}/priority", tag = "tickets",
    security(("bearer" = [])),
    request_body(content = ChangePriorityRequest, content_type = "application/json"),
    params(
        ("id" = String, Path, description = "Ticket id (UUID)"),
        ("If-Match" = Option<String>, Header, description = "The version you last saw, quoted"),
    ),
    responses(
        (status = 200, description = "Priority changed", body = CommandAccepted, headers(("ETag" = String))),
        (status = 400, description = "Malformed JSON or header", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, expired or invalid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's role may not do this", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such ticket", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Ticket solved or closed, or lost a write race", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match is stale", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid priority, or unchanged", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn change_priority(update: TicketUpdate, body: JsonBody<ChangePriorityRequest>) -> Response {
    update
        .run(TicketCommand::ChangePriority {
            to: body.value.priority,
        })
        .await
}

/// Assign or unassign an agent and/or a group.
#[utoipa::path(
    put, path = "/api/v1/tickets/{id}/assign", tag = "tickets",
    security(("bearer" = [])),
    request_body(content = AssignRequest, content_type = "application/json"),
    params(
        ("id" = String, Path, description = "Ticket id (UUID)"),
        ("If-Match" = Option<String>, Header, description = "The version you last saw, quoted"),
    ),
    responses(
        (status = 200, description = "Assignment changed", body = CommandAccepted, headers(("ETag" = String))),
        (status = 400, description = "Malformed JSON or header", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, expired or invalid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's role may not do this", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such ticket", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Ticket solved or closed, or lost a write race", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match is stale", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid ids, or nothing changes", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn assign(update: TicketUpdate, body: JsonBody<AssignRequest>) -> Response {
    update
        .run(TicketCommand::Assign(AssignTicket {
            assignee: body.value.assignee,
            group: body.value.group,
        }))
        .await
}

/// Add and/or remove tags.
#[utoipa::path(
    put, path = "/api/v1/tickets/{id}/tags", tag = "tickets",
    security(("bearer" = [])),
    request_body(content = ChangeTagsRequest, content_type = "application/json"),
    params(
        ("id" = String, Path, description = "Ticket id (UUID)"),
        ("If-Match" = Option<String>, Header, description = "The version you last saw, quoted"),
    ),
    responses(
        (status = 200, description = "Tags changed", body = CommandAccepted, headers(("ETag" = String))),
        (status = 400, description = "Malformed JSON or header", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, expired or invalid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's role may not do this", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such ticket", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Ticket solved or closed, or lost a write race", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match is stale", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid tags, over 50 tags, or nothing changes", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn change_tags(update: TicketUpdate, body: JsonBody<ChangeTagsRequest>) -> Response {
    update
        .run(TicketCommand::ChangeTags(ChangeTags {
            add: body.value.add,
            remove: body.value.remove,
        }))
        .await
}

/// Add a public reply or an internal note.
///
/// The author is the caller. Only agents (and managers and admins, who write as agents) may add
/// `internal` notes. Send an `Idempotency-Key` to make retries safe, and `If-Match` with the
/// version you replied to: if someone changed the ticket since, the answer is 412 and its
/// `changes` list what happened (another agent's reply, say).
#[utoipa::path(
    post, path = "/api/v1/tickets/{id}/interactions", tag = "tickets",
    security(("bearer" = [])),
    request_body(content = AddInteractionRequest, content_type = "application/json"),
    params(
        ("id" = String, Path, description = "Ticket id (UUID)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes the POST safe to retry"),
        ("If-Match" = Option<String>, Header, description = "The version you replied to, quoted (\"3\"); a stale version gets 412"),
    ),
    responses(
        (status = 201, description = "Interaction added", body = CommandAccepted, headers(("ETag" = String))),
        (status = 400, description = "Malformed JSON or header", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, expired or invalid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's role may not do this", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such ticket", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Ticket solved or closed, lost a write race, or key in flight", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match is stale; `changes` names what happened since", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid body, or Idempotency-Key reused", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn add_interaction(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    context: RequestContext,
    TicketId(id): TicketId,
    if_match: IfMatch,
    key: IdempotencyKey,
    body: JsonBody<AddInteractionRequest>,
) -> Response {
    let interaction_id = Uuid::now_v7().to_string();
    let command = TicketCommand::AddInteraction(AddInteraction {
        interaction_id: interaction_id.clone(),
        author: principal.actor(),
        visibility: body.value.visibility,
        body: body.value.body,
    });
    let answer = Answer {
        status: StatusCode::CREATED,
        location: false,
        interaction_id: Some(interaction_id),
    };
    let retry = Retry {
        key,
        route: format!("POST /api/v1/tickets/{id}/interactions"),
        body: &body.raw,
    };
    let call = Call {
        state,
        principal,
        context,
    };
    call.run_idempotent(retry, id, if_match, command, answer)
        .await
}

/// Answers 404 for every unknown path, as problem+json.
pub async fn route_not_found() -> ApiError {
    ApiError::RouteNotFound
}

/// Answers 405 for a known path with the wrong method, as problem+json.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

//! `ApiError`: every way a command request can fail, mapped to HTTP in one table.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use helpdesk_domain::ticket::TicketError;
use helpdesk_domain::validation::Violations;

use crate::problem::Problem;

/// Why a request failed. Converted to `application/problem+json` by `IntoResponse`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("request body must be application/json")]
    UnsupportedMediaType,
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("invalid request: {0}")]
    Validation(Violations),
    #[error("invalid header {name}: {detail}")]
    InvalidHeader { name: &'static str, detail: String },
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("ticket not found")]
    TicketNotFound,
    #[error("no such resource")]
    RouteNotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("the ticket is at version {current_version}, not the one in If-Match")]
    PreconditionFailed {
        current_version: u64,
        /// What the client missed.
        changes: Vec<helpdesk_platform::problem::Change>,
    },
    #[error("{0}")]
    WriteConflict(String),
    #[error("this Idempotency-Key was used with a different request body")]
    IdempotencyKeyReused,
    #[error("a request with this Idempotency-Key is still being processed")]
    IdempotencyKeyInFlight,
    #[error(transparent)]
    Domain(#[from] TicketError),
    #[error("no SLA policy has this id")]
    PolicyNotFound,
    #[error("the SLA policy already has this definition")]
    PolicyUnchanged,
    /// Something on our side failed; the cause is logged, the client sees an opaque 500.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    /// Wraps an unexpected failure of ours.
    pub fn internal(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        ApiError::Internal(error.into())
    }

    /// The status, the stable problem slug and the title of the error: the whole mapping.
    fn classify(&self) -> (StatusCode, &'static str, &'static str) {
        use StatusCode as S;
        match self {
            ApiError::MalformedJson(_) => (S::BAD_REQUEST, "malformed-json", "Malformed JSON"),
            ApiError::InvalidHeader { .. } => (S::BAD_REQUEST, "invalid-header", "Invalid header"),
            ApiError::Forbidden(_) => (S::FORBIDDEN, "forbidden", "Not allowed"),
            ApiError::Domain(TicketError::InternalNoteNotAllowed) => (
                S::FORBIDDEN,
                "internal-note-forbidden",
                "Internal notes are for staff",
            ),
            ApiError::TicketNotFound | ApiError::Domain(TicketError::NotFound) => {
                (S::NOT_FOUND, "ticket-not-found", "Ticket not found")
            }
            ApiError::RouteNotFound => (S::NOT_FOUND, "not-found", "Not found"),
            ApiError::PolicyNotFound => {
                (S::NOT_FOUND, "sla-policy-not-found", "SLA policy not found")
            }
            ApiError::PolicyUnchanged => {
                (S::UNPROCESSABLE_ENTITY, "no-change", "Nothing to change")
            }
            ApiError::MethodNotAllowed => (
                S::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            ApiError::WriteConflict(_) => (S::CONFLICT, "write-conflict", "Concurrent write"),
            ApiError::IdempotencyKeyInFlight => (
                S::CONFLICT,
                "idempotency-key-in-flight",
                "Request already in progress",
            ),
            ApiError::Domain(TicketError::AlreadyOpened) => {
                (S::CONFLICT, "ticket-exists", "Ticket already exists")
            }
            ApiError::Domain(TicketError::Closed) => {
                (S::CONFLICT, "ticket-closed", "Ticket is closed")
            }
            ApiError::Domain(TicketError::Solved) => {
                (S::CONFLICT, "ticket-solved", "Ticket is solved")
            }
            ApiError::Domain(TicketError::InvalidTransition { .. }) => (
                S::CONFLICT,
                "invalid-status-transition",
                "Status change not allowed",
            ),
            ApiError::PreconditionFailed { .. } => (
                S::PRECONDITION_FAILED,
                "precondition-failed",
                "Resource has changed",
            ),
            ApiError::PayloadTooLarge { .. } => (
                S::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Request body too large",
            ),
            ApiError::UnsupportedMediaType => (
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            ApiError::Validation(_) | ApiError::Domain(TicketError::Invalid(_)) => (
                S::UNPROCESSABLE_ENTITY,
                "validation-failed",
                "Validation failed",
            ),
            ApiError::Domain(TicketError::NoChange(_)) => {
                (S::UNPROCESSABLE_ENTITY, "no-change", "Nothing to change")
            }
            ApiError::IdempotencyKeyReused => (
                S::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency-Key reused",
            ),
            ApiError::Internal(_) => (
                S::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal server error",
            ),
        }
    }

    /// The stable problem slug (used in metrics and logs too).
    pub fn slug(&self) -> &'static str {
        self.classify().1
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.classify().0
    }

    /// The problem body for this error.
    pub fn to_problem(&self) -> Problem {
        let (status, slug, title) = self.classify();
        let detail = match self {
            ApiError::Internal(_) => "the server failed to handle the request".to_owned(),
            other => other.to_string(),
        };
        let mut problem = Problem::new(status, slug, title, detail);
        match self {
            ApiError::Validation(violations)
            | ApiError::Domain(TicketError::Invalid(violations)) => {
                problem.errors = violations.0.clone();
            }
            ApiError::PreconditionFailed {
                current_version,
                changes,
            } => {
                problem.current_version = Some(*current_version);
                problem.changes.clone_from(changes);
            }
            _ => {}
        }
        problem
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(error = %cause, cause = ?cause, "request failed");
        }
        let mut response = self.to_problem().into_response();
        if let ApiError::PreconditionFailed {
            current_version, ..
        } = &self
            && let Ok(etag) = HeaderValue::from_str(&format!("\"{current_version}\""))
        {
            response.headers_mut().insert(header::ETAG, etag);
        }
        response
    }
}

//! `ApiError`: every way a command request can fail, mapped to HTTP in one table.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cqrs_es::AggregateError;
use helpdesk_domain::sla::SlaPolicyError;
use helpdesk_domain::ticket::TicketError;
use helpdesk_domain::validation::Violations;
use helpdesk_platform::overload;

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
    /// No Postgres connection came within the pool's acquire timeout (all busy, or the
    /// server unreachable): nothing was written, the client may retry (503 with
    /// `Retry-After`).
    #[error(
        "no database connection became available in time; retry after {secs} s",
        secs = overload::RETRY_AFTER_SECS
    )]
    DatabaseUnavailable,
    /// Something on our side failed; the cause is logged, the client sees an opaque 500.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    /// Wraps an unexpected failure of ours; a pool that had no connection to give within its
    /// timeout is [`ApiError::DatabaseUnavailable`], not a failure.
    pub fn internal(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        let error = error.into();
        if overload::is_pool_exhausted(&*error) || store_pool_exhausted(&*error) {
            return ApiError::DatabaseUnavailable;
        }
        ApiError::Internal(error)
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
            ApiError::DatabaseUnavailable => (
                S::SERVICE_UNAVAILABLE,
                "database-unavailable",
                "Database unavailable",
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
        if let ApiError::DatabaseUnavailable = &self {
            response = overload::database_unavailable(response);
        }
        response
    }
}

/// cqrs-es keeps the store's error as the payload of an `AggregateError` that does not report
/// it as its source, so the chain walk alone would miss a pool timeout while loading or
/// appending a ticket or an SLA policy.
fn store_pool_exhausted(error: &(dyn std::error::Error + 'static)) -> bool {
    store_cause::<TicketError>(error)
        .or_else(|| store_cause::<SlaPolicyError>(error))
        .is_some_and(overload::is_pool_exhausted)
}

/// The store's own error inside an `AggregateError` of aggregates failing with `E`.
fn store_cause<'a, E: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a (dyn std::error::Error + 'static)> {
    match error.downcast_ref::<AggregateError<E>>()? {
        AggregateError::DatabaseConnectionError(cause) | AggregateError::UnexpectedError(cause) => {
            Some(&**cause)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_timeout_is_a_503_however_it_arrives() {
        let direct = ApiError::internal(sqlx::Error::PoolTimedOut);
        assert!(matches!(direct, ApiError::DatabaseUnavailable));
        let from_the_store = ApiError::internal(AggregateError::<TicketError>::UnexpectedError(
            Box::new(sqlx::Error::PoolTimedOut),
        ));
        assert!(matches!(from_the_store, ApiError::DatabaseUnavailable));
        let other = ApiError::internal(AggregateError::<TicketError>::UnexpectedError(Box::new(
            sqlx::Error::RowNotFound,
        )));
        assert!(matches!(other, ApiError::Internal(_)));
    }

    #[test]
    fn no_connection_is_a_503_with_retry_after() {
        let response = ApiError::DatabaseUnavailable.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        assert_eq!(ApiError::DatabaseUnavailable.slug(), "database-unavailable");
    }
}

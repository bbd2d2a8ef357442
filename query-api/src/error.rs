//! `QueryError`: every way a read can fail, mapped to problem+json in one place.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use helpdesk_platform::overload;
use helpdesk_platform::problem::Problem;

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// No such ticket, or one the caller may not know about.
    #[error("ticket not found")]
    TicketNotFound,
    /// No events exist for the requested aggregate.
    #[error("no events exist for this aggregate")]
    AggregateNotFound,
    /// A query parameter is malformed.
    #[error("invalid {name}: {detail}")]
    InvalidParameter { name: &'static str, detail: String },
    /// The search query does not parse.
    #[error("the query does not parse at character {position}: {message}")]
    InvalidQuery { position: usize, message: String },
    /// The read model has not reached the requested `min_position` in time.
    #[error("the read model has not caught up with min_position yet; retry shortly")]
    NotYetReflected,
    /// This process serves no search index, or the index cannot be reached.
    #[error("search is not available right now; retry shortly")]
    SearchNotRunning,
    /// This process serves no real-time feed.
    #[error("the real-time feed is not available on this instance")]
    RealtimeNotRunning,
    /// A plain request reached the WebSocket endpoint.
    #[error("this endpoint speaks WebSocket only ({0}); send an Upgrade: websocket request")]
    UpgradeRequired(String),
    /// The caller's role may not read this.
    #[error("your role may not read this")]
    Forbidden,
    /// No Postgres connection came within the pool's acquire timeout (all busy, or the
    /// server unreachable): 503 with `Retry-After`.
    #[error(
        "no database connection became available in time; retry after {secs} s",
        secs = overload::RETRY_AFTER_SECS
    )]
    DatabaseUnavailable,
    /// Something on our side failed; logged, answered opaque.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl QueryError {
    /// Wraps an unexpected failure of ours; a pool that had no connection to give within its
    /// timeout is [`QueryError::DatabaseUnavailable`], not a failure.
    pub fn internal(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        let error = error.into();
        if overload::is_pool_exhausted(&*error) {
            return QueryError::DatabaseUnavailable;
        }
        QueryError::Internal(error)
    }
}

impl From<axum::extract::rejection::QueryRejection> for QueryError {
    /// Query parameters that do not deserialize (a `limit` that is not a number, say).
    fn from(rejection: axum::extract::rejection::QueryRejection) -> Self {
        QueryError::InvalidParameter {
            name: "query",
            detail: rejection.body_text(),
        }
    }
}

impl IntoResponse for QueryError {
    fn into_response(self) -> Response {
        let problem = match &self {
            QueryError::TicketNotFound => Problem::new(
                StatusCode::NOT_FOUND,
                "ticket-not-found",
                "Ticket not found",
                self.to_string(),
            ),
            QueryError::AggregateNotFound => Problem::new(
                StatusCode::NOT_FOUND,
                "aggregate-not-found",
                "Aggregate not found",
                self.to_string(),
            ),
            QueryError::InvalidParameter { .. } => Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-parameter",
                "Invalid query parameter",
                self.to_string(),
            ),
            QueryError::InvalidQuery { position, .. } => {
                let mut problem = Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid-query",
                    "Invalid search query",
                    self.to_string(),
                );
                problem.position = Some(*position);
                problem
            }
            QueryError::NotYetReflected => {
                return overload::retry_later(
                    Problem::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "not-yet-consistent",
                        "Read model behind",
                        self.to_string(),
                    )
                    .into_response(),
                );
            }
            QueryError::SearchNotRunning => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "search-unavailable",
                "Search unavailable",
                self.to_string(),
            ),
            QueryError::RealtimeNotRunning => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "realtime-unavailable",
                "Real-time feed unavailable",
                self.to_string(),
            ),
            QueryError::UpgradeRequired(_) => {
                let mut response = Problem::new(
                    StatusCode::UPGRADE_REQUIRED,
                    "upgrade-required",
                    "WebSocket upgrade required",
                    self.to_string(),
                )
                .into_response();
                response
                    .headers_mut()
                    .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
                return response;
            }
            QueryError::Forbidden => Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Not allowed",
                self.to_string(),
            ),
            QueryError::DatabaseUnavailable => {
                return overload::database_unavailable(
                    Problem::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "database-unavailable",
                        "Database unavailable",
                        self.to_string(),
                    )
                    .into_response(),
                );
            }
            QueryError::Internal(cause) => {
                tracing::error!(error = %cause, cause = ?cause, "read failed");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Internal server error",
                    "the server failed to handle the request",
                )
            }
        };
        problem.into_response()
    }
}

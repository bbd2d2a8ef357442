//! `application/problem+json` bodies (RFC 9457).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use helpdesk_domain::validation::FieldViolation;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error as the client sees it.
///
/// `type` is a stable identifier of the kind of error (a relative URI such as
/// `/problems/validation-failed`; the API guide lists them all); clients branch on it, never on
/// `title` or `detail`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// Stable identifier of the kind of error.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind of error.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong in this occurrence.
    pub detail: String,
    /// Per-field errors, for `422 validation-failed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldViolation>,
    /// The ticket's current version, for `412 precondition-failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_version: Option<u64>,
    /// For `412 precondition-failed`: what happened since the version in `If-Match`, oldest
    /// first (at most 100; internal notes only for those who may read them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
    /// Where in the search query the error starts (0-based, in characters), for
    /// `422 invalid-query`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
}

/// One event a stale client has not seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Change {
    /// The ticket's version after the event.
    pub version: u64,
    /// The event's name, e.g. `ReplyAdded`.
    pub event_type: String,
    /// Who did it.
    pub actor_id: Option<String>,
    pub actor_role: Option<String>,
    pub recorded_at: chrono::DateTime<chrono::Utc>,
}

impl Problem {
    /// Builds a problem of kind `/problems/<slug>`.
    pub fn new(status: StatusCode, slug: &str, title: &str, detail: impl Into<String>) -> Self {
        Problem {
            kind: format!("/problems/{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
            current_version: None,
            changes: Vec::new(),
            position: None,
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        response
    }
}

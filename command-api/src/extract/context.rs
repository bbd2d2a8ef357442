//! Request ids and the correlation/causation ids recorded in event metadata (invariant 6).
//!
//! Every request gets a request id: the caller's `X-Request-Id` when it sends a valid one, a
//! fresh UUIDv7 otherwise; it is echoed in the response's `X-Request-Id`. `X-Correlation-Id`
//! ties together everything one user action caused (default: the request id) and
//! `X-Causation-Id` names the message that caused this one (default: the request id).

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

const REQUEST_ID: &str = "x-request-id";
const CORRELATION_ID: &str = "x-correlation-id";
const CAUSATION_ID: &str = "x-causation-id";

/// The id of the current request, set by [`assign_request_id`].
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Ids that say why a command happened.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: String,
    pub correlation_id: String,
    pub causation_id: String,
}

/// Middleware: assigns the request id and echoes it on the response.
pub async fn assign_request_id(mut request: Request, next: Next) -> Response {
    let id = match trace_id(request.headers(), REQUEST_ID) {
        Ok(Some(id)) => id,
        Ok(None) => uuid::Uuid::now_v7().to_string(),
        Err(error) => return error.into_response(),
    };
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

impl<S: Send + Sync> FromRequestParts<S> for RequestContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let request_id = match parts.extensions.get::<RequestId>() {
            Some(RequestId(id)) => id.clone(),
            None => uuid::Uuid::now_v7().to_string(),
        };
        let correlation_id =
            trace_id(&parts.headers, CORRELATION_ID)?.unwrap_or_else(|| request_id.clone());
        let causation_id =
            trace_id(&parts.headers, CAUSATION_ID)?.unwrap_or_else(|| request_id.clone());
        Ok(RequestContext {
            request_id,
            correlation_id,
            causation_id,
        })
    }
}

/// Reads an optional id header: 1–128 characters of `A-Z a-z 0-9 . _ : -`.
fn trace_id(headers: &HeaderMap, name: &'static str) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    let valid = value.len() <= 128
        && !value.is_empty()
        && value
            .as_bytes()
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(b));
    match value.to_str() {
        Ok(text) if valid => Ok(Some(text.to_owned())),
        _ => Err(ApiError::InvalidHeader {
            name,
            detail: "must be 1 to 128 characters of letters, digits, '.', '_', ':' or '-'".into(),
        }),
    }
}

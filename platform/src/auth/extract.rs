//! The `Authenticated` extractor: the single place identity enters a handler.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{AuthError, Principal, Verifier};
use crate::problem::Problem;

/// The verified caller of the request.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

impl<S> FromRequestParts<S> for Authenticated
where
    S: Send + Sync,
    Arc<Verifier>: FromRef<S>,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = bearer_token(parts)?;
        let verifier = Arc::<Verifier>::from_ref(state);
        verifier.verify(token).await.map(Authenticated)
    }
}

/// The verified caller of a streaming request (WebSocket, Server-Sent Events): the bearer token
/// comes from the `Authorization` header or, for clients that cannot set headers on these
/// requests (browsers' `WebSocket` and `EventSource`), from the `access_token` query parameter
/// (RFC 6750 §2.3). Tokens in URLs can end up in proxy logs: prefer the header, and short-lived
/// tokens where the parameter is needed.
#[derive(Debug, Clone)]
pub struct StreamAuthenticated(pub Principal);

impl<S> FromRequestParts<S> for StreamAuthenticated
where
    S: Send + Sync,
    Arc<Verifier>: FromRef<S>,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let verifier = Arc::<Verifier>::from_ref(state);
        if parts.headers.contains_key(header::AUTHORIZATION) {
            return verifier.verify(bearer_token(parts)?).await.map(Self);
        }
        let token = query_token(parts).ok_or(AuthError::Missing)?;
        verifier.verify(&token).await.map(Self)
    }
}

/// The `access_token` query parameter, if present and not empty.
fn query_token(parts: &Parts) -> Option<String> {
    let axum::extract::Query(params) =
        axum::extract::Query::<std::collections::HashMap<String, String>>::try_from_uri(&parts.uri)
            .ok()?;
    params
        .get("access_token")
        .map(|token| token.trim().to_owned())
        .filter(|token| !token.is_empty())
}

fn bearer_token(parts: &Parts) -> Result<&str, AuthError> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or(AuthError::Missing)?
        .to_str()
        .map_err(|_| AuthError::Invalid("the Authorization header is not ASCII".into()))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| AuthError::Invalid("expected Authorization: Bearer <token>".into()))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthError::Invalid(
            "expected Authorization: Bearer <token>".into(),
        ));
    }
    Ok(token.trim())
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let challenge = match &self {
            AuthError::Missing => "Bearer realm=\"helpdesk\"".to_owned(),
            AuthError::Invalid(reason) => format!(
                "Bearer realm=\"helpdesk\", error=\"invalid_token\", error_description=\"{}\"",
                reason.replace(['"', '\\'], "'")
            ),
        };
        let problem = Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "Authentication required",
            self.to_string(),
        );
        let mut response = problem.into_response();
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

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

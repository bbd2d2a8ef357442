//! Who is acting. The single place identity enters the API.
//!
//! Until authentication lands this reads the development headers `X-Actor-Id` and
//! `X-Actor-Role`; handlers only see [`CurrentActor`], so replacing this with a verified token
//! changes no handler.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use helpdesk_domain::validation::{self, Violations};
use helpdesk_domain::{Actor, Role};

use crate::error::ApiError;

/// The authenticated actor of the request.
#[derive(Debug, Clone)]
pub struct CurrentActor(pub Actor);

impl<S: Send + Sync> FromRequestParts<S> for CurrentActor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        let (Some(id), Some(role)) = (header("x-actor-id"), header("x-actor-role")) else {
            return Err(ApiError::Unauthenticated(
                "send X-Actor-Id and X-Actor-Role to say who is acting".into(),
            ));
        };
        let mut violations = Violations::default();
        validation::id(&id, "x-actor-id", &mut violations);
        if !violations.is_empty() {
            return Err(ApiError::Unauthenticated(format!(
                "X-Actor-Id is not a valid id: {violations}"
            )));
        }
        let role = Role::parse(&role).ok_or_else(|| {
            let known: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
            ApiError::Unauthenticated(format!("X-Actor-Role must be one of {}", known.join(", ")))
        })?;
        Ok(CurrentActor(Actor::new(id, role)))
    }
}

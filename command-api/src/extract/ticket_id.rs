//! The `{id}` path segment of ticket routes. Ticket ids are UUIDs; anything else cannot name a
//! ticket, so it is a 404 (and never reaches the database).

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use uuid::Uuid;

use crate::error::ApiError;

/// A syntactically valid ticket id, in canonical lowercase hyphenated form.
#[derive(Debug, Clone)]
pub struct TicketId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for TicketId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::TicketNotFound)?;
        let id = Uuid::try_parse(&raw).map_err(|_| ApiError::TicketNotFound)?;
        Ok(TicketId(id.hyphenated().to_string()))
    }
}

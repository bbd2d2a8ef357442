//! Request extractors: everything a handler needs, already checked, or a ready `ApiError`.

mod context;
mod json;
mod preconditions;
mod ticket_id;

pub use context::{RequestContext, RequestId, assign_request_id};
pub use json::{JsonBody, MAX_BODY_BYTES};
pub use preconditions::{IdempotencyKey, IfMatch};
pub use ticket_id::TicketId;

//! The API's front door: at most `HELPDESK_MAX_IN_FLIGHT` requests under `/api/` are handled
//! at once; the one past the bound is answered `503 overloaded` with `Retry-After` before it
//! reads a body or touches Postgres (see `helpdesk_platform::overload`).
//!
//! The place is held until the handler has its response: a WebSocket or an SSE stream holds
//! none once it is open. Probes, `/metrics` and the docs are not counted, so an operator can
//! still see a server that sheds.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use helpdesk_platform::overload::{self, InFlight};
use helpdesk_platform::problem::PROBLEM_JSON;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, ResponseBuilder};

/// The paths the bound covers.
const BOUNDED_PREFIX: &str = "/api/";

/// Middleware: admits the request or answers `503 overloaded`.
pub async fn admit(
    State(in_flight): State<Arc<InFlight>>,
    request: Request,
    next: Next,
) -> Response {
    if !request.uri().path().starts_with(BOUNDED_PREFIX) {
        return next.run(request).await;
    }
    let Some(_place) = in_flight.try_enter() else {
        tracing::debug!(
            limit = in_flight.limit(),
            "request turned away: too many in flight"
        );
        return overload::overloaded(format!(
            "the server is handling {} requests, as many as it takes at once; retry after {} s",
            in_flight.limit(),
            overload::RETRY_AFTER_SECS
        ));
    };
    next.run(request).await
}

/// Adds the 503 answers of overload (`overloaded`, `database-unavailable`), with their
/// `Retry-After` header, to every operation under `/api/`; an operation that documents a 503
/// of its own gets the case added to it.
pub fn document(api: &mut OpenApi) {
    const CASE: &str = "the server is overloaded (`overloaded`) or got no database connection \
                        in time (`database-unavailable`): nothing was done, send the request \
                        again after Retry-After";
    for (path, item) in api.paths.paths.iter_mut() {
        if !path.starts_with(BOUNDED_PREFIX) {
            continue;
        }
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            add_overload(operation, CASE);
        }
    }
}

fn add_overload(operation: &mut Operation, case: &str) {
    let retry_after = HeaderBuilder::new()
        .schema(Some(ObjectBuilder::new().schema_type(Type::Integer)))
        .description(Some("Seconds to wait before sending the request again"))
        .build();
    let responses = &mut operation.responses.responses;
    match responses.get_mut("503") {
        Some(RefOr::T(existing)) => {
            existing.description = format!("{}; or {case}", existing.description);
            existing
                .headers
                .insert("Retry-After".to_owned(), RefOr::T(retry_after));
        }
        Some(RefOr::Ref(_)) => {}
        None => {
            let problem = Content::new(Some(Ref::from_schema_name("Problem")));
            let response = ResponseBuilder::new()
                .description(capitalized(case))
                .header("Retry-After", retry_after)
                .content(PROBLEM_JSON, problem)
                .build();
            responses.insert("503".to_owned(), RefOr::T(response));
        }
    }
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

//! `Idempotency-Key` for POST requests: a retried request gets the first response.
//!
//! The key is reserved in Postgres before the command runs, so two concurrent requests with the
//! same key never both execute; the second one gets 409 `idempotency-key-in-flight` until the
//! first answered. A 2xx response is stored and replayed for the key's lifetime (24 h by
//! default) with `Idempotent-Replayed: true`; any other response releases the key so the client
//! may retry. Reusing a key with a different body is 422 `idempotency-key-reused`.
//!
//! The command and the storing of its response run in a task of their own, so a client that
//! disconnects mid-request cannot cancel anything between the append and the stored response.

use std::future::Future;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::error::ApiError;
use helpdesk_platform::overload::NothingWritten;

/// A reservation older than this is treated as abandoned (its process died) and taken over.
const ABANDONED_AFTER: Duration = Duration::from_secs(30);

/// Response headers worth replaying.
const REPLAYED_HEADERS: [&str; 3] = ["content-type", "location", "etag"];

/// Identifies one idempotent request: who sent it to which route, with which key and body.
#[derive(Debug, Clone)]
pub struct IdempotentRequest {
    /// The caller and the route (`<actor>:<method> <path>`): keys of different callers never
    /// collide.
    pub scope: String,
    /// The client's key.
    pub key: String,
    /// SHA-256 of the canonical JSON body.
    pub request_hash: Vec<u8>,
}

impl IdempotentRequest {
    /// Builds the request identity. `body` is already known to be valid JSON; it is hashed in
    /// canonical form (sorted keys, no insignificant whitespace), so formatting differences of
    /// the same request do not count as a different body.
    pub fn new(scope: String, key: String, body: &[u8]) -> Self {
        let canonical = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|value| serde_json::to_vec(&value).ok())
            .unwrap_or_else(|| body.to_vec());
        IdempotentRequest {
            scope,
            key,
            request_hash: Sha256::digest(&canonical).to_vec(),
        }
    }
}

/// Runs `command` at most once per key and returns its (possibly replayed) response.
pub async fn run_once<F>(
    pool: &PgPool,
    ttl: Duration,
    request: Option<IdempotentRequest>,
    command: F,
) -> Response
where
    F: Future<Output = Response> + Send + 'static,
{
    let Some(request) = request else {
        return run_detached(command).await;
    };
    let reservation = match reserve(pool, ttl, &request).await {
        Ok(Reserved::Fresh(reservation)) => reservation,
        Ok(Reserved::Replay(replay)) => return replay,
        Err(error) => return error.into_response(),
    };
    // Running the command and settling the key happen in one task of their own: a client that
    // disconnects cancels the handler, never the pair, so a committed command always leaves
    // its response behind.
    let pool = pool.clone();
    run_detached(async move {
        let response = command.await;
        settle(&pool, &request, reservation, response)
            .await
            .unwrap_or_else(IntoResponse::into_response)
    })
    .await
}

/// What becomes of a reserved key once its command answered.
#[derive(Debug, PartialEq, Eq)]
enum Settlement {
    /// A 2xx: stored, replayed to every retry.
    Store,
    /// A 4xx (the command did not run, the client may fix the request), or an answer marked
    /// [`NothingWritten`] (`503 overloaded` or `database-unavailable`): the key is free for the
    /// retry.
    Release,
    /// Any other 5xx: the command may have been committed before the failure, so a retry waits
    /// until the reservation is abandoned rather than risk running the command twice.
    Keep,
}

fn settlement(response: &Response) -> Settlement {
    let status = response.status();
    if status.is_success() {
        Settlement::Store
    } else if status.is_client_error() || response.extensions().get::<NothingWritten>().is_some() {
        Settlement::Release
    } else {
        Settlement::Keep
    }
}

async fn settle(
    pool: &PgPool,
    request: &IdempotentRequest,
    reservation: Reservation,
    response: Response,
) -> Result<Response, ApiError> {
    match settlement(&response) {
        Settlement::Store => store(pool, request, reservation, response).await,
        Settlement::Release => release(pool, request, reservation).await.map(|()| response),
        Settlement::Keep => Ok(response),
    }
}

async fn run_detached<F>(command: F) -> Response
where
    F: Future<Output = Response> + Send + 'static,
{
    match tokio::spawn(command).await {
        Ok(response) => response,
        Err(error) => ApiError::internal(error).into_response(),
    }
}

/// A row of `idempotency_keys`; the response columns are NULL while the request runs.
#[derive(sqlx::FromRow)]
struct StoredKey {
    request_hash: Vec<u8>,
    response_status: Option<i16>,
    response_headers: Option<serde_json::Value>,
    response_body: Option<Vec<u8>>,
}

/// A reservation we hold, identified by when it was made: a reservation taken over after it was
/// abandoned has another `created_at`, and the original holder may then no longer touch it.
#[derive(Debug, Clone, Copy)]
struct Reservation {
    created_at: chrono::DateTime<chrono::Utc>,
}

/// What reserving a key found.
enum Reserved {
    /// Ours: run the command.
    Fresh(Reservation),
    /// Already answered: replay this.
    Replay(Response),
}

/// Reserves the key.
async fn reserve(
    pool: &PgPool,
    ttl: Duration,
    request: &IdempotentRequest,
) -> Result<Reserved, ApiError> {
    let inserted: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
        "INSERT INTO idempotency_keys (scope, key, request_hash, expires_at) \
         VALUES ($1, $2, $3, now() + make_interval(secs => $4)) \
         ON CONFLICT (scope, key) DO UPDATE \
            SET request_hash = EXCLUDED.request_hash, response_status = NULL, \
                response_headers = NULL, response_body = NULL, created_at = now(), \
                expires_at = EXCLUDED.expires_at \
          WHERE idempotency_keys.expires_at < now() \
             OR (idempotency_keys.response_status IS NULL \
                 AND idempotency_keys.created_at < now() - make_interval(secs => $5)) \
         RETURNING created_at",
    )
    .bind(&request.scope)
    .bind(&request.key)
    .bind(&request.request_hash)
    .bind(ttl.as_secs_f64())
    .bind(ABANDONED_AFTER.as_secs_f64())
    .fetch_optional(pool)
    .await
    .map_err(ApiError::internal)?;
    if let Some(created_at) = inserted {
        return Ok(Reserved::Fresh(Reservation { created_at }));
    }
    let stored: Option<StoredKey> = sqlx::query_as(
        "SELECT request_hash, response_status, response_headers, response_body \
             FROM idempotency_keys WHERE scope = $1 AND key = $2",
    )
    .bind(&request.scope)
    .bind(&request.key)
    .fetch_optional(pool)
    .await
    .map_err(ApiError::internal)?;
    let Some(StoredKey {
        request_hash: hash,
        response_status: status,
        response_headers: headers,
        response_body: body,
    }) = stored
    else {
        // Released between our insert and our read: treat it like any in-flight request.
        return Err(ApiError::IdempotencyKeyInFlight);
    };
    if hash != request.request_hash {
        return Err(ApiError::IdempotencyKeyReused);
    }
    match (status, body) {
        (Some(status), Some(body)) => Ok(Reserved::Replay(replay(status, headers, body)?)),
        _ => Err(ApiError::IdempotencyKeyInFlight),
    }
}

fn replay(
    status: i16,
    headers: Option<serde_json::Value>,
    body: Vec<u8>,
) -> Result<Response, ApiError> {
    let status = u16::try_from(status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or_else(|| ApiError::internal(format!("stored status {status} is not HTTP")))?;
    let mut response = (status, Body::from(body)).into_response();
    if let Some(serde_json::Value::Object(map)) = headers {
        for (name, value) in map {
            if let (Ok(name), Some(Ok(value))) = (
                HeaderName::try_from(name),
                value.as_str().map(HeaderValue::from_str),
            ) {
                response.headers_mut().insert(name, value);
            }
        }
    }
    response
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    Ok(response)
}

async fn store(
    pool: &PgPool,
    request: &IdempotentRequest,
    reservation: Reservation,
    response: Response,
) -> Result<Response, ApiError> {
    // The command is committed here: a failure to store its answer is a 500 that keeps the
    // key reserved, never `database-unavailable` (which tells the client nothing was done).
    let committed = |error: Box<dyn std::error::Error + Send + Sync>| ApiError::Internal(error);
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|error| committed(error.into()))?;
    sqlx::query(
        "UPDATE idempotency_keys \
            SET response_status = $3, response_headers = $4, response_body = $5 \
          WHERE scope = $1 AND key = $2 AND created_at = $6",
    )
    .bind(&request.scope)
    .bind(&request.key)
    .bind(parts.status.as_u16() as i16)
    .bind(replayable_headers(&parts.headers))
    .bind(bytes.as_ref())
    .bind(reservation.created_at)
    .execute(pool)
    .await
    .map_err(|error| committed(error.into()))?;
    Ok(Response::from_parts(parts, Body::from(bytes)))
}

fn replayable_headers(headers: &HeaderMap) -> serde_json::Value {
    let map = REPLAYED_HEADERS
        .iter()
        .filter_map(|name| {
            let value = headers.get(*name)?.to_str().ok()?;
            Some(((*name).to_owned(), serde_json::Value::from(value)))
        })
        .collect();
    serde_json::Value::Object(map)
}

async fn release(
    pool: &PgPool,
    request: &IdempotentRequest,
    reservation: Reservation,
) -> Result<(), ApiError> {
    sqlx::query("DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND created_at = $3")
        .bind(&request.scope)
        .bind(&request.key)
        .bind(reservation.created_at)
        .execute(pool)
        .await
        .map_err(ApiError::internal)?;
    Ok(())
}

/// Deletes expired keys; `helpdesk up` calls it periodically.
pub async fn purge_expired(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let deleted = sqlx::query("DELETE FROM idempotency_keys WHERE expires_at < now()")
        .execute(pool)
        .await?;
    Ok(deleted.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_answer_that_wrote_nothing_frees_the_key() {
        let with_status = |status: StatusCode| (status, "").into_response();
        assert_eq!(
            settlement(&with_status(StatusCode::CREATED)),
            Settlement::Store
        );
        assert_eq!(
            settlement(&with_status(StatusCode::UNPROCESSABLE_ENTITY)),
            Settlement::Release
        );
        assert_eq!(
            settlement(&ApiError::DatabaseUnavailable.into_response()),
            Settlement::Release
        );
        // A bare 503 (the pool failed after the commit, say) proves nothing.
        assert_eq!(
            settlement(&with_status(StatusCode::SERVICE_UNAVAILABLE)),
            Settlement::Keep
        );
        assert_eq!(
            settlement(&ApiError::internal("boom").into_response()),
            Settlement::Keep
        );
    }
}

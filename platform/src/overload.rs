//! Overload: how a process that cannot take more work right now says so.
//!
//! Two places notice it. At the front door, [`InFlight`] bounds the API requests being
//! handled at once; one more is turned away at once (`503 overloaded`) instead of joining a
//! queue that only grows, and holds its memory, while the clients time out. Further in, a
//! request that waited the pool's whole acquire timeout for a Postgres connection
//! ([`is_pool_exhausted`]) gets `503 database-unavailable`: every connection was busy, or
//! PostgreSQL could not be reached (sqlx keeps retrying a refused connect until the deadline).
//! Both carry `Retry-After` and are marked [`NothingWritten`], never a `500`: nothing went
//! wrong with the request, and sending it again later is safe.

use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::problem::Problem;

/// What `Retry-After` says, in seconds.
pub const RETRY_AFTER_SECS: u64 = 1;

/// Whether `error`, or anything in its chain of sources, is the pool giving up waiting for a
/// free connection.
pub fn is_pool_exhausted(error: &(dyn Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if matches!(
            error.downcast_ref::<sqlx::Error>(),
            Some(sqlx::Error::PoolTimedOut)
        ) {
            return true;
        }
        next = error.source();
    }
    false
}

/// Marks a response (as an extension) whose request changed nothing, so that a reserved
/// `Idempotency-Key` may be released for the retry.
#[derive(Debug, Clone, Copy)]
pub struct NothingWritten;

/// The door's answer: `503 overloaded`, problem+json, marked by [`retry_later`].
pub fn overloaded(detail: impl Into<String>) -> Response {
    retry_later(
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "Server overloaded",
            detail,
        )
        .into_response(),
    )
}

/// Completes the answer (already mapped by the API's error table) to a request that got no
/// database connection in time: marked by [`retry_later`], and logged as a warning at most
/// every [`WARNING_EVERY_MS`] with the number of such answers since the last one, so that an
/// outage shows in the log without drowning it.
pub fn database_unavailable(response: Response) -> Response {
    if let Some(requests) = UNAVAILABLE.count_and_maybe_report(now_ms()) {
        tracing::warn!(
            requests,
            "no database connection within the pool's acquire timeout; \
             answered 503 database-unavailable"
        );
    }
    retry_later(response)
}

/// Adds `Retry-After` and the [`NothingWritten`] mark to a response: the request did nothing
/// and may be sent again after that many seconds.
pub fn retry_later(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    response.extensions_mut().insert(NothingWritten);
    response
}

/// The least time between two warnings about `database-unavailable` answers.
pub const WARNING_EVERY_MS: u64 = 10_000;

static UNAVAILABLE: Reported = Reported::new();

/// Counts occurrences and says how many happened whenever a report is due.
struct Reported {
    since_report: AtomicU64,
    /// When the last report was due (ms since the Unix epoch; 0 before the first).
    last_report_ms: AtomicU64,
}

impl Reported {
    const fn new() -> Self {
        Reported {
            since_report: AtomicU64::new(0),
            last_report_ms: AtomicU64::new(0),
        }
    }

    /// Counts one occurrence at `now_ms`; the count since the last report when one is due.
    fn count_and_maybe_report(&self, now_ms: u64) -> Option<u64> {
        self.since_report.fetch_add(1, Ordering::Relaxed);
        let last = self.last_report_ms.load(Ordering::Relaxed);
        let due = last == 0 || now_ms.saturating_sub(last) >= WARNING_EVERY_MS;
        let ours = due
            && self
                .last_report_ms
                .compare_exchange(last, now_ms.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        ours.then(|| self.since_report.swap(0, Ordering::Relaxed))
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

/// The bound on requests handled at once (`HELPDESK_MAX_IN_FLIGHT`).
#[derive(Debug)]
pub struct InFlight {
    permits: Arc<Semaphore>,
    limit: usize,
    turned_away: AtomicU64,
}

impl InFlight {
    /// Allows `limit` requests at once (at most `Semaphore::MAX_PERMITS`).
    pub fn new(limit: usize) -> Self {
        let limit = limit.min(Semaphore::MAX_PERMITS);
        InFlight {
            permits: Arc::new(Semaphore::new(limit)),
            limit,
            turned_away: AtomicU64::new(0),
        }
    }

    /// A place for one more request, held until the permit drops; `None` (and counted) when
    /// every place is taken.
    pub fn try_enter(&self) -> Option<OwnedSemaphorePermit> {
        let permit = self.permits.clone().try_acquire_owned().ok();
        if permit.is_none() {
            self.turned_away.fetch_add(1, Ordering::Relaxed);
        }
        permit
    }

    /// How many requests may be in flight at once.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// How many are in flight now.
    pub fn current(&self) -> usize {
        self.limit - self.permits.available_permits()
    }

    /// How many were turned away since start.
    pub fn turned_away(&self) -> u64 {
        self.turned_away.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("loading the ticket failed")]
    struct Wrapper(#[source] sqlx::Error);

    #[test]
    fn a_pool_timeout_is_found_anywhere_in_the_chain() {
        assert!(is_pool_exhausted(&sqlx::Error::PoolTimedOut));
        assert!(is_pool_exhausted(&Wrapper(sqlx::Error::PoolTimedOut)));
        assert!(!is_pool_exhausted(&Wrapper(sqlx::Error::RowNotFound)));
        assert!(!is_pool_exhausted(&std::io::Error::other("disk")));
    }

    #[test]
    fn a_warning_is_due_at_most_every_ten_seconds_and_counts_what_it_summarizes() {
        let reported = Reported::new();
        assert_eq!(reported.count_and_maybe_report(1_000_000), Some(1));
        assert_eq!(reported.count_and_maybe_report(1_000_001), None);
        assert_eq!(reported.count_and_maybe_report(1_009_999), None);
        assert_eq!(reported.count_and_maybe_report(1_010_000), Some(3));
        assert_eq!(reported.count_and_maybe_report(1_010_500), None);
    }

    #[test]
    fn the_limit_turns_away_the_one_past_it_until_a_place_frees() {
        let in_flight = InFlight::new(2);
        let first = in_flight.try_enter().unwrap();
        let _second = in_flight.try_enter().unwrap();
        assert_eq!(in_flight.current(), 2);
        assert!(in_flight.try_enter().is_none());
        assert_eq!(in_flight.turned_away(), 1);
        drop(first);
        assert!(in_flight.try_enter().is_some());
        assert_eq!(in_flight.turned_away(), 1);
    }

    #[test]
    fn the_answers_are_503_problems_with_retry_after() {
        let no_connection = Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database-unavailable",
            "Database unavailable",
            "no connection",
        );
        for response in [
            overloaded("busy"),
            database_unavailable(no_connection.into_response()),
        ] {
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(response.headers()[header::RETRY_AFTER], "1");
            assert_eq!(
                response.headers()[header::CONTENT_TYPE],
                crate::problem::PROBLEM_JSON
            );
            assert!(response.extensions().get::<NothingWritten>().is_some());
        }
    }
}

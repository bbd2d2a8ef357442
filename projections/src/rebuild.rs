//! Rebuilding a read model from the event store (invariant 1).
//!
//! The projection is reset, then every committed event is replayed in `(tx_id,
//! global_position)` order, which keeps each ticket's events in sequence order. The store is
//! read directly, not JetStream, whose retention may be shorter than history. The live consumer
//! may keep running: both paths are sequence-aware, so an event applied by one is a duplicate
//! for the other, and an event the live consumer sees before the rebuild restored its ticket
//! waits behind the gap until it has.

use std::time::{Duration, Instant};

use helpdesk_platform::event_log::{self, Cursor};
use sqlx::PgPool;

use crate::{Projection, ProjectionError};

/// Events read per round trip.
const BATCH: i64 = 1000;
/// Attempts per event on transient failures.
const ATTEMPTS: u32 = 5;

/// Where a rebuild stands.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Events replayed so far.
    pub done: u64,
    /// Events in the store when the rebuild started.
    pub total: u64,
    /// Time since the start.
    pub elapsed: Duration,
}

impl Progress {
    /// Replay rate so far.
    pub fn events_per_second(&self) -> f64 {
        self.done as f64 / self.elapsed.as_secs_f64().max(1e-6)
    }

    /// Estimated time left.
    pub fn eta(&self) -> Duration {
        let left = self.total.saturating_sub(self.done) as f64;
        Duration::from_secs_f64(left / self.events_per_second().max(1e-6))
    }
}

/// Resets `projection` and replays the whole event store into it; `report` is called after
/// every batch. Returns the number of events replayed.
pub async fn rebuild(
    pool: &PgPool,
    projection: &dyn Projection,
    mut report: impl FnMut(Progress),
) -> Result<u64, ProjectionError> {
    let started = Instant::now();
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await?;
    projection.reset().await?;
    let mut cursor = Cursor::default();
    let mut done = 0u64;
    loop {
        let batch = event_log::next_batch(pool, cursor, BATCH).await?;
        let Some(last) = batch.last().map(|p| p.cursor) else {
            break;
        };
        for pending in &batch {
            apply_with_retries(projection, pending).await?;
        }
        done += batch.len() as u64;
        cursor = last;
        projection.save_checkpoint(last.position).await?;
        report(Progress {
            done,
            total: u64::try_from(total).unwrap_or_default(),
            elapsed: started.elapsed(),
        });
    }
    Ok(done)
}

async fn apply_with_retries(
    projection: &dyn Projection,
    pending: &event_log::Pending,
) -> Result<(), ProjectionError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match projection.apply(&pending.envelope).await {
            Ok(_) => return Ok(()),
            Err(ProjectionError::Transient(_) | ProjectionError::Unavailable(_))
                if attempt < ATTEMPTS =>
            {
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
            }
            Err(error) => return Err(error),
        }
    }
}

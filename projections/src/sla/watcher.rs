//! The breach watcher: records `SlaBreached` when a running clock passes its due instant and
//! no ticket event comes along to do it.
//!
//! The projection already records every breach due before a ticket event it processes; the
//! watcher makes breaches timely for tickets nobody touches. Each sweep finds tickets with a
//! running activation (no outcome, not withdrawn, not paused) due at or before `now - GRACE`
//! (the partial index `sla_metric_running_due`), and for each, in one transaction: locks the
//! ticket as the projection does (`store::lock`) and reads its `sla_state`, asks the engine for
//! `due_breaches`, appends them and updates rows and counts (`store::record`). Several
//! watchers (one per `helpdesk up`) may run: the ticket's lock serializes them per ticket, the
//! second finds nothing due any more,
//! and the `TicketSla` sequence primary key refuses a write from a stale state.
//!
//! A ticket whose events the projection has not applied yet is skipped: one of those events
//! may be the reply that met the target, and the projection will find the breach itself if
//! there was one. `GRACE` covers a command transaction that started before the due instant
//! and has not committed yet (its event is stamped with its start).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::store::{self, Cause};
use crate::ProjectionError;

/// How long after its due instant a breach is recorded at the earliest.
pub const GRACE: Duration = Duration::from_secs(1);
/// The longest a watcher sleeps between sweeps.
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// The shortest pause after a sweep that recorded nothing (tickets waiting for the projection).
const MIN_SLEEP: Duration = Duration::from_millis(100);
/// Due clocks read per sweep (their tickets are handled).
const BATCH: i64 = 500;

/// The running clocks due at or before now less `$1` seconds, most overdue first, at most `$2`,
/// by their tickets' ids (a ticket has up to one running clock per metric): the start of the
/// partial index `sla_metric_running_due`, so a sweep reads the clocks that are due and not
/// every running one. The bound is `statement_timestamp()`, fixed for the statement: the
/// volatile `clock_timestamp()` cannot be an index condition, and each sweep read every running
/// clock (293 ms with 25,000 of them, on a database never analyzed); the order by `due_at` keeps
/// the planner on that index whatever the table's statistics.
pub const DUE_CLOCKS: &str = "SELECT ticket_id FROM sla_metric \
      WHERE outcome IS NULL AND withdrawn_at IS NULL AND NOT paused \
        AND due_at <= statement_timestamp() - make_interval(secs => $1) \
      ORDER BY due_at LIMIT $2";

/// Seconds until the next running clock falls due, plus `$1`; no row when none runs. The first
/// entry of `sla_metric_running_due` (`ORDER BY … LIMIT 1`: the planner read every entry for
/// `min(due_at)` on a database never analyzed).
pub const NEXT_DUE: &str = "SELECT extract(epoch FROM due_at - clock_timestamp())::float8 + $1 \
       FROM sla_metric WHERE outcome IS NULL AND withdrawn_at IS NULL AND NOT paused \
      ORDER BY due_at LIMIT 1";

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Breaches recorded.
    pub recorded: usize,
    /// Tickets skipped because the projection has not applied all their events yet.
    pub deferred: usize,
    /// Whether the batch was full (more may be due right now).
    pub full: bool,
    /// Time until the next running clock falls due (plus the grace), if any runs.
    pub next_due_in: Option<Duration>,
}

/// Records breaches as they fall due.
#[derive(Debug, Clone)]
pub struct BreachWatcher {
    pool: PgPool,
}

impl BreachWatcher {
    /// A watcher over the SLA read model in `pool`.
    pub fn new(pool: PgPool) -> Self {
        BreachWatcher { pool }
    }

    /// Sweeps forever: right away again after a full batch, else until the next due instant
    /// (at most a second, so clocks activated meanwhile are seen).
    pub async fn run(self) {
        loop {
            let pause = match self.sweep().await {
                Ok(sweep) if sweep.full && sweep.recorded > 0 => Duration::ZERO,
                Ok(sweep) => {
                    let until_due = sweep.next_due_in.unwrap_or(MAX_SLEEP).min(MAX_SLEEP);
                    if sweep.recorded == 0 {
                        until_due.max(MIN_SLEEP)
                    } else {
                        until_due
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "the SLA breach watcher failed; retrying");
                    MAX_SLEEP
                }
            };
            tokio::time::sleep(pause).await;
        }
    }

    /// One pass over the tickets with breaches due now.
    pub async fn sweep(&self) -> Result<Sweep, ProjectionError> {
        let grace = grace_seconds();
        let clocks: Vec<String> = sqlx::query_scalar(DUE_CLOCKS)
            .bind(grace)
            .bind(BATCH)
            .fetch_all(&self.pool)
            .await?;
        let mut sweep = Sweep {
            full: i64::try_from(clocks.len()).unwrap_or(i64::MAX) >= BATCH,
            ..Sweep::default()
        };
        let mut seen = std::collections::HashSet::new();
        let tickets: Vec<String> = clocks
            .into_iter()
            .filter(|ticket| seen.insert(ticket.clone()))
            .collect();
        for ticket in &tickets {
            match self.breach(ticket).await {
                Ok(Some(recorded)) => sweep.recorded += recorded,
                Ok(None) => sweep.deferred += 1,
                // Another ticket's trouble must not hold up the rest; it is tried again next
                // sweep.
                Err(error) => {
                    tracing::warn!(ticket_id = %ticket, %error, "could not record SLA breaches");
                    sweep.deferred += 1;
                }
            }
        }
        let next: Option<f64> = sqlx::query_scalar(NEXT_DUE)
            .bind(grace)
            .fetch_optional(&self.pool)
            .await?;
        sweep.next_due_in = next.map(|seconds| Duration::from_secs_f64(seconds.clamp(0.0, 3600.0)));
        Ok(sweep)
    }

    /// Records the breaches due on one ticket; `None` when the projection is behind on it.
    async fn breach(&self, ticket_id: &str) -> Result<Option<usize>, ProjectionError> {
        let mut tx = self.pool.begin().await?;
        let Some(mut state) = store::lock(&mut tx, ticket_id).await? else {
            return Ok(Some(0));
        };
        let (stored, horizon): (Option<i64>, DateTime<Utc>) = sqlx::query_as(
            "SELECT (SELECT max(sequence) FROM events \
                      WHERE aggregate_type = 'Ticket' AND aggregate_id = $1), \
                    clock_timestamp() - make_interval(secs => $2)",
        )
        .bind(ticket_id)
        .bind(grace_seconds())
        .fetch_one(&mut *tx)
        .await?;
        if stored.unwrap_or(0) != state.last_sequence {
            return Ok(None);
        }
        let breaches = state.engine.due_breaches(horizon);
        if breaches.is_empty() {
            return Ok(Some(0));
        }
        for breach in &breaches {
            state.engine.apply(breach);
        }
        let last_event = state.last_event_id.clone().unwrap_or_default();
        let cause = Cause {
            causation_id: last_event.clone(),
            correlation_id: last_event,
            ticket_sequence: state.last_sequence,
            command: "sla_breach_watcher",
        };
        store::record(&mut tx, &mut state, &breaches, &cause).await?;
        tx.commit().await?;
        tracing::debug!(
            ticket_id,
            breaches = breaches.len(),
            "recorded SLA breaches"
        );
        Ok(Some(breaches.len()))
    }
}

fn grace_seconds() -> f64 {
    GRACE.as_secs_f64()
}

//! The report counts' folder: moves the count changes SLA writers append to
//! `sla_report_count_changes` into `sla_report_counts`, a few times a second
//! ([`store::fold_count_changes`]; docs/adr/0012-sla-report-count-changes.md).
//!
//! Reports read both tables, so how often it folds decides only how many changes a report sums
//! besides the counts, not what it answers. Several folders (one per `helpdesk up`) may run;
//! only one folds at a time, the others skip.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::PgPool;

use super::store;

/// The pause between folds.
const FOLD_EVERY: Duration = Duration::from_millis(250);
/// Folds between two `VACUUM`s of the changes table.
const FOLDS_PER_VACUUM: u32 = 20;

/// Folds the report count changes, forever.
#[derive(Debug, Clone)]
pub struct CountFolder {
    pool: PgPool,
    stats: Arc<FoldStats>,
}

/// What one folder did since it started (for `/metrics`). A fold that found another folder at
/// work and skipped is not counted.
#[derive(Debug, Default)]
pub struct FoldStats {
    folds: AtomicU64,
    changes: AtomicU64,
    below_zero: AtomicU64,
    micros: AtomicU64,
}

impl FoldStats {
    /// Folds done, those that found nothing to fold included (a few a second). Read first:
    /// the other figures are then at least as far as the folds counted.
    pub fn folds(&self) -> u64 {
        self.folds.load(Ordering::Acquire)
    }

    /// Changes folded into the counts.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }

    /// Count rows folds left below zero, summed over the folds (a row that stays below zero
    /// counts again whenever a later fold changes it and leaves it there; each is also logged
    /// as an error).
    pub fn below_zero(&self) -> u64 {
        self.below_zero.load(Ordering::Relaxed)
    }

    /// Time spent folding, in seconds, waiting for a connection and for the writers' lock
    /// (held by a rebuild) included.
    pub fn seconds(&self) -> f64 {
        self.micros.load(Ordering::Relaxed) as f64 / 1e6
    }

    fn record(&self, folded: &store::Folded, took: Duration) {
        if folded.skipped {
            return;
        }
        self.changes.fetch_add(folded.changes, Ordering::Relaxed);
        self.below_zero
            .fetch_add(folded.below_zero, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.micros.fetch_add(micros, Ordering::Relaxed);
        // Last, so that whoever sees this fold counted sees its figures too.
        self.folds.fetch_add(1, Ordering::Release);
    }
}

impl CountFolder {
    /// A folder over the SLA read model in `pool`.
    pub fn new(pool: PgPool) -> Self {
        CountFolder {
            pool,
            stats: Arc::default(),
        }
    }

    /// What this folder did so far; it keeps counting after `run` took the folder.
    pub fn stats(&self) -> Arc<FoldStats> {
        self.stats.clone()
    }

    /// Folds every [`FOLD_EVERY`], and every [`FOLDS_PER_VACUUM`] folds vacuums the changes
    /// table: every change is deleted once folded, so without a vacuum the table would grow by
    /// every change ever written wherever autovacuum is off or behind, and a report reads all
    /// of it.
    pub async fn run(self) {
        let mut folds = 0u32;
        loop {
            let started = Instant::now();
            let pause = match store::fold_count_changes(&self.pool).await {
                Ok(folded) => {
                    self.stats.record(&folded, started.elapsed());
                    if folded.below_zero > 0 {
                        tracing::error!(
                            rows = folded.below_zero,
                            "SLA report counts fell below zero (an outcome taken back that was \
                             never counted); rebuild the SLA view: helpdesk projections rebuild sla"
                        );
                    }
                    // A backlog is folded in bounded steps: go on at once while one is full.
                    if folded.changes >= store::FOLD_AT_MOST.unsigned_abs() {
                        Duration::ZERO
                    } else {
                        FOLD_EVERY
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "could not fold SLA report count changes");
                    FOLD_EVERY
                }
            };
            folds = folds.wrapping_add(1);
            if folds.is_multiple_of(FOLDS_PER_VACUUM)
                && let Err(error) = sqlx::query("VACUUM sla_report_count_changes")
                    .execute(&self.pool)
                    .await
            {
                tracing::debug!(%error, "could not vacuum sla_report_count_changes");
            }
            tokio::time::sleep(pause).await;
        }
    }
}

//! The report counts' folder: moves the count changes SLA writers append to
//! `sla_report_count_changes` into `sla_report_counts`, a few times a second
//! ([`store::fold_count_changes`]; docs/adr/0012-sla-report-count-changes.md).
//!
//! Reports read both tables, so how often it folds decides only how many changes a report sums
//! besides the counts, not what it answers. Several folders (one per `helpdesk up`) may run;
//! only one folds at a time, the others skip.

use std::time::Duration;

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
}

impl CountFolder {
    /// A folder over the SLA read model in `pool`.
    pub fn new(pool: PgPool) -> Self {
        CountFolder { pool }
    }

    /// Folds every [`FOLD_EVERY`], and every [`FOLDS_PER_VACUUM`] folds vacuums the changes
    /// table: every change is deleted once folded, so without a vacuum the table would grow by
    /// every change ever written wherever autovacuum is off or behind, and a report reads all
    /// of it.
    pub async fn run(self) {
        let mut folds = 0u32;
        loop {
            let pause = match store::fold_count_changes(&self.pool).await {
                Ok(folded) => {
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

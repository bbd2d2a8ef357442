//! Re-walking the hash chains: the whole store (in key ranges walked side by side), or one
//! aggregate, in batches.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use sqlx::PgPool;

use super::BrokenLink;
use super::anchor::{AnchorCheck, check_latest_anchor};
use super::rows::{BATCH, BatchCursor, Scope, key_ranges, next_batch};
use super::walk::{ChainRow, ChainWalk};

/// Key ranges per connection of a store walk.
const RANGES_PER_CONNECTION: usize = 4;

/// How far a store walk has come.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Events walked so far.
    pub done: u64,
    /// Events in the store when the walk started.
    pub total: u64,
    /// Time since the walk started.
    pub elapsed: Duration,
}

impl Progress {
    /// Walk speed so far.
    pub fn events_per_second(&self) -> f64 {
        self.done as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Share walked so far, 0–100.
    pub fn percent(&self) -> f64 {
        if self.total == 0 {
            100.0
        } else {
            (self.done as f64 * 100.0 / self.total as f64).min(100.0)
        }
    }
}

/// The outcome of verifying the whole store.
#[derive(Debug, Clone)]
pub struct StoreReport {
    /// Events walked.
    pub events: u64,
    /// Aggregates walked.
    pub aggregates: u64,
    /// The first broken link of every broken aggregate, then the anchor's, if it mismatches.
    pub broken: Vec<BrokenLink>,
    /// What the latest anchor said.
    pub anchor: AnchorCheck,
    /// How long the verification took.
    pub elapsed: Duration,
}

impl StoreReport {
    /// True when nothing is broken.
    pub fn is_clean(&self) -> bool {
        self.broken.is_empty()
    }
}

/// The outcome of verifying one aggregate.
#[derive(Debug, Clone)]
pub struct AggregateReport {
    /// Events of the aggregate (0: no such aggregate).
    pub events: u64,
    /// The first broken link, if any.
    pub first_broken: Option<BrokenLink>,
}

/// Walks every aggregate's chain, on up to `connections` connections side by side (each over
/// its own key range; Postgres does the hashing, so this is what scales), reporting progress
/// after each batch; then checks the latest anchor against the chain heads it covers.
pub async fn verify_store(
    pool: &PgPool,
    connections: usize,
    on_progress: impl FnMut(&Progress) + Send,
) -> sqlx::Result<StoreReport> {
    let started = Instant::now();
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await?;
    // More ranges than connections, so that a connection finishing early takes the next one.
    let connections = connections.max(1);
    let scopes = key_ranges(pool, total, connections * RANGES_PER_CONNECTION).await?;
    tracing::debug!(
        events = total,
        ranges = scopes.len(),
        "verifying the hash chains"
    );
    let progress = Mutex::new((0, on_progress));
    let report_progress = |walked: u64| {
        if let Ok(mut guard) = progress.lock() {
            let (done, on_progress) = &mut *guard;
            *done += walked;
            on_progress(&Progress {
                done: *done,
                total: u64::try_from(total).unwrap_or_default(),
                elapsed: started.elapsed(),
            });
        }
    };
    let mut walks = futures::stream::iter(&scopes)
        .map(|scope| walk_range(pool, scope, &report_progress))
        .buffered(connections);
    let mut store = StoreWalk::default();
    while let Some(range) = walks.try_next().await? {
        store.absorb(range);
    }
    let anchor = check_latest_anchor(pool).await?;
    if let AnchorCheck::Mismatch(link) = &anchor {
        store.broken.push(link.clone());
    }
    Ok(StoreReport {
        events: store.events,
        aggregates: store.aggregates,
        broken: store.broken,
        anchor,
        elapsed: started.elapsed(),
    })
}

/// Walks one aggregate's chain. (A deleted tail of this aggregate is only visible to the
/// anchor check of [`verify_store`].)
pub async fn verify_aggregate(
    pool: &PgPool,
    aggregate_type: &str,
    aggregate_id: &str,
) -> sqlx::Result<AggregateReport> {
    let scope = Scope::Aggregate((aggregate_type.to_owned(), aggregate_id.to_owned()));
    let mut walk = walk_range(pool, &scope, &|_| {}).await?;
    Ok(AggregateReport {
        events: walk.events,
        first_broken: walk.broken.pop(),
    })
}

/// Walks every aggregate of `scope`, batch by batch.
async fn walk_range(
    pool: &PgPool,
    scope: &Scope,
    report_progress: &(impl Fn(u64) + Sync),
) -> sqlx::Result<StoreWalk> {
    let mut walk = StoreWalk::default();
    let mut cursor = BatchCursor::start(scope);
    loop {
        let rows = next_batch(pool, &cursor, scope).await?;
        for row in &rows {
            walk.push(row);
        }
        report_progress(rows.len() as u64);
        match rows.last() {
            Some(last) if rows.len() as i64 == BATCH => cursor = BatchCursor::after(last),
            _ => break,
        }
    }
    walk.finish_aggregate();
    Ok(walk)
}

/// Every aggregate's walk in turn, collecting the broken links.
#[derive(Debug, Default)]
struct StoreWalk {
    current: Option<ChainWalk>,
    events: u64,
    aggregates: u64,
    broken: Vec<BrokenLink>,
}

impl StoreWalk {
    fn push(&mut self, row: &ChainRow) {
        if !self.current.as_ref().is_some_and(|walk| walk.is_for(row)) {
            self.finish_aggregate();
            self.current = Some(ChainWalk::starting_at(row));
            self.aggregates += 1;
        }
        if let Some(walk) = self.current.as_mut() {
            walk.push(row);
        }
        self.events += 1;
    }

    fn finish_aggregate(&mut self) {
        if let Some(walk) = self.current.take() {
            let (_, broken) = walk.finish();
            self.broken.extend(broken);
        }
    }

    /// Adds a finished walk over the next key range.
    fn absorb(&mut self, range: StoreWalk) {
        self.events += range.events;
        self.aggregates += range.aggregates;
        self.broken.extend(range.broken);
    }
}

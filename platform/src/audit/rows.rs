//! Reading the store for a walk: batches of rows in key order with their hashes recomputed, and
//! key ranges of about equal size for walking a large store on several connections.

use sqlx::PgPool;

use super::walk::ChainRow;

/// Rows per batch: large enough to amortise the round trip, small enough to stream.
pub(super) const BATCH: i64 = 10_000;
/// Rows sampled to place the boundaries of key ranges.
const SAMPLE_ROWS: f64 = 20_000.0;
/// Below this many events per range, splitting is not worth a connection.
const MIN_EVENTS_PER_RANGE: i64 = 20_000;

/// An aggregate's key, `(aggregate_type, aggregate_id)`.
pub(super) type AggregateKey = (String, String);

/// Which rows a walk reads.
#[derive(Debug, Clone)]
pub(super) enum Scope {
    /// The aggregates from `from` (inclusive; the start when `None`) to `to` (exclusive; the end
    /// when `None`), in the database's key order.
    Range {
        from: Option<AggregateKey>,
        to: Option<AggregateKey>,
    },
    /// One aggregate.
    Aggregate(AggregateKey),
}

/// Where the next batch starts: strictly after this key, chaining its first row onto `hash`
/// when that row continues the same aggregate.
#[derive(Debug)]
pub(super) struct BatchCursor {
    aggregate_type: String,
    aggregate_id: String,
    /// -1 before an aggregate's first row: below every stored sequence (they are ≥ 0).
    sequence: i64,
    hash: Option<Vec<u8>>,
}

impl BatchCursor {
    /// Just before the first row of `scope`.
    pub fn start(scope: &Scope) -> Self {
        let key = match scope {
            Scope::Range { from, .. } => from.clone().unwrap_or_default(),
            Scope::Aggregate(key) => key.clone(),
        };
        BatchCursor {
            aggregate_type: key.0,
            aggregate_id: key.1,
            sequence: -1,
            hash: None,
        }
    }

    /// Just after `row`.
    pub fn after(row: &ChainRow) -> Self {
        BatchCursor {
            aggregate_type: row.aggregate_type.clone(),
            aggregate_id: row.aggregate_id.clone(),
            sequence: row.sequence,
            hash: Some(row.hash.clone()),
        }
    }
}

/// Splits the store into at most `ranges` scopes holding about equal numbers of events (by a
/// repeatable sample), each starting at an aggregate's first key, so that no aggregate is
/// split. Boundaries are ordered by the database, which also orders the walks.
pub(super) async fn key_ranges(
    pool: &PgPool,
    events: i64,
    ranges: usize,
) -> sqlx::Result<Vec<Scope>> {
    let ranges = ranges.min(usize::try_from(events / MIN_EVENTS_PER_RANGE).unwrap_or(1));
    if ranges <= 1 {
        return Ok(vec![Scope::Range {
            from: None,
            to: None,
        }]);
    }
    let percent = (SAMPLE_ROWS * 100.0 / events as f64).min(100.0) as f32;
    let sample: Vec<AggregateKey> = sqlx::query_as(
        "SELECT aggregate_type, aggregate_id FROM events TABLESAMPLE SYSTEM ($1) REPEATABLE (0) \
          ORDER BY aggregate_type, aggregate_id",
    )
    .bind(percent)
    .fetch_all(pool)
    .await?;
    let count = sample.len();
    // Aggregates spanning several sampled pages repeat; a boundary is any sampled key.
    let mut bounds: Vec<AggregateKey> = (1..ranges)
        .filter_map(|i| sample.get(i * count / ranges).cloned())
        .collect();
    bounds.dedup();
    let mut scopes = Vec::with_capacity(bounds.len() + 1);
    let mut from = None;
    for bound in bounds {
        scopes.push(Scope::Range {
            from: from.take(),
            to: Some(bound.clone()),
        });
        from = Some(bound);
    }
    scopes.push(Scope::Range { from, to: None });
    Ok(scopes)
}

/// The next batch of `scope` in (aggregate_type, aggregate_id, sequence) order, each row with
/// its hash recomputed by `event_chain_hash` (the trigger's definition) from its stored fields
/// and the stored hash of the row before it (the genesis for sequence 1). A row whose
/// predecessor lies in the previous batch chains onto the cursor's hash; a row that starts an
/// aggregate at a sequence above 1 gets a meaningless recomputation, but the walk reports the
/// missing sequences first.
pub(super) async fn next_batch(
    pool: &PgPool,
    after: &BatchCursor,
    scope: &Scope,
) -> sqlx::Result<Vec<ChainRow>> {
    let (filter, bound) = match scope {
        Scope::Range { to: None, .. } => ("", None),
        Scope::Range { to: Some(to), .. } => {
            ("AND (aggregate_type, aggregate_id) < ($6, $7)", Some(to))
        }
        Scope::Aggregate(key) => ("AND aggregate_type = $6 AND aggregate_id = $7", Some(key)),
    };
    let sql = format!(
        "SELECT aggregate_type, aggregate_id, sequence, hash, \
                event_chain_hash( \
                    CASE WHEN sequence = 1 THEN event_chain_genesis() \
                         ELSE coalesce(lag(hash) OVER chain, $4) END, \
                    aggregate_type, aggregate_id, sequence, event_type, event_version, \
                    payload, metadata) AS recomputed \
           FROM (SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, \
                        payload, metadata, hash \
                   FROM events \
                  WHERE (aggregate_type, aggregate_id, sequence) > ($1, $2, $3) {filter} \
                  ORDER BY aggregate_type, aggregate_id, sequence \
                  LIMIT $5) AS batch \
         WINDOW chain AS (PARTITION BY aggregate_type, aggregate_id ORDER BY sequence) \
         ORDER BY aggregate_type, aggregate_id, sequence"
    );
    let mut query = sqlx::query_as(&sql)
        .bind(&after.aggregate_type)
        .bind(&after.aggregate_id)
        .bind(after.sequence)
        .bind(&after.hash)
        .bind(BATCH);
    if let Some((aggregate_type, aggregate_id)) = bound {
        query = query.bind(aggregate_type).bind(aggregate_id);
    }
    query.fetch_all(pool).await
}

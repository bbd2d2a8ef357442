//! Projections: read models fed from the event stream.
//!
//! - [`Projection`]: a name and a sequence-aware `apply(envelope)` that tells transient failures
//!   (retry) from permanent ones (dead-letter) and events that arrived ahead of a gap (wait);
//! - [`runtime`]: one durable JetStream pull consumer per projection, explicit acks, retries
//!   with growing delays, dead letters after `max_deliver` failures;
//! - [`dead_letters`]: list and redrive what the runtime gave up on;
//! - [`rebuild`]: reset a read model and replay it from the event store;
//! - [`ticket_summary`]: the first read model, a Postgres table of one row per ticket.

pub mod dead_letters;
pub mod rebuild;
pub mod runtime;
pub mod sla;
pub mod ticket_summary;

use async_trait::async_trait;
use helpdesk_schemas::EventEnvelope;

/// What applying an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The read model changed.
    Applied,
    /// Already applied before (a redelivery or a replay): nothing changed.
    Duplicate,
}

/// Why an event was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProjectionError {
    /// The read model has not seen the aggregate's previous event yet: try again later.
    #[error("event {got} arrived before event {expected} of its aggregate")]
    Gap { expected: i64, got: i64 },
    /// The read model's store cannot be reached (connection refused, pool exhausted): retry
    /// with backoff for as long as it takes; never dead-lettered, because every event would
    /// fail the same way.
    #[error("read model unavailable: {0}")]
    Unavailable(String),
    /// Might work next time: retry with backoff, then dead-letter.
    #[error("transient failure: {0}")]
    Transient(String),
    /// Will never work (an event this projection cannot read): dead-letter at once.
    #[error("permanent failure: {0}")]
    Permanent(String),
}

impl From<sqlx::Error> for ProjectionError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => ProjectionError::Unavailable(error.to_string()),
            other => ProjectionError::Transient(other.to_string()),
        }
    }
}

/// The outcomes of a submitted batch, per event, once they are durable.
pub type Settling = std::pin::Pin<
    Box<dyn std::future::Future<Output = Vec<Result<Applied, ProjectionError>>> + Send>,
>;

/// Records that projection `name` has applied every event up to `position` it was given, in
/// the `projection_checkpoint` table (never moving backwards). What
/// [`Projection::save_checkpoint`] does for read models kept in Postgres or beside it.
pub async fn save_checkpoint(
    pool: &sqlx::PgPool,
    name: &str,
    position: i64,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "INSERT INTO projection_checkpoint (name, last_position) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE \
            SET last_position = GREATEST(projection_checkpoint.last_position, $2), \
                updated_at = now()",
    )
    .bind(name)
    .bind(position)
    .execute(pool)
    .await?;
    Ok(())
}

/// Empties the Postgres read model `tables` (a comma-separated list for `TRUNCATE`, from our
/// own code, never from input) and forgets projection `name`'s checkpoint, in one
/// transaction: what [`Projection::reset`] does for read models kept in Postgres.
pub async fn reset_tables(
    pool: &sqlx::PgPool,
    name: &str,
    tables: &'static str,
) -> Result<(), ProjectionError> {
    let mut tx = pool.begin().await?;
    sqlx::query(&format!("TRUNCATE {tables}"))
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM projection_checkpoint WHERE name = $1")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// A read model fed by events.
#[async_trait]
pub trait Projection: Send + Sync + 'static {
    /// Stable name: the durable consumer's name and the dead-letter subject's last token.
    fn name(&self) -> &str;

    /// Applies one event. Must be idempotent and order-safe per aggregate: a duplicate returns
    /// `Ok(Applied::Duplicate)`, an event ahead of a gap `Err(Gap)`. Returns only once the
    /// effect is durable.
    async fn apply(&self, envelope: &EventEnvelope) -> Result<Applied, ProjectionError>;

    /// Applies several events, in order, answering for each. The runtime hands over whatever
    /// one lane has waiting, so a projection that commits in batches (a search index) can
    /// make one commit of many events. By default, one [`Projection::apply`] after another.
    async fn apply_batch(
        &self,
        envelopes: &[EventEnvelope],
    ) -> Vec<Result<Applied, ProjectionError>> {
        let mut outcomes = Vec::with_capacity(envelopes.len());
        for envelope in envelopes {
            outcomes.push(self.apply(envelope).await);
        }
        outcomes
    }

    /// Hands a batch over and returns what resolves to its outcomes once they are durable.
    /// A projection that commits in batches returns as soon as the events are staged, so the
    /// runtime can hand over the next batch while this one waits for its commit (events of
    /// one aggregate still arrive in order). By default the batch is applied at once.
    async fn submit_batch(&self, envelopes: &[EventEnvelope]) -> Settling {
        let outcomes = self.apply_batch(envelopes).await;
        Box::pin(std::future::ready(outcomes))
    }

    /// Empties the read model (before a rebuild).
    async fn reset(&self) -> Result<(), ProjectionError>;

    /// Records that every event up to global position `position` the runtime delivered has
    /// been applied (for operators and lag; never moves backwards). The runtime calls it
    /// periodically rather than per event, so parallel lanes do not queue on one row.
    async fn save_checkpoint(&self, position: i64) -> Result<(), ProjectionError>;
}

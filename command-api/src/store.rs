//! The ticket event store's repository: postgres-es reads the events, and the append is one
//! statement of ours that also returns the new events' global position (ADR 0011).
//!
//! postgres-es appends with `BEGIN`, one `INSERT` per event and `COMMIT`, and a command then
//! had to read its event's position back: four round trips, each followed by the pool's test of
//! the returned connection. [`TicketRepository::persist`] writes the same rows with one
//! `INSERT … SELECT FROM unnest(…)` in autocommit. The primary key is still the optimistic
//! lock (SQLSTATE 23505 is cqrs-es's `OptimisticLockError`, as with postgres-es), the audit
//! trigger still chains each row to the one before it (a row-level trigger sees the rows the
//! same statement inserted before), and [`appending`] hands the position to the caller.
//!
//! Inside [`on_one_connection`] a command's reads and its append go through one pooled
//! connection (sqlx tests every connection returned to the pool with a round trip, so each
//! acquisition costs one), and the ticket's events are read by [`TicketRepository::get_events`]
//! with the query postgres-es uses.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::ops::{Deref, DerefMut};

use cqrs_es::Aggregate;
use cqrs_es::persist::{
    PersistedEventRepository, PersistenceError, ReplayStream, SerializedEvent, SerializedSnapshot,
};
use postgres_es::PostgresEventRepository;
use serde_json::Value;
use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres, Row};

tokio::task_local! {
    /// The global position of the last event appended inside [`appending`].
    static APPENDED: Cell<Option<i64>>;
    /// The connection the repository's calls share inside [`on_one_connection`], while no
    /// call is using it.
    static SHARED: RefCell<Option<PoolConnection<Postgres>>>;
}

/// Runs `work` (a command: its loads and its commit) with every call of a
/// [`TicketRepository`] on one connection, taken from the pool at the first call and returned
/// when `work` ends.
pub async fn on_one_connection<F: Future>(work: F) -> F::Output {
    SHARED.scope(RefCell::new(None), work).await
}

/// Runs `append` (a `commit` of a store over [`TicketRepository`]) and returns its output with
/// the global position of the last event it wrote (`None` when it wrote none).
pub async fn appending<F: Future>(append: F) -> (F::Output, Option<i64>) {
    APPENDED
        .scope(Cell::new(None), async move {
            let output = append.await;
            (output, APPENDED.with(Cell::get))
        })
        .await
}

/// Inside [`on_one_connection`], returns the shared connection to the pool now (before the
/// command takes another connection for something else, so that it never holds two).
pub fn release_connection() {
    let _ = SHARED.try_with(|shared| shared.borrow_mut().take());
}

/// Events appended in one statement; everything else as postgres-es does it.
pub struct TicketRepository {
    reads: PostgresEventRepository,
    pool: PgPool,
}

impl TicketRepository {
    /// A repository over `pool`.
    pub fn new(pool: PgPool) -> Self {
        TicketRepository {
            reads: PostgresEventRepository::new(pool.clone()),
            pool,
        }
    }

    /// The shared connection inside [`on_one_connection`] (taken from the pool if this is the
    /// first call there), otherwise one from the pool.
    async fn connection(&self) -> Result<Connection, sqlx::Error> {
        let shared = SHARED
            .try_with(|shared| shared.borrow_mut().take())
            .ok()
            .flatten();
        let connection = match shared {
            Some(connection) => connection,
            None => self.pool.acquire().await?,
        };
        Ok(Connection(Some(connection)))
    }
}

/// A connection in use by one call; inside [`on_one_connection`] it goes back to be shared
/// when the call is done, elsewhere back to the pool.
struct Connection(Option<PoolConnection<Postgres>>);

impl Deref for Connection {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        self.0
            .as_deref()
            .unwrap_or_else(|| unreachable!("taken only on drop"))
    }
}

impl DerefMut for Connection {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.0
            .as_deref_mut()
            .unwrap_or_else(|| unreachable!("taken only on drop"))
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(connection) = self.0.take() {
            // Outside the scope the closure is dropped with the connection: back to the pool.
            let _ = SHARED.try_with(move |shared| *shared.borrow_mut() = Some(connection));
        }
    }
}

/// A ticket's events, oldest first (postgres-es's query).
const EVENTS: &str = "SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, \
        payload, metadata \
     FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence";

/// The append: the columns postgres-es writes, in the events' order (the audit trigger chains
/// each row to the previous one), returning the last position.
const APPEND: &str = "WITH appended AS ( \
        INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
                            payload, metadata) \
        SELECT $1, $2, e.sequence, e.event_type, e.event_version, e.payload::json, \
               e.metadata::json \
          FROM unnest($3::int8[], $4::text[], $5::text[], $6::text[], $7::text[]) \
               WITH ORDINALITY AS e(sequence, event_type, event_version, payload, metadata, ord) \
         ORDER BY e.ord \
        RETURNING global_position) \
     SELECT max(global_position) FROM appended";

impl PersistedEventRepository for TicketRepository {
    async fn get_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        let mut connection = self.connection().await.map_err(persistence_error)?;
        let rows = sqlx::query(EVENTS)
            .bind(A::TYPE)
            .bind(aggregate_id)
            .fetch_all(&mut *connection)
            .await
            .map_err(persistence_error)?;
        rows.iter().map(serialized_event).collect()
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        self.reads
            .get_last_events::<A>(aggregate_id, last_sequence)
            .await
    }

    async fn get_snapshot<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        self.reads.get_snapshot::<A>(aggregate_id).await
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        // Tickets keep no snapshots; a store that did would go through postgres-es.
        if snapshot_update.is_some() {
            return self.reads.persist::<A>(events, snapshot_update).await;
        }
        let Some(first) = events.first() else {
            return Ok(());
        };
        let mut columns = Columns::default();
        for event in events {
            columns.push(event)?;
        }
        let mut connection = self.connection().await.map_err(persistence_error)?;
        let position: Option<i64> = sqlx::query_scalar(APPEND)
            .bind(A::TYPE)
            .bind(&first.aggregate_id)
            .bind(columns.sequence)
            .bind(columns.event_type)
            .bind(columns.event_version)
            .bind(columns.payload)
            .bind(columns.metadata)
            .fetch_one(&mut *connection)
            .await
            .map_err(persistence_error)?;
        // Outside `appending` nobody asked for the position.
        let _ = APPENDED.try_with(|appended| appended.set(position));
        Ok(())
    }

    async fn stream_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<ReplayStream, PersistenceError> {
        self.reads.stream_events::<A>(aggregate_id).await
    }

    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        self.reads.stream_all_events::<A>().await
    }
}

/// The events as column arrays.
#[derive(Default)]
struct Columns {
    sequence: Vec<i64>,
    event_type: Vec<String>,
    event_version: Vec<String>,
    payload: Vec<String>,
    metadata: Vec<String>,
}

impl Columns {
    fn push(&mut self, event: &SerializedEvent) -> Result<(), PersistenceError> {
        let sequence = i64::try_from(event.sequence)
            .map_err(|_| PersistenceError::UnknownError("sequence out of range".into()))?;
        self.sequence.push(sequence);
        self.event_type.push(event.event_type.clone());
        self.event_version.push(event.event_version.clone());
        self.payload.push(serde_json::to_string(&event.payload)?);
        self.metadata.push(serde_json::to_string(&event.metadata)?);
        Ok(())
    }
}

/// One row of [`EVENTS`] as cqrs-es reads it.
fn serialized_event(row: &sqlx::postgres::PgRow) -> Result<SerializedEvent, PersistenceError> {
    let read = |error: sqlx::Error| PersistenceError::UnknownError(error.into());
    let sequence: i64 = row.try_get("sequence").map_err(read)?;
    Ok(SerializedEvent::new(
        row.try_get("aggregate_id").map_err(read)?,
        usize::try_from(sequence)
            .map_err(|_| PersistenceError::UnknownError("negative sequence".into()))?,
        row.try_get("aggregate_type").map_err(read)?,
        row.try_get("event_type").map_err(read)?,
        row.try_get("event_version").map_err(read)?,
        row.try_get("payload").map_err(read)?,
        row.try_get("metadata").map_err(read)?,
    ))
}

/// The same classification as postgres-es: a duplicate key is the optimistic lock, a broken
/// connection a connection error, anything else unknown (a pool timeout among them, which the
/// API answers `503 database-unavailable`).
fn persistence_error(error: sqlx::Error) -> PersistenceError {
    match &error {
        sqlx::Error::Database(database) if database.code().as_deref() == Some("23505") => {
            PersistenceError::OptimisticLockError
        }
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) => PersistenceError::ConnectionError(error.into()),
        _ => PersistenceError::UnknownError(error.into()),
    }
}

//! Rebuilding the SLA read model from the event store without deciding anything again.
//!
//! The live projection *decides* SLA events from ticket events (with the policies in force at
//! that moment) and stores them. A rebuild must not decide again: policies may have changed
//! since, and the stored events are the record. So per ticket it folds the ticket's events with
//! [`TicketSla::observe`](helpdesk_domain::sla::TicketSla::observe) and applies its stored
//! `TicketSla` events with `apply`, each right after the ticket event it was decided at (the
//! `ticket_sequence` in its metadata; global positions would not do, because the next ticket
//! event may commit before the projection appended the previous one's SLA events). Rows and
//! counts go through the same `TicketRows::record` as the live path, so they come out equal;
//! the quarter counts, which the live path adds per outcome, are summed from the month rows
//! once at the end (a quarter's count is the sum of its months' either way), which spares the
//! rebuild a third of its count writes.
//!
//! **Only what was decided is replayed.** A ticket is replayed up to its *frontier*: the last
//! ticket sequence the old `sla_state` had applied, or, for a ticket without a state row, the
//! highest `ticket_sequence` its stored SLA events name. Later ticket events are still waiting
//! in the projection's consumer, which decides them after the rebuild. (If `sla_state` itself
//! was lost while the consumer had acknowledged events, those events are gone from the
//! consumer: reset the consumer, see docs/architecture.md.)
//!
//! **One transaction.** The rebuild locks out the SLA writers and the count folders (their
//! advisory lock, see `store::lock_tickets`) and the three tables and the count changes against
//! any other writer (`EXCLUSIVE`), deletes the count changes (the rebuilt counts hold them),
//! fills bare copies of the three, indexes the copies, puts them in place of the tables and
//! commits (`super::shadow`): reports keep reading the old rows until the new ones are
//! complete, and the projection, the breach watchers and the folders wait rather than
//! interleave.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use helpdesk_domain::sla::SlaEvent;
use helpdesk_domain::ticket::{TicketEvent, upcast};
use sqlx::{PgPool, Postgres, Transaction};

use super::model::{Dims, Tally, TicketRows};
use super::shadow::Shadow;
use super::store::{self, AGGREGATE_TYPE, MetricColumns, TicketState};
use crate::ProjectionError;

/// Tickets replayed per round trip.
const CHUNK: i64 = 500;

/// Report-count changes kept in memory before they are written. Every chunk counts into the
/// same days, months and keys, so adding them up across chunks writes each count row about
/// once instead of once per chunk (the bound keeps a large store's tally at tens of MB).
const TALLY_KEYS: usize = 100_000;

/// Where a rebuild stands.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Tickets replayed so far.
    pub done: u64,
    /// Tickets to replay.
    pub total: u64,
    /// Time since the start.
    pub elapsed: Duration,
}

/// What a rebuild replayed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rebuilt {
    /// Tickets with SLA state.
    pub tickets: u64,
    /// Ticket events observed.
    pub ticket_events: u64,
    /// Stored SLA events applied.
    pub sla_events: u64,
}

/// One stored event, as the rebuild reads it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredEvent {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    /// The payload as stored (tagged with the event name), unparsed: it is parsed once,
    /// straight into the typed event.
    pub payload: String,
    /// An SLA event's `ticket_sequence` metadata (`None` for ticket events, and for an SLA
    /// event stored without it, which the replay refuses).
    pub ticket_sequence: Option<String>,
    pub recorded_at: DateTime<Utc>,
    pub event_id: String,
}

/// Replaces the SLA read model with one replayed from the stored ticket and SLA events;
/// `report` is called after every chunk of tickets.
pub async fn rebuild(
    pool: &PgPool,
    report: impl FnMut(Progress),
) -> Result<Rebuilt, ProjectionError> {
    rebuild_in_chunks(pool, CHUNK, report).await
}

/// [`rebuild`], `tickets` per chunk (tests use small chunks).
///
/// Three things run at once: the next chunk's events are read on a second connection, the
/// current chunk is replayed on a blocking thread, and the previous one is written in the
/// rebuild's transaction. Reading outside that transaction sees what it would see: every
/// statement of a read-committed transaction reads the latest committed rows, and the
/// frontiers, read inside it, bound the ticket events.
pub async fn rebuild_in_chunks(
    pool: &PgPool,
    tickets: i64,
    mut report: impl FnMut(Progress),
) -> Result<Rebuilt, ProjectionError> {
    let started = Instant::now();
    let mut tx = pool.begin().await?;
    let (total, shadow) = prepare(&mut tx).await?;
    let mut rebuilt = Rebuilt::default();
    // Passed to each chunk's replay and back, so counts go straight into it.
    let mut tally = Tally::without_quarters();
    let mut chunk = next_chunk(&mut tx, "", tickets).await?;
    let mut reading = chunk.as_ref().map(|chunk| read_ahead(pool, chunk));
    let mut unwritten: Option<Batch> = None;
    while let (Some(current), Some(read)) = (chunk, reading.take()) {
        let after = current.last().map(|(id, _)| id.clone()).unwrap_or_default();
        chunk = next_chunk(&mut tx, &after, tickets).await?;
        reading = chunk.as_ref().map(|chunk| read_ahead(pool, chunk));
        let events = read
            .await
            .map_err(|error| ProjectionError::Unavailable(error.to_string()))??;
        let replaying = tokio::task::spawn_blocking(move || replay_chunk(&events, tally));
        if let Some(batch) = unwritten.take() {
            write_batch(&mut tx, &batch).await?;
        }
        let mut batch = replaying
            .await
            .map_err(|error| ProjectionError::Unavailable(error.to_string()))??;
        rebuilt.tickets += batch.rebuilt.tickets;
        rebuilt.ticket_events += batch.rebuilt.ticket_events;
        rebuilt.sla_events += batch.rebuilt.sla_events;
        tally = std::mem::replace(&mut batch.tally, Tally::without_quarters());
        unwritten = Some(batch);
        if tally.len() >= TALLY_KEYS {
            write_counts(&mut tx, &mut tally).await?;
        }
        report(Progress {
            done: rebuilt.tickets,
            total,
            elapsed: started.elapsed(),
        });
    }
    if let Some(batch) = unwritten {
        write_batch(&mut tx, &batch).await?;
    }
    write_counts(&mut tx, &mut tally).await?;
    // A third of the count rows, summed once from the month rows instead of upserted per chunk.
    store::sum_quarters_from_months(&mut tx).await?;
    shadow.swap(&mut tx).await?;
    tx.commit().await?;
    Ok(rebuilt)
}

/// The `tickets` tickets after `after` (in id order) and their frontiers; `None` past the last.
async fn next_chunk(
    tx: &mut Transaction<'_, Postgres>,
    after: &str,
    tickets: i64,
) -> Result<Option<Vec<(String, i64)>>, ProjectionError> {
    let chunk: Vec<(String, i64)> = sqlx::query_as(
        "SELECT ticket_id, frontier FROM sla_rebuild_frontier WHERE ticket_id > $1 \
          ORDER BY ticket_id LIMIT $2",
    )
    .bind(after)
    .bind(tickets)
    .fetch_all(&mut **tx)
    .await?;
    Ok((!chunk.is_empty()).then_some(chunk))
}

type Reading = tokio::task::JoinHandle<Result<Vec<StoredEvent>, ProjectionError>>;

/// Starts reading the events of `chunk` on a connection of its own.
fn read_ahead(pool: &PgPool, chunk: &[(String, i64)]) -> Reading {
    let pool = pool.clone();
    let (ids, frontiers): (Vec<String>, Vec<i64>) = chunk.iter().cloned().unzip();
    tokio::spawn(async move {
        Ok(sqlx::query_as(
            "SELECT e.aggregate_type, e.aggregate_id, e.sequence, e.event_type, e.event_version, \
                    e.payload::text AS payload, e.recorded_at, e.event_id::text AS event_id, \
                    CASE WHEN e.aggregate_type = $3 \
                         THEN e.metadata ->> 'ticket_sequence' END AS ticket_sequence \
               FROM unnest($1::text[], $2::bigint[]) AS f(ticket_id, frontier) \
               JOIN events e ON e.aggregate_id = f.ticket_id \
                            AND e.aggregate_type IN ('Ticket', $3) \
              WHERE e.aggregate_type = $3 OR e.sequence <= f.frontier \
              ORDER BY e.aggregate_id, e.aggregate_type, e.sequence",
        )
        .bind(&ids)
        .bind(&frontiers)
        .bind(AGGREGATE_TYPE)
        .fetch_all(&pool)
        .await?)
    })
}

/// The tables a rebuild replaces.
const TABLES: [&str; 3] = ["sla_state", "sla_metric", "sla_report_counts"];

/// Locks out writers, records every ticket's frontier, creates the empty copies the rebuild
/// fills; returns the number of tickets to replay and the copies.
async fn prepare(tx: &mut Transaction<'_, Postgres>) -> Result<(u64, Shadow), ProjectionError> {
    // The projection and the watchers read a ticket's state under advisory locks, which no
    // table lock excludes: the writers' lock waits for those that started and holds off the
    // rest, before the tables are locked (the same order as theirs: no deadlock).
    store::lock_out_writers(tx).await?;
    sqlx::query(
        "LOCK TABLE sla_state, sla_metric, sla_report_counts, sla_report_count_changes \
         IN EXCLUSIVE MODE",
    )
    .execute(&mut **tx)
    .await?;
    // The rebuilt counts hold every change written so far (the writers and folders are locked
    // out). Deleted rather than truncated: reports go on reading the old counts and changes
    // until the rebuild commits.
    sqlx::query("DELETE FROM sla_report_count_changes")
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "CREATE TEMP TABLE sla_rebuild_frontier ON COMMIT DROP AS \
         SELECT ticket_id, max(frontier) AS frontier FROM ( \
             SELECT ticket_id, last_sequence AS frontier FROM sla_state \
             UNION ALL \
             SELECT aggregate_id, (metadata ->> 'ticket_sequence')::bigint \
               FROM events WHERE aggregate_type = 'TicketSla') f \
          GROUP BY ticket_id",
    )
    .execute(&mut **tx)
    .await?;
    sqlx::query("ALTER TABLE sla_rebuild_frontier ADD PRIMARY KEY (ticket_id)")
        .execute(&mut **tx)
        .await?;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM sla_rebuild_frontier")
        .fetch_one(&mut **tx)
        .await?;
    // The counts are upserted (a tally is written whenever it has grown large), which needs
    // their primary key; states and metric rows are only inserted, into bare tables.
    let shadow = Shadow::create(tx, &TABLES, &["sla_report_counts"]).await?;
    Ok((u64::try_from(total).unwrap_or_default(), shadow))
}

/// Writes the day and month counts of `tally` and empties it (quarters are summed at the end).
async fn write_counts(
    tx: &mut Transaction<'_, Postgres>,
    tally: &mut Tally,
) -> Result<(), ProjectionError> {
    let written = std::mem::replace(tally, Tally::without_quarters());
    store::apply_tally(tx, &written).await
}

/// A chunk of tickets, replayed and not yet written.
#[derive(Debug)]
struct Batch {
    states: Vec<TicketState>,
    rows: MetricColumns,
    /// The rebuild's tally, with this chunk's counts added.
    tally: Tally,
    rebuilt: Rebuilt,
}

/// Replays a chunk of tickets (their events in ticket, type, sequence order), adding their
/// counts to `tally`.
fn replay_chunk(events: &[StoredEvent], tally: Tally) -> Result<Batch, ProjectionError> {
    let mut batch = Batch {
        states: Vec::new(),
        rows: MetricColumns::default(),
        tally,
        rebuilt: Rebuilt::default(),
    };
    for ticket in events.chunk_by(|a, b| a.aggregate_id == b.aggregate_id) {
        let split = ticket.partition_point(|event| event.aggregate_type == "Ticket");
        let (ticket_events, sla_events) = ticket.split_at(split);
        let replayed = replay(ticket_events, sla_events, &mut batch.tally)?;
        batch.rebuilt.tickets += 1;
        batch.rebuilt.ticket_events += ticket_events.len() as u64;
        batch.rebuilt.sla_events += sla_events.len() as u64;
        for row in replayed.rows.all() {
            batch.rows.push(row)?;
        }
        batch.states.push(replayed.state);
    }
    Ok(batch)
}

/// Writes the state and rows of a replayed chunk (its counts are in the rebuild's tally).
async fn write_batch(
    tx: &mut Transaction<'_, Postgres>,
    batch: &Batch,
) -> Result<(), ProjectionError> {
    store::insert_states(tx, &batch.states).await?;
    store::insert_rows(tx, &batch.rows).await
}

/// One ticket, replayed.
#[derive(Debug)]
pub struct Replayed {
    pub state: TicketState,
    pub rows: TicketRows,
}

/// Replays one ticket: its ticket events (sequence order, up to the frontier) and its stored
/// SLA events (sequence order), each SLA event right after the ticket event it was decided at;
/// its report counts go into `tally`.
pub fn replay(
    ticket_events: &[StoredEvent],
    sla_events: &[StoredEvent],
    tally: &mut Tally,
) -> Result<Replayed, ProjectionError> {
    let Some(first) = ticket_events.first() else {
        let id = sla_events.first().map_or("?", |e| e.aggregate_id.as_str());
        return Err(ProjectionError::Permanent(format!(
            "ticket {id} has SLA events but no ticket events"
        )));
    };
    let ticket_id = first.aggregate_id.as_str();
    let opening = ticket_event(first)?;
    let TicketEvent::TicketOpened(opened) = &opening else {
        return Err(ProjectionError::Permanent(format!(
            "ticket {ticket_id} does not start with TicketOpened"
        )));
    };
    let mut state = TicketState::new(ticket_id, Dims::opened(opened));
    // The first event is parsed once, above.
    let mut opening = Some(opening);
    let mut rows = TicketRows::loaded(ticket_id, Vec::new());
    let mut pending = sla_events.iter().peekable();
    for stored in ticket_events {
        let event = match opening.take() {
            Some(event) => event,
            None => ticket_event(stored)?,
        };
        state.engine.observe(&event, stored.recorded_at);
        state.dims.observe(&event);
        state.last_sequence = stored.sequence;
        let mut decided = Vec::new();
        while let Some(sla) = pending.next_if(|sla| ticket_sequence(sla) <= Some(stored.sequence)) {
            decided.push(sla_event(sla)?);
            state.last_sla_sequence = sla.sequence;
        }
        for event in &decided {
            state.engine.apply(event);
        }
        rows.record(&state.dims, &decided, tally);
        rows.follow(&state.dims);
    }
    state.last_event_id = ticket_events.last().map(|stored| stored.event_id.clone());
    if let Some(left) = pending.next() {
        return Err(ProjectionError::Permanent(format!(
            "SLA event {} of ticket {ticket_id} names ticket sequence {:?}, beyond the ticket \
             events replayed",
            left.sequence,
            ticket_sequence(left)
        )));
    }
    Ok(Replayed { state, rows })
}

/// The ticket sequence an SLA event was decided at, from its metadata.
fn ticket_sequence(event: &StoredEvent) -> Option<i64> {
    event.ticket_sequence.as_deref()?.parse().ok()
}

fn ticket_event(stored: &StoredEvent) -> Result<TicketEvent, ProjectionError> {
    upcast::read(&stored.event_type, &stored.event_version, &stored.payload).map_err(|error| {
        ProjectionError::Permanent(format!(
            "unreadable {} (sequence {}) of ticket {}: {error}",
            stored.event_type, stored.sequence, stored.aggregate_id
        ))
    })
}

fn sla_event(stored: &StoredEvent) -> Result<SlaEvent, ProjectionError> {
    if ticket_sequence(stored).is_none() {
        return Err(ProjectionError::Permanent(format!(
            "SLA event {} of ticket {} has no ticket_sequence in its metadata",
            stored.sequence, stored.aggregate_id
        )));
    }
    serde_json::from_str(&stored.payload).map_err(|error| {
        ProjectionError::Permanent(format!(
            "unreadable {} (sequence {}) of ticket {}: {error}",
            stored.event_type, stored.sequence, stored.aggregate_id
        ))
    })
}

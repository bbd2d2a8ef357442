//! The search projection: folds ticket events (and the tickets' `TicketSla` events, for their
//! SLA state) into search documents and writes them in batches.
//!
//! One batcher task owns the write path. Lanes of the projection runtime hand it their
//! events; it folds each onto the newest known document (its own unwritten one, or the
//! backend's), and writes whatever changed when [`SearchSettings::max_documents`] documents
//! are waiting or [`SearchSettings::commit_interval`] has passed since the first of them,
//! whichever comes first. Only then does it answer the lanes, so the runtime acknowledges an
//! event only after the commit that contains it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use helpdesk_domain::ticket::upcast;
use helpdesk_platform::event_log::{self, Cursor, ReplayEvent};
use helpdesk_projections::sla::store::AGGREGATE_TYPE as TICKET_SLA;
use helpdesk_projections::{Applied, Projection, ProjectionError, Settling};
use helpdesk_schemas::EventEnvelope;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::backend::{BackendError, SearchBackend};
use crate::document::{Change, Folded, TicketDocument};
use crate::sla::SlaChange;

/// The projection's name.
pub const NAME: &str = "search";

/// Commit cadence.
#[derive(Debug, Clone, Copy)]
pub struct SearchSettings {
    /// Write at the latest this long after the first unwritten change (default 200 ms).
    pub commit_interval: Duration,
    /// Write as soon as this many documents changed (default 1,000).
    pub max_documents: usize,
}

impl Default for SearchSettings {
    fn default() -> Self {
        SearchSettings {
            commit_interval: Duration::from_millis(200),
            max_documents: 1000,
        }
    }
}

type Outcomes = Vec<Result<Applied, ProjectionError>>;

/// Most queued jobs folded together.
const MAX_JOBS_PER_FOLD: usize = 256;

enum Job {
    Apply {
        envelopes: Vec<EventEnvelope>,
        reply: oneshot::Sender<Outcomes>,
    },
    /// Runs `work` between two writes, with no write of the live path in between.
    Exclusive {
        work: Box<dyn FnOnce() -> futures_like::BoxFuture + Send>,
    },
}

/// A boxed future without pulling in the `futures` crate.
mod futures_like {
    pub type BoxFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
}

/// The read side of a search projection.
#[derive(Clone)]
pub struct SearchReader {
    /// Where searches run.
    pub backend: Arc<dyn SearchBackend>,
    /// Changes every time the projection wrote a batch (for read-your-writes waits).
    pub commits: watch::Receiver<u64>,
}

impl std::fmt::Debug for SearchReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchReader")
            .field("backend", &self.backend.kind())
            .finish_non_exhaustive()
    }
}

impl SearchReader {
    /// A reader of a backend that another process writes (no commit signal: waits poll).
    pub fn polling(backend: Arc<dyn SearchBackend>) -> Self {
        let (_, commits) = watch::channel(0);
        SearchReader { backend, commits }
    }
}

/// The search projection, feeding one backend.
#[derive(Clone)]
pub struct SearchProjection {
    name: String,
    pool: PgPool,
    backend: Arc<dyn SearchBackend>,
    jobs: mpsc::Sender<Job>,
    commits: watch::Receiver<u64>,
}

impl std::fmt::Debug for SearchProjection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchProjection")
            .field("name", &self.name)
            .field("backend", &self.backend.kind())
            .finish_non_exhaustive()
    }
}

impl SearchProjection {
    /// A projection into `backend`, its checkpoint row kept through `pool`. Spawns the
    /// batcher task on the current runtime.
    pub fn new(pool: PgPool, backend: Arc<dyn SearchBackend>, settings: SearchSettings) -> Self {
        SearchProjection::named(pool, backend, settings, NAME)
    }

    /// The same projection under another name (tests run variants side by side).
    pub fn named(
        pool: PgPool,
        backend: Arc<dyn SearchBackend>,
        settings: SearchSettings,
        name: &str,
    ) -> Self {
        let (jobs, receiver) = mpsc::channel(64);
        let (commit_sender, commits) = watch::channel(0);
        let batcher = Batcher {
            backend: backend.clone(),
            settings,
            commits: commit_sender,
            pending: HashMap::new(),
            dirty: Default::default(),
            waiting: Vec::new(),
            checkpoint: None,
        };
        tokio::spawn(batcher.run(receiver));
        SearchProjection {
            name: name.to_owned(),
            pool,
            backend,
            jobs,
            commits,
        }
    }

    /// The backend the projection writes to (and searches read from).
    pub fn backend(&self) -> Arc<dyn SearchBackend> {
        self.backend.clone()
    }

    /// What the query side needs: the backend, and a signal after every write.
    pub fn reader(&self) -> SearchReader {
        SearchReader {
            backend: self.backend.clone(),
            commits: self.commits.clone(),
        }
    }

    /// Runs `work` while the live path is paused between two writes: the projection's own
    /// unwritten changes are written first, and nothing else is written until `work` ends.
    pub async fn exclusive<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Result<T, BackendError> {
        let (sender, receiver) = oneshot::channel();
        let job = Job::Exclusive {
            work: Box::new(move || {
                Box::pin(async move {
                    let _ = sender.send(work.await);
                })
            }),
        };
        self.jobs
            .send(job)
            .await
            .map_err(|_| BackendError::Unavailable("the search batcher stopped".into()))?;
        receiver
            .await
            .map_err(|_| BackendError::Unavailable("the search batcher stopped".into()))
    }
}

#[async_trait]
impl Projection for SearchProjection {
    fn name(&self) -> &str {
        &self.name
    }

    async fn apply(&self, envelope: &EventEnvelope) -> Result<Applied, ProjectionError> {
        self.apply_batch(std::slice::from_ref(envelope))
            .await
            .pop()
            .unwrap_or_else(|| Err(ProjectionError::Transient("no outcome".into())))
    }

    async fn apply_batch(&self, envelopes: &[EventEnvelope]) -> Outcomes {
        self.submit_batch(envelopes).await.await
    }

    async fn submit_batch(&self, envelopes: &[EventEnvelope]) -> Settling {
        let (reply, outcome) = oneshot::channel();
        let job = Job::Apply {
            envelopes: envelopes.to_vec(),
            reply,
        };
        let count = envelopes.len();
        let stopped = move || -> Outcomes {
            (0..count)
                .map(|_| {
                    Err(ProjectionError::Unavailable(
                        "the search batcher stopped".into(),
                    ))
                })
                .collect()
        };
        if self.jobs.send(job).await.is_err() {
            return Box::pin(std::future::ready(stopped()));
        }
        Box::pin(async move { outcome.await.unwrap_or_else(|_| stopped()) })
    }

    async fn reset(&self) -> Result<(), ProjectionError> {
        self.backend.clear().await.map_err(projection_error)?;
        sqlx::query("DELETE FROM projection_checkpoint WHERE name = $1")
            .bind(&self.name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn save_checkpoint(&self, position: i64) -> Result<(), ProjectionError> {
        helpdesk_projections::save_checkpoint(&self.pool, &self.name, position).await
    }
}

fn projection_error(error: BackendError) -> ProjectionError {
    match error {
        BackendError::Unavailable(reason) => ProjectionError::Unavailable(reason),
        BackendError::Rejected(reason) => ProjectionError::Transient(reason),
    }
}

/// Whether the search document folds events of this aggregate type: the ticket's own, and its
/// SLA events (same aggregate id). Everything else (SLA policies, audit anchors) is skipped.
fn is_folded(aggregate_type: &str) -> bool {
    aggregate_type == "Ticket" || aggregate_type == TICKET_SLA
}

/// One event of a folded aggregate type, typed, with the envelope facts the document needs.
enum Fold {
    Ticket(Change),
    Sla {
        ticket_id: String,
        change: SlaChange,
    },
}

impl Fold {
    /// The event an envelope carries (the live path).
    fn of_envelope(envelope: &EventEnvelope) -> Result<Fold, ProjectionError> {
        if envelope.aggregate_type == TICKET_SLA {
            let event = serde_json::from_value(envelope.payload.clone()).map_err(unreadable_sla)?;
            return Ok(Fold::Sla {
                ticket_id: envelope.aggregate_id.clone(),
                change: SlaChange {
                    sequence: envelope.sequence,
                    event,
                },
            });
        }
        let event = envelope.ticket_event().map_err(unreadable)?;
        Ok(Fold::Ticket(Change {
            ticket_id: envelope.aggregate_id.clone(),
            sequence: envelope.sequence,
            global_position: envelope.global_position,
            recorded_at: envelope.recorded_at,
            event,
        }))
    }

    /// The event a stored row holds (the replay's), its payload parsed once from the stored
    /// text straight into the typed event.
    fn of_stored(stored: ReplayEvent) -> Result<Fold, ProjectionError> {
        if stored.aggregate_type == TICKET_SLA {
            // Stored tagged with its name, as the enum reads it.
            let event = serde_json::from_str(&stored.payload).map_err(unreadable_sla)?;
            return Ok(Fold::Sla {
                ticket_id: stored.aggregate_id,
                change: SlaChange {
                    sequence: stored.sequence,
                    event,
                },
            });
        }
        let event = upcast::read(&stored.event_type, &stored.event_version, &stored.payload)
            .map_err(unreadable)?;
        Ok(Fold::Ticket(Change {
            ticket_id: stored.aggregate_id,
            sequence: stored.sequence,
            global_position: stored.global_position,
            recorded_at: stored.recorded_at,
            event,
        }))
    }
}

fn unreadable(error: serde_json::Error) -> ProjectionError {
    ProjectionError::Permanent(format!("unreadable payload: {error}"))
}

fn unreadable_sla(error: serde_json::Error) -> ProjectionError {
    ProjectionError::Permanent(format!("unreadable SLA event payload: {error}"))
}

/// What folding one event into the documents held did.
struct Folding {
    applied: Applied,
    /// How much the documents held grew, by [`TicketDocument::approximate_bytes`].
    grew: isize,
}

/// Folds `fold` onto its ticket's document in `known`, in place (no copy of the document per
/// event); a changed document's id goes into `changed`.
fn fold_into(
    known: &mut HashMap<String, TicketDocument>,
    changed: &mut HashSet<String>,
    fold: Fold,
) -> Result<Folding, ProjectionError> {
    let mark = |changed: &mut HashSet<String>, id: &str| {
        if !changed.contains(id) {
            changed.insert(id.to_owned());
        }
    };
    let size = |document: &TicketDocument| document.approximate_bytes() as isize;
    let (stopped, grew) = match fold {
        Fold::Ticket(change) => match known.get_mut(&change.ticket_id) {
            Some(document) => {
                let before = size(document);
                let stopped = document.advance(change);
                if stopped.is_none() {
                    mark(changed, &document.id);
                }
                (stopped, size(document) - before)
            }
            None => match TicketDocument::fold(None, change) {
                Folded::Changed(document) => {
                    mark(changed, &document.id);
                    let grew = size(&document);
                    known.insert(document.id.clone(), *document);
                    (None, grew)
                }
                other => (Some(other), 0),
            },
        },
        Fold::Sla { ticket_id, change } => match known.get_mut(&ticket_id) {
            Some(document) => {
                let stopped = document.advance_sla(change);
                if stopped.is_none() {
                    mark(changed, &document.id);
                }
                (stopped, 0)
            }
            None => (Some(Folded::TicketNotIndexed), 0),
        },
    };
    let applied = match stopped {
        None | Some(Folded::Changed(_)) => Applied::Applied,
        Some(Folded::Duplicate) => Applied::Duplicate,
        Some(Folded::Gap { expected, got }) => return Err(ProjectionError::Gap { expected, got }),
        // Waits, like a gap, for the ticket's first event (1); `got: 0` marks the waiting
        // event as one of another aggregate (the ticket's SLA events).
        Some(Folded::TicketNotIndexed) => {
            return Err(ProjectionError::Gap {
                expected: 1,
                got: 0,
            });
        }
    };
    Ok(Folding { applied, grew })
}

/// Reads the documents of `ids` that `known` does not hold from `backend` into it; returns
/// what they take, by [`TicketDocument::approximate_bytes`].
async fn load_missing<'a>(
    backend: &dyn SearchBackend,
    known: &mut HashMap<String, TicketDocument>,
    ids: impl Iterator<Item = &'a str>,
) -> Result<usize, ProjectionError> {
    let missing: Vec<String> = ids
        .filter(|id| !known.contains_key(*id))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(str::to_owned)
        .collect();
    if missing.is_empty() {
        return Ok(0);
    }
    let found = backend.get(&missing).await.map_err(projection_error)?;
    let bytes = found.values().map(TicketDocument::approximate_bytes).sum();
    known.extend(found);
    Ok(bytes)
}

/// Folds a batch of events onto the documents in `known` (filled from `backend` for ids it
/// does not hold), returning the outcome per event. Changed documents stay in `known`, and
/// their ids are added to `changed`.
async fn fold_batch(
    backend: &dyn SearchBackend,
    known: &mut HashMap<String, TicketDocument>,
    changed: &mut HashSet<String>,
    envelopes: &[EventEnvelope],
) -> Outcomes {
    let folded = envelopes
        .iter()
        .filter(|e| is_folded(&e.aggregate_type))
        .map(|e| e.aggregate_id.as_str());
    if let Err(error) = load_missing(backend, known, folded).await {
        return envelopes.iter().map(|_| Err(error.clone())).collect();
    }
    envelopes
        .iter()
        .map(|envelope| {
            if !is_folded(&envelope.aggregate_type) {
                return Ok(Applied::Duplicate);
            }
            let folding = fold_into(known, changed, Fold::of_envelope(envelope)?)?;
            Ok(folding.applied)
        })
        .collect()
}

struct Batcher {
    backend: Arc<dyn SearchBackend>,
    settings: SearchSettings,
    commits: watch::Sender<u64>,
    /// Documents folded since the last write (and only those: the backend has the rest).
    pending: HashMap<String, TicketDocument>,
    /// The ids of the pending documents.
    dirty: HashSet<String>,
    /// Answers to send once the pending documents are written.
    waiting: Vec<(oneshot::Sender<Outcomes>, Outcomes)>,
    /// The highest global position among pending changes.
    checkpoint: Option<i64>,
}

impl Batcher {
    async fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        let mut deadline: Option<Instant> = None;
        loop {
            let job = match deadline {
                Some(at) => tokio::select! {
                    job = jobs.recv() => job,
                    () = tokio::time::sleep_until(at) => {
                        self.flush().await;
                        deadline = None;
                        continue;
                    }
                },
                None => jobs.recv().await,
            };
            let Some(job) = job else {
                self.flush().await;
                return;
            };
            let mut later = None;
            match job {
                Job::Apply { envelopes, reply } => {
                    // Everything else already queued folds along, with one backend read.
                    let mut applies = vec![(envelopes, reply)];
                    while applies.len() < MAX_JOBS_PER_FOLD {
                        match jobs.try_recv() {
                            Ok(Job::Apply { envelopes, reply }) => applies.push((envelopes, reply)),
                            Ok(exclusive) => {
                                later = Some(exclusive);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.fold(applies).await;
                    if deadline.is_none() {
                        deadline = Some(Instant::now() + self.settings.commit_interval);
                    }
                    if self.pending.len() >= self.settings.max_documents {
                        self.flush().await;
                        deadline = None;
                    }
                }
                exclusive => later = Some(exclusive),
            }
            if let Some(Job::Exclusive { work }) = later {
                self.flush().await;
                deadline = None;
                work().await;
            }
        }
    }

    /// Folds the events of several jobs, in the order they came, and queues their answers.
    async fn fold(&mut self, applies: Vec<(Vec<EventEnvelope>, oneshot::Sender<Outcomes>)>) {
        let envelopes: Vec<EventEnvelope> = applies
            .iter()
            .flat_map(|(envelopes, _)| envelopes.iter().cloned())
            .collect();
        let mut outcomes = fold_batch(
            self.backend.as_ref(),
            &mut self.pending,
            &mut self.dirty,
            &envelopes,
        )
        .await
        .into_iter();
        // `fold_batch` also caches documents it only read; keep just the changed ones
        // pending, so the backend stays the source of everything already written.
        self.pending.retain(|id, _| self.dirty.contains(id));
        for (envelopes, reply) in applies {
            let answers: Outcomes = outcomes.by_ref().take(envelopes.len()).collect();
            for (envelope, outcome) in envelopes.iter().zip(&answers) {
                if matches!(outcome, Ok(Applied::Applied)) {
                    self.checkpoint = Some(self.checkpoint.map_or(envelope.global_position, |c| {
                        c.max(envelope.global_position)
                    }));
                }
            }
            self.waiting.push((reply, answers));
        }
    }

    async fn flush(&mut self) {
        if self.waiting.is_empty() && self.pending.is_empty() {
            return;
        }
        self.dirty.clear();
        let documents: Vec<TicketDocument> = self.pending.drain().map(|(_, d)| d).collect();
        let written = if documents.is_empty() {
            Ok(())
        } else {
            self.backend.write(documents, self.checkpoint.take()).await
        };
        let waiting = std::mem::take(&mut self.waiting);
        match written {
            Ok(()) => {
                self.commits.send_modify(|count| *count += 1);
                for (reply, outcomes) in waiting {
                    let _ = reply.send(outcomes);
                }
            }
            Err(error) => {
                tracing::warn!(%error, "search write failed; the batch will be redelivered");
                let error = projection_error(error);
                for (reply, outcomes) in waiting {
                    let failed = outcomes
                        .into_iter()
                        .map(|outcome| match outcome {
                            Ok(_) => Err(error.clone()),
                            other => other,
                        })
                        .collect();
                    let _ = reply.send(failed);
                }
            }
        }
    }
}

/// Replays the event store from `after` into `backend` (folding onto what it holds), in
/// batches; returns the cursor of the last event replayed and the number of events. Ticket and
/// `TicketSla` events are folded alike, in the store's commit order, so a ticket's SLA events
/// always come after the event that opened it.
///
/// The next batch is read while this one is folded. Folded documents stay in memory between
/// two commits of the index, so a ticket's later events in that stretch never read its
/// document back from the index. The index is committed (and those documents written and
/// dropped) every [`REPLAY_COMMIT_EVERY`] events, sooner once the documents held take
/// [`REPLAY_MEMORY`] bytes, and at the end: a rebuild is one long write, and each commit costs
/// a segment flush and the merges behind it.
pub async fn replay(
    pool: &PgPool,
    backend: &dyn SearchBackend,
    after: Cursor,
    report: impl FnMut(u64),
) -> Result<(Cursor, u64), ProjectionError> {
    replay_bounded(pool, backend, after, ReplayBounds::default(), report).await
}

/// How a replay reads and when it commits: after `events` events, or sooner once the folded
/// documents it holds take `bytes` bytes (both checked between two reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayBounds {
    /// Events read from the store per query ([`replay_by_ticket`]: tickets).
    pub batch: i64,
    /// Events folded between two commits, at most.
    pub events: u64,
    /// Bytes of folded documents held between two commits, at most (roughly: see
    /// [`TicketDocument::approximate_bytes`]).
    pub bytes: usize,
}

impl Default for ReplayBounds {
    fn default() -> Self {
        ReplayBounds {
            batch: 2000,
            events: REPLAY_COMMIT_EVERY,
            bytes: REPLAY_MEMORY,
        }
    }
}

impl ReplayBounds {
    /// [`replay_by_ticket`]'s: 500 tickets per read (about 5,000 events on a store of
    /// five-event tickets and their SLA events), the same commit bounds.
    pub fn by_ticket() -> ReplayBounds {
        ReplayBounds {
            batch: 500,
            ..ReplayBounds::default()
        }
    }
}

/// [`replay`] with other bounds (tests make a small store commit many times).
pub async fn replay_bounded(
    pool: &PgPool,
    backend: &dyn SearchBackend,
    after: Cursor,
    bounds: ReplayBounds,
    mut report: impl FnMut(u64),
) -> Result<(Cursor, u64), ProjectionError> {
    let read = |after: Cursor| {
        let pool = pool.clone();
        tokio::spawn(async move { event_log::next_replay_batch(&pool, after, bounds.batch).await })
    };
    let mut cursor = after;
    let mut done = 0u64;
    let mut known: HashMap<String, TicketDocument> = HashMap::new();
    let mut changed = HashSet::new();
    let mut uncommitted = 0u64;
    // What the documents in `known` take, by `approximate_bytes`.
    let mut held = 0usize;
    let mut next = read(cursor);
    loop {
        let batch = (&mut next)
            .await
            .map_err(|error| ProjectionError::Transient(format!("replay reader: {error}")))??;
        let last = batch.last().map(ReplayEvent::cursor);
        if let Some(last) = last {
            next = read(last);
        }
        if uncommitted > 0
            && (last.is_none() || uncommitted >= bounds.events || held >= bounds.bytes)
        {
            tracing::debug!(
                events = uncommitted,
                documents = changed.len(),
                held,
                "search replay commit"
            );
            // Everything held is dropped: the changed documents go to the index, and the
            // rest are as the index holds them.
            let documents: Vec<TicketDocument> = known
                .drain()
                .filter(|(id, _)| changed.contains(id))
                .map(|(_, document)| document)
                .collect();
            backend
                .write(documents, Some(cursor.position))
                .await
                .map_err(projection_error)?;
            changed.clear();
            uncommitted = 0;
            held = 0;
        }
        let Some(last) = last else {
            return Ok((cursor, done));
        };
        let folded = batch
            .iter()
            .filter(|stored| is_folded(&stored.aggregate_type))
            .map(|stored| stored.aggregate_id.as_str());
        held += load_missing(backend, &mut known, folded).await?;
        let events = batch.len() as u64;
        for stored in batch {
            if is_folded(&stored.aggregate_type) {
                // The store is read in order, so a gap here means an unreadable store.
                let folding = fold_into(&mut known, &mut changed, Fold::of_stored(stored)?)?;
                held = held.saturating_add_signed(folding.grew);
            }
        }
        done += events;
        uncommitted += events;
        cursor = last;
        report(done);
    }
}

/// Replays the event store into an empty index ticket by ticket, for a rebuild: up to the
/// [cut](event_log::replay_cut) taken as it starts, each ticket's events (its `Ticket` and
/// `TicketSla` events, in the order [`replay`] would fold them) are read together and folded
/// into its document, which is written once. Returns the cut and the number of events
/// replayed; go on from the cut with [`replay`], which folds what committed since onto the
/// documents written here.
///
/// Replaying in commit order instead (as [`replay`] does from the start) writes a document
/// again after every commit of the index that falls inside its ticket's life, and reads it
/// back from the index first: on a store of 200,000 tickets spread over 60 days, 410,000
/// document writes where 200,000 do (docs/benchmarks.md).
///
/// The next chunk of tickets is read while one is folded. The index is committed every
/// [`REPLAY_COMMIT_EVERY`] events, sooner once the documents waiting take [`REPLAY_MEMORY`]
/// bytes, and at the end, with the cut's position as its checkpoint (the commits before it
/// keep the index's previous checkpoint: the documents written so far are not every document
/// up to any position).
pub async fn replay_by_ticket(
    pool: &PgPool,
    backend: &dyn SearchBackend,
    report: impl FnMut(u64),
) -> Result<(Cursor, u64), ProjectionError> {
    replay_by_ticket_bounded(pool, backend, ReplayBounds::by_ticket(), report).await
}

/// [`replay_by_ticket`] with other bounds; `bounds.batch` counts tickets per read.
pub async fn replay_by_ticket_bounded(
    pool: &PgPool,
    backend: &dyn SearchBackend,
    bounds: ReplayBounds,
    mut report: impl FnMut(u64),
) -> Result<(Cursor, u64), ProjectionError> {
    let Some(cut) = event_log::replay_cut(pool).await? else {
        return Ok((Cursor::default(), 0));
    };
    let read = |after: String| {
        let pool = pool.clone();
        tokio::spawn(async move {
            event_log::replay_aggregates(&pool, &["Ticket", TICKET_SLA], &after, bounds.batch, cut)
                .await
        })
    };
    let mut done = 0u64;
    let mut waiting: Vec<TicketDocument> = Vec::new();
    let mut uncommitted = 0u64;
    let mut held = 0usize;
    let mut next = read(String::new());
    loop {
        let (last, events) = (&mut next)
            .await
            .map_err(|error| ProjectionError::Transient(format!("replay reader: {error}")))??;
        if let Some(last) = last.clone() {
            next = read(last);
        }
        let events_read = events.len() as u64;
        let mut known = HashMap::new();
        let mut changed = HashSet::new();
        for stored in events {
            // Read in order, one ticket after another, from its first event: a gap or a
            // ticket's SLA event before the ticket means an unreadable store.
            fold_into(&mut known, &mut changed, Fold::of_stored(stored)?)?;
        }
        held += known
            .values()
            .map(TicketDocument::approximate_bytes)
            .sum::<usize>();
        waiting.extend(known.into_values());
        done += events_read;
        uncommitted += events_read;
        let finished = last.is_none();
        if finished || uncommitted >= bounds.events || held >= bounds.bytes {
            let documents = std::mem::take(&mut waiting);
            backend
                .write(documents, finished.then_some(cut.position))
                .await
                .map_err(projection_error)?;
            uncommitted = 0;
            held = 0;
        }
        report(done);
        if finished {
            return Ok((cut, done));
        }
    }
}

/// Events a replay folds between two commits of the index, at most.
const REPLAY_COMMIT_EVERY: u64 = 200_000;
/// Bytes of folded documents a replay holds before it commits early.
const REPLAY_MEMORY: usize = 128 << 20;

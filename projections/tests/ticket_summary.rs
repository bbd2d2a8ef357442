//! The ticket_summary projection on the real runtime: live, idempotent, order-safe,
//! rebuildable, shared between workers, and with poison events dead-lettered.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use helpdesk_domain::ticket::{Priority, TicketCommand};
use helpdesk_projections::runtime::{self, Gather, RuntimeSettings};
use helpdesk_projections::ticket_summary::TicketSummary;
use helpdesk_projections::{Applied, Projection, ProjectionError, dead_letters, rebuild};
use helpdesk_schemas::EventEnvelope;
use support::Harness;

fn settings(harness: &Harness) -> RuntimeSettings {
    let mut settings = RuntimeSettings::new(harness.prefix.clone());
    settings.retry_delay = std::time::Duration::from_millis(20);
    settings
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_summary_follows_commands_through_relay_and_consumer() {
    let harness = Harness::start().await;
    let relay = harness.start_relay();
    let projection = Arc::new(TicketSummary::new(harness.pool.clone()));
    let worker = tokio::spawn(runtime::run(harness.nats(), projection, settings(&harness)));
    let mut tickets = Vec::new();
    for n in 0..10 {
        tickets.push(harness.worked_ticket(n).await);
    }
    harness
        .command(
            &tickets[0],
            TicketCommand::ChangePriority {
                to: Priority::Urgent,
            },
        )
        .await;
    harness.wait_until_projected().await;

    let rows = harness.summary().await;
    assert_eq!(rows.len(), 10);
    let first = rows
        .iter()
        .find(|r| r["ticket_id"] == tickets[0].as_str())
        .unwrap();
    assert_eq!(first["status"], "open");
    assert_eq!(first["priority"], "urgent");
    assert_eq!(first["tags"], serde_json::json!(["t0"]));
    assert_eq!(first["reply_count"], 1);
    assert_eq!(first["last_sequence"], 5);
    worker.abort();
    relay.abort();
    harness.delete_streams().await;
}

/// `count` worked tickets applied in order, one event at a time: their ids, their events,
/// the projection (reset again afterwards) and the model that one ordered pass leaves.
async fn ordered_pass(
    harness: &Harness,
    count: usize,
) -> (
    Vec<String>,
    Vec<EventEnvelope>,
    TicketSummary,
    Vec<serde_json::Value>,
) {
    let mut tickets = Vec::new();
    for n in 0..count {
        tickets.push(harness.worked_ticket(n).await);
    }
    let envelopes = harness.committed_envelopes().await;
    let projection = TicketSummary::new(harness.pool.clone());
    for envelope in &envelopes {
        assert_eq!(projection.apply(envelope).await.unwrap(), Applied::Applied);
    }
    let ordered = harness.summary().await;
    projection.reset().await.unwrap();
    (tickets, envelopes, projection, ordered)
}

#[tokio::test]
async fn duplicated_and_reordered_events_leave_the_same_model_as_one_ordered_pass() {
    let harness = Harness::start().await;
    let (_, envelopes, projection, ordered) = ordered_pass(&harness, 8).await;
    // Every event twice, newest first: gaps are refused and retried in later rounds, exactly
    // as the runtime's delayed redelivery does.
    let mut pending: Vec<&EventEnvelope> = envelopes.iter().chain(envelopes.iter()).rev().collect();
    let mut rounds = 0;
    while !pending.is_empty() {
        rounds += 1;
        assert!(rounds <= 20, "reordered events never converged");
        let mut later = Vec::new();
        for envelope in pending {
            match projection.apply(envelope).await {
                Ok(_) => {}
                Err(ProjectionError::Gap { .. }) => later.push(envelope),
                Err(other) => panic!("{other}"),
            }
        }
        pending = later;
    }
    assert_eq!(harness.summary().await, ordered);
}

#[tokio::test]
async fn a_batch_answers_for_each_event_as_one_apply_after_another_would() {
    let harness = Harness::start().await;
    let (tickets, envelopes, projection, ordered) = ordered_pass(&harness, 3).await;
    let of = |ticket: usize, sequence: i64| {
        envelopes
            .iter()
            .find(|e| e.aggregate_id == tickets[ticket] && e.sequence == sequence)
            .unwrap()
            .clone()
    };
    let mut unreadable = of(2, 1);
    unreadable.payload = serde_json::json!({"TicketOpened": {"subject": 7}});
    let batch = vec![
        of(0, 1),
        of(0, 2),
        of(1, 1),
        of(1, 3), // ahead of its event 2
        of(0, 2), // again
        unreadable,
        of(1, 2),
    ];
    let outcomes = projection.apply_batch(&batch).await;
    assert_eq!(outcomes.len(), batch.len());
    assert_eq!(outcomes[0], Ok(Applied::Applied));
    assert_eq!(outcomes[1], Ok(Applied::Applied));
    assert_eq!(outcomes[2], Ok(Applied::Applied));
    assert_eq!(
        outcomes[3],
        Err(ProjectionError::Gap {
            expected: 2,
            got: 3
        })
    );
    assert_eq!(outcomes[4], Ok(Applied::Duplicate));
    assert!(
        matches!(&outcomes[5], Err(ProjectionError::Permanent(_))),
        "{:?}",
        outcomes[5]
    );
    assert_eq!(outcomes[6], Ok(Applied::Applied));

    // The rest in one batch, in order, gives the model of one ordered pass.
    let applied: Vec<(String, i64)> = batch[..3]
        .iter()
        .chain(std::iter::once(&batch[6]))
        .map(|e| (e.aggregate_id.clone(), e.sequence))
        .collect();
    let rest: Vec<EventEnvelope> = envelopes
        .iter()
        .filter(|e| !applied.contains(&(e.aggregate_id.clone(), e.sequence)))
        .cloned()
        .collect();
    let outcomes = projection.apply_batch(&rest).await;
    assert!(
        outcomes.iter().all(|o| *o == Ok(Applied::Applied)),
        "{outcomes:?}"
    );
    assert_eq!(harness.summary().await, ordered);
}

#[tokio::test]
async fn a_batch_of_several_tickets_events_is_committed_as_one_transaction() {
    // Given three worked tickets' events, interleaved as a lane would receive them
    let harness = Harness::start().await;
    let (tickets, envelopes, projection, ordered) = ordered_pass(&harness, 3).await;
    let mut batch = envelopes.clone();
    batch.sort_by_key(|e| (e.sequence, e.global_position));
    assert!(
        batch
            .windows(2)
            .any(|w| w[0].aggregate_id != w[1].aggregate_id)
    );

    // When they are applied as one batch
    let outcomes = projection.apply_batch(&batch).await;

    // Then each is applied, the model is one ordered pass's, and every row was written by
    // one transaction (one commit for the batch)
    assert!(
        outcomes.iter().all(|o| *o == Ok(Applied::Applied)),
        "{outcomes:?}"
    );
    assert_eq!(harness.summary().await, ordered);
    let writers: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT xmin::text) FROM ticket_summary WHERE ticket_id = ANY($1)",
    )
    .bind(&tickets)
    .fetch_one(&harness.pool)
    .await
    .unwrap();
    assert_eq!(writers, 1);
}

/// A projection that keeps failing for one ticket until it is "fixed".
struct Flaky {
    inner: TicketSummary,
    poisoned: String,
    broken: AtomicBool,
}

#[async_trait]
impl Projection for Flaky {
    fn name(&self) -> &str {
        "flaky_summary"
    }

    async fn apply(&self, envelope: &EventEnvelope) -> Result<Applied, ProjectionError> {
        if envelope.aggregate_id == self.poisoned && self.broken.load(Ordering::SeqCst) {
            return Err(ProjectionError::Transient("the disk is on fire".into()));
        }
        self.inner.apply(envelope).await
    }

    async fn reset(&self) -> Result<(), ProjectionError> {
        self.inner.reset().await
    }

    async fn save_checkpoint(&self, position: i64) -> Result<(), ProjectionError> {
        self.inner.save_checkpoint(position).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_is_dead_lettered_while_a_thousand_other_tickets_flow_and_redriven_later() {
    let harness = Harness::start().await;
    let poisoned = uuid::Uuid::now_v7().to_string();
    harness
        .command(&poisoned, support::open(&poisoned, 0))
        .await;
    for n in 1..=1000 {
        let id = uuid::Uuid::now_v7().to_string();
        harness.command(&id, support::open(&id, n)).await;
    }
    let relay = harness.start_relay();
    let flaky = Arc::new(Flaky {
        inner: TicketSummary::named(harness.pool.clone(), "flaky_summary"),
        poisoned: poisoned.clone(),
        broken: AtomicBool::new(true),
    });
    let worker = tokio::spawn(runtime::run(
        harness.nats(),
        flaky.clone(),
        settings(&harness),
    ));

    // Wait for the dead letter; by then everything else must be applied.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    let letters = loop {
        let letters = dead_letters::list(&harness.nats(), &harness.prefix, "flaky_summary")
            .await
            .unwrap();
        if !letters.is_empty() {
            break letters;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no dead letter within 60 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].envelope.as_ref().unwrap().aggregate_id, poisoned);
    assert_eq!(letters[0].deliveries, "5");
    assert!(letters[0].error.contains("the disk is on fire"));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while harness.summary().await.len() < 1000 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "other tickets did not flow"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        harness.summary().await.len(),
        1000,
        "the poisoned ticket is not applied"
    );

    let pipeline = helpdesk_platform::pipeline::Pipeline {
        nats: harness.nats(),
        prefix: harness.prefix.clone(),
        projections: vec!["flaky_summary".into()],
    };
    // Acks and the checkpoint are settled asynchronously: wait for them, with a deadline.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        let status = pipeline.status(&harness.pool).await.unwrap();
        if status[0].pending == Some(0) && status[0].last_position > 0 {
            break status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "pipeline did not settle: {status:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(status[0].dead_letters, Some(1));

    flaky.broken.store(false, Ordering::SeqCst);
    let report = dead_letters::redrive(&harness.nats(), &harness.prefix, flaky.as_ref())
        .await
        .unwrap();
    assert_eq!(report.applied, 1);
    assert!(report.failed.is_empty());
    assert_eq!(harness.summary().await.len(), 1001);
    assert!(
        dead_letters::list(&harness.nats(), &harness.prefix, "flaky_summary")
            .await
            .unwrap()
            .is_empty()
    );
    let status = pipeline.status(&harness.pool).await.unwrap();
    assert_eq!(status[0].dead_letters, Some(0));
    worker.abort();
    relay.abort();
    harness.delete_streams().await;
}

/// Counts how often each event was really applied.
struct Counting {
    inner: TicketSummary,
    applied: Mutex<BTreeMap<(String, i64), u32>>,
}

#[async_trait]
impl Projection for Counting {
    fn name(&self) -> &str {
        "shared_summary"
    }

    async fn apply(&self, envelope: &EventEnvelope) -> Result<Applied, ProjectionError> {
        let outcome = self.inner.apply(envelope).await?;
        if outcome == Applied::Applied {
            let key = (envelope.aggregate_id.clone(), envelope.sequence);
            *self.applied.lock().unwrap().entry(key).or_default() += 1;
        }
        Ok(outcome)
    }

    async fn reset(&self) -> Result<(), ProjectionError> {
        self.inner.reset().await
    }

    async fn save_checkpoint(&self, position: i64) -> Result<(), ProjectionError> {
        self.inner.save_checkpoint(position).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_workers_on_one_projection_apply_every_event_exactly_once() {
    let harness = Harness::start().await;
    let relay = harness.start_relay();
    let counting = Arc::new(Counting {
        inner: TicketSummary::new(harness.pool.clone()),
        applied: Mutex::new(BTreeMap::new()),
    });
    let workers: Vec<_> = (0..2)
        .map(|_| {
            tokio::spawn(runtime::run(
                harness.nats(),
                counting.clone(),
                settings(&harness),
            ))
        })
        .collect();
    for n in 0..40 {
        harness.worked_ticket(n).await;
    }
    harness.wait_until_projected().await;
    let applied = counting.applied.lock().unwrap().clone();
    assert_eq!(applied.len() as i64, harness.event_count().await);
    assert!(
        applied.values().all(|count| *count == 1),
        "an event was applied twice"
    );
    for worker in workers {
        worker.abort();
    }
    relay.abort();
    harness.delete_streams().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebuild_during_writes_equals_the_live_model_row_for_row() {
    let harness = Harness::start().await;
    for n in 0..2500 {
        if n % 500 == 0 {
            eprintln!("written {n} tickets");
        }
        harness.worked_ticket(n).await;
    }
    assert!(harness.event_count().await >= 10_000);
    let relay = harness.start_relay();
    let projection = Arc::new(TicketSummary::new(harness.pool.clone()));
    let worker = tokio::spawn(runtime::run(
        harness.nats(),
        projection.clone(),
        settings(&harness),
    ));
    harness.wait_until_projected().await;
    let live = harness.summary().await;

    // Rebuild while commands keep arriving and the live consumer keeps applying.
    let writer = {
        let state = harness.state.clone();
        let pool = harness.pool.clone();
        let prefix = harness.prefix.clone();
        tokio::spawn(async move {
            let more = Harness {
                state,
                pool,
                prefix,
            };
            for n in 0..50 {
                more.worked_ticket(10_000 + n).await;
            }
        })
    };
    let replayed = rebuild::rebuild(&harness.pool, projection.as_ref(), |_| {})
        .await
        .unwrap();
    assert!(replayed >= 10_000);
    writer.await.unwrap();
    harness.wait_until_projected().await;
    let after_rebuild = harness.summary().await;
    assert_eq!(after_rebuild.len(), live.len() + 50);
    let unchanged: Vec<&serde_json::Value> = after_rebuild
        .iter()
        .filter(|row| live.iter().any(|l| l["ticket_id"] == row["ticket_id"]))
        .collect();
    assert_eq!(
        unchanged,
        live.iter().collect::<Vec<_>>(),
        "rebuilt rows differ from live ones"
    );

    // And a rebuild at rest reproduces the live model exactly.
    worker.abort();
    rebuild::rebuild(&harness.pool, projection.as_ref(), |_| {})
        .await
        .unwrap();
    assert_eq!(harness.summary().await, after_rebuild);
    relay.abort();
    harness.delete_streams().await;
}

/// Unreachable until it has failed `outages` times, as during a database outage.
struct Outage {
    inner: TicketSummary,
    outages: std::sync::atomic::AtomicU32,
}

#[async_trait]
impl Projection for Outage {
    fn name(&self) -> &str {
        "outage_summary"
    }

    async fn apply(&self, envelope: &EventEnvelope) -> Result<Applied, ProjectionError> {
        if self.outages.load(Ordering::SeqCst) > 0 {
            self.outages.fetch_sub(1, Ordering::SeqCst);
            return Err(ProjectionError::from(sqlx::Error::PoolTimedOut));
        }
        self.inner.apply(envelope).await
    }

    async fn reset(&self) -> Result<(), ProjectionError> {
        self.inner.reset().await
    }

    async fn save_checkpoint(&self, position: i64) -> Result<(), ProjectionError> {
        self.inner.save_checkpoint(position).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_read_model_delays_events_instead_of_dead_lettering_them() {
    let harness = Harness::start().await;
    let id = uuid::Uuid::now_v7().to_string();
    harness.command(&id, support::open(&id, 1)).await;
    let relay = harness.start_relay();
    // More failed deliveries than max_deliver (5): a transient error would be dead-lettered.
    let outage = Arc::new(Outage {
        inner: TicketSummary::named(harness.pool.clone(), "outage_summary"),
        outages: std::sync::atomic::AtomicU32::new(7),
    });
    let worker = tokio::spawn(runtime::run(
        harness.nats(),
        outage.clone(),
        settings(&harness),
    ));
    harness.wait_until_projected().await;
    assert_eq!(outage.outages.load(Ordering::SeqCst), 0);
    let letters = dead_letters::list(&harness.nats(), &harness.prefix, "outage_summary")
        .await
        .unwrap();
    assert!(letters.is_empty());
    worker.abort();
    relay.abort();
    harness.delete_streams().await;
}

#[tokio::test]
async fn a_rebuild_reads_version_1_replies() {
    let harness = Harness::start().await;
    let id = uuid::Uuid::now_v7().to_string();
    harness.command(&id, support::open(&id, 1)).await;
    // A ReplyAdded written by version 1 (no attachments field).
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
                             payload, metadata) \
         VALUES ('Ticket', $1, 2, 'ReplyAdded', '1', $2, '{}')",
    )
    .bind(&id)
    .bind(serde_json::json!({"ReplyAdded": {"interaction_id": "old",
        "author": {"id": "a", "kind": "agent"}, "visibility": "public", "body": "v1"}}))
    .execute(&harness.pool)
    .await
    .unwrap();
    let projection = TicketSummary::new(harness.pool.clone());
    rebuild::rebuild(&harness.pool, &projection, |_| {})
        .await
        .unwrap();
    let rows = harness.summary().await;
    assert_eq!(rows[0]["reply_count"], 1);
    assert_eq!(rows[0]["last_sequence"], 2);
}

/// Records the size of every batch a lane hands over.
struct Batches {
    inner: TicketSummary,
    sizes: Mutex<Vec<usize>>,
}

impl Batches {
    fn new(harness: &Harness) -> Arc<Self> {
        Arc::new(Batches {
            inner: TicketSummary::new(harness.pool.clone()),
            sizes: Mutex::new(Vec::new()),
        })
    }
}

#[async_trait]
impl Projection for Batches {
    fn name(&self) -> &str {
        "gathered_summary"
    }

    async fn apply(&self, envelope: &EventEnvelope) -> Result<Applied, ProjectionError> {
        self.inner.apply(envelope).await
    }

    async fn apply_batch(
        &self,
        envelopes: &[EventEnvelope],
    ) -> Vec<Result<Applied, ProjectionError>> {
        self.sizes.lock().unwrap().push(envelopes.len());
        self.inner.apply_batch(envelopes).await
    }

    async fn reset(&self) -> Result<(), ProjectionError> {
        self.inner.reset().await
    }

    async fn save_checkpoint(&self, position: i64) -> Result<(), ProjectionError> {
        self.inner.save_checkpoint(position).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_holds_its_batch_until_enough_events_have_joined_it() {
    // Given a lane that waits (as good as) forever for a worked ticket's events
    let harness = Harness::start().await;
    let relay = harness.start_relay();
    let batches = Batches::new(&harness);
    let mut settings = settings(&harness);
    settings.gather = Gather {
        wait: Duration::from_secs(3600),
        enough: 4,
    };
    let worker = tokio::spawn(runtime::run(harness.nats(), batches.clone(), settings));
    // When the ticket's commands come one after another, each published on its own
    harness.worked_ticket(0).await;
    assert_eq!(harness.event_count().await, 4);
    harness.wait_until_projected().await;
    // Then the projection got them in one batch (without the wait: as they came, [3, 1] here)
    assert_eq!(*batches.sizes.lock().unwrap(), [4]);
    worker.abort();
    relay.abort();
    harness.delete_streams().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_hands_its_batch_over_when_the_wait_runs_out() {
    // Given lanes that wait 100 ms for a thousand events each, far more than will come
    let harness = Harness::start().await;
    let relay = harness.start_relay();
    let batches = Batches::new(&harness);
    let mut settings = settings(&harness);
    settings.gather = Gather {
        wait: Duration::from_millis(100),
        enough: 1000,
    };
    let worker = tokio::spawn(runtime::run(harness.nats(), batches.clone(), settings));
    // When three tickets are worked
    for n in 0..3 {
        harness.worked_ticket(n).await;
    }
    // Then every event is applied all the same, in batches of at most a lane's 256
    harness.wait_until_projected().await;
    let sizes = batches.sizes.lock().unwrap().clone();
    assert_eq!(
        sizes.iter().sum::<usize>() as i64,
        harness.event_count().await
    );
    assert!(
        sizes.iter().all(|size| (1..=256).contains(size)),
        "{sizes:?}"
    );
    worker.abort();
    relay.abort();
    harness.delete_streams().await;
}

//! Pipeline benchmark: relay throughput, projection throughput and commit-to-applied latency,
//! each next to a raw baseline measured in the same run on the same machine.
//!
//! Run: `cargo run --release -p helpdesk-tests --bin pipeline-bench` (Postgres and NATS as for
//! the tests). Prints a Markdown table for `docs/benchmarks.md`.

#![allow(clippy::unwrap_used, clippy::print_stdout)] // a benchmark tool, not a service

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use helpdesk_command_api::metrics::Metrics;
use helpdesk_command_api::relay::{Relay, RelaySettings};
use helpdesk_projections::runtime::{self, RuntimeSettings};
use helpdesk_projections::ticket_summary::TicketSummary;
use helpdesk_projections::{Applied, Projection, ProjectionError};
use helpdesk_schemas::EventEnvelope;
use sqlx::PgPool;
use tokio::sync::Notify;

const EVENTS: i64 = 20_000;

#[tokio::main]
async fn main() {
    let server = helpdesk_tests::postgres_server_url();
    let nats = async_nats::connect(helpdesk_tests::nats_url())
        .await
        .unwrap();
    println!("| measurement | ours | raw baseline | ratio |");
    println!("|---|---|---|---|");

    // 1. Relay: table → stream, against raw pipelined JetStream publishes of the same messages.
    let (pool, prefix) = fresh(&server).await;
    insert_opened(&pool, EVENTS).await;
    let raw = raw_publish_rate(&nats, EVENTS as usize).await;
    let started = Instant::now();
    let relay = spawn_relay(&pool, &nats, &prefix, Arc::new(Notify::new()));
    helpdesk_tests::wait_for_stream_count(&helpdesk_tests::nats_url(), &prefix, EVENTS as u64)
        .await;
    let relay_rate = EVENTS as f64 / started.elapsed().as_secs_f64();
    row("relay throughput (events/s)", relay_rate, raw);

    // 2. Projection: stream → ticket_summary, against raw single-row upserts into Postgres.
    let raw = raw_upsert_rate(&pool, EVENTS).await;
    let started = Instant::now();
    let projection = Arc::new(TicketSummary::new(pool.clone()));
    let worker = tokio::spawn(runtime::run(
        nats.clone(),
        projection,
        RuntimeSettings::new(prefix.clone()),
    ));
    wait_for_rows(&pool, EVENTS).await;
    let projection_rate = EVENTS as f64 / started.elapsed().as_secs_f64();
    row("projection throughput (events/s)", projection_rate, raw);
    worker.abort();
    relay.abort();
    delete_stream(&nats, &prefix).await;

    // 3. Commit → applied latency at fixed rates.
    for rate in [500u32, 2000] {
        let (p50, p99, floor) = latency_at(&server, &nats, rate).await;
        println!(
            "| commit→applied p50 at {rate} events/s (ms) | {p50:.1} | {floor:.1} (one insert round trip) | {:.1}× |",
            p50 / floor
        );
        println!(
            "| commit→applied p99 at {rate} events/s (ms) | {p99:.1} | {floor:.1} | {:.1}× |",
            p99 / floor
        );
    }
}

fn row(name: &str, ours: f64, raw: f64) {
    println!("| {name} | {ours:.0} | {raw:.0} | {:.2} |", ours / raw);
}

async fn fresh(server: &str) -> (PgPool, String) {
    let database = helpdesk_platform::db::create_scratch_database(server)
        .await
        .unwrap();
    let pool = helpdesk_platform::db::connect(&database, 10).await.unwrap();
    (pool, helpdesk_tests::unique_prefix())
}

fn spawn_relay(
    pool: &PgPool,
    nats: &async_nats::Client,
    prefix: &str,
    wakeup: Arc<Notify>,
) -> tokio::task::JoinHandle<()> {
    let relay = Relay::new(
        pool.clone(),
        nats.clone(),
        RelaySettings {
            prefix: prefix.to_owned(),
            poll_interval: Duration::from_millis(500),
            batch_size: 256,
        },
        wakeup,
        Arc::new(Metrics::new()),
    );
    tokio::spawn(relay.run())
}

/// Inserts `count` TicketOpened events, each its own ticket, in one statement.
async fn insert_opened(pool: &PgPool, count: i64) {
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         SELECT 'Ticket', 'bench-' || i, 1, 'TicketOpened', '1', \
                json_build_object('TicketOpened', json_build_object('ticket_id', 'bench-' || i, \
                  'subject', 'benchmark ticket ' || i, 'description', 'load', 'priority', 'normal', \
                  'channel', 'api', 'requester', json_build_object('customer_id', 'c' || (i % 100)), \
                  'tags', json_build_array('bench'), 'group', null)), \
                json_build_object('actor_id', 'bench', 'actor_role', 'system') \
           FROM generate_series(1, $1) AS i",
    )
    .bind(count)
    .execute(pool)
    .await
    .unwrap();
}

/// Pipelined publishes with msg ids and acks, in batches of 256, of envelope-sized messages.
async fn raw_publish_rate(nats: &async_nats::Client, count: usize) -> f64 {
    let js = async_nats::jetstream::new(nats.clone());
    let prefix = helpdesk_tests::unique_prefix();
    helpdesk_platform::nats::ensure_events_stream(&js, &prefix)
        .await
        .unwrap();
    let payload = bytes::Bytes::from(vec![b'x'; 600]);
    let started = Instant::now();
    for chunk in (0..count).collect::<Vec<_>>().chunks(256) {
        let mut acks = Vec::new();
        for i in chunk {
            let message = async_nats::jetstream::message::PublishMessage::build()
                .payload(payload.clone())
                .message_id(format!("raw:{i}"));
            acks.push(
                js.send_publish(format!("{prefix}.events.Raw.{i}"), message)
                    .await
                    .unwrap(),
            );
        }
        for ack in acks {
            ack.await.unwrap();
        }
    }
    let rate = count as f64 / started.elapsed().as_secs_f64();
    delete_stream(nats, &prefix).await;
    rate
}

/// Single-row upserts, one transaction each, into a scratch table.
async fn raw_upsert_rate(pool: &PgPool, count: i64) -> f64 {
    sqlx::query("CREATE TABLE bench_upsert (id text PRIMARY KEY, body text, seq bigint)")
        .execute(pool)
        .await
        .unwrap();
    let count = count / 4; // enough to measure
    let started = Instant::now();
    for i in 0..count {
        sqlx::query(
            "INSERT INTO bench_upsert VALUES ($1, $2, 1) ON CONFLICT (id) DO UPDATE SET seq = bench_upsert.seq + 1",
        )
        .bind(format!("row-{i}"))
        .bind("benchmark ticket")
        .execute(pool)
        .await
        .unwrap();
    }
    count as f64 / started.elapsed().as_secs_f64()
}

async fn wait_for_rows(pool: &PgPool, count: i64) {
    loop {
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM ticket_summary")
            .fetch_one(pool)
            .await
            .unwrap();
        if rows >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn delete_stream(nats: &async_nats::Client, prefix: &str) {
    let js = async_nats::jetstream::new(nats.clone());
    let _ = js
        .delete_stream(format!("{}_EVENTS", prefix.to_uppercase()))
        .await;
    let _ = js
        .delete_stream(format!("{}_DLQ", prefix.to_uppercase()))
        .await;
}

/// Records when each ticket's first event was applied.
struct Timed {
    inner: TicketSummary,
    applied: Mutex<HashMap<String, Instant>>,
}

#[async_trait]
impl Projection for Timed {
    fn name(&self) -> &str {
        "bench_summary"
    }
    async fn apply(&self, envelope: &EventEnvelope) -> Result<Applied, ProjectionError> {
        let outcome = self.inner.apply(envelope).await?;
        self.applied
            .lock()
            .unwrap()
            .entry(envelope.aggregate_id.clone())
            .or_insert_with(Instant::now);
        Ok(outcome)
    }
    async fn reset(&self) -> Result<(), ProjectionError> {
        self.inner.reset().await
    }

    async fn save_checkpoint(&self, position: i64) -> Result<(), ProjectionError> {
        self.inner.save_checkpoint(position).await
    }
}

/// Writes single-event transactions at `rate` per second for 10 s with the relay and a
/// projection running; returns (p50, p99, one insert's median round trip) in milliseconds.
async fn latency_at(server: &str, nats: &async_nats::Client, rate: u32) -> (f64, f64, f64) {
    let (pool, prefix) = fresh(server).await;
    let wakeup = Arc::new(Notify::new());
    let relay = spawn_relay(&pool, nats, &prefix, wakeup.clone());
    let timed = Arc::new(Timed {
        inner: TicketSummary::named(pool.clone(), "bench_summary"),
        applied: Mutex::new(HashMap::new()),
    });
    let worker = tokio::spawn(runtime::run(
        nats.clone(),
        timed.clone(),
        RuntimeSettings::new(prefix.clone()),
    ));
    let total = rate * 10;
    let committed = Arc::new(Mutex::new(HashMap::new()));
    let mut round_trips = Vec::new();
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / u64::from(rate)));
    let mut writes = Vec::new();
    for i in 0..total {
        ticker.tick().await;
        let (pool, wakeup, committed) = (pool.clone(), wakeup.clone(), committed.clone());
        writes.push(tokio::spawn(async move {
            let id = format!("lat-{i}");
            let before = Instant::now();
            insert_one(&pool, &id).await;
            let at = Instant::now();
            wakeup.notify_one();
            committed.lock().unwrap().insert(id, at);
            at - before
        }));
    }
    for write in writes {
        round_trips.push(write.await.unwrap().as_secs_f64() * 1000.0);
    }
    while timed.applied.lock().unwrap().len() < total as usize {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let applied = timed.applied.lock().unwrap().clone();
    let committed = committed.lock().unwrap().clone();
    let mut latencies: Vec<f64> = committed
        .iter()
        .map(|(id, at)| (applied[id].saturating_duration_since(*at)).as_secs_f64() * 1000.0)
        .collect();
    latencies.sort_by(f64::total_cmp);
    round_trips.sort_by(f64::total_cmp);
    worker.abort();
    relay.abort();
    delete_stream(nats, &prefix).await;
    let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize];
    (at(0.5), at(0.99), round_trips[round_trips.len() / 2])
}

async fn insert_one(pool: &PgPool, id: &str) {
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('Ticket', $1, 1, 'TicketOpened', '1', json_build_object('TicketOpened', json_build_object( \
           'ticket_id', $1, 'subject', 'latency', 'description', '', 'priority', 'normal', 'channel', 'api', \
           'requester', json_build_object('customer_id', 'c'), 'tags', json_build_array(), 'group', null)), '{}')",
    )
    .bind(id)
    .execute(pool)
    .await
    .unwrap();
}

//! Audit benchmark: the speed of `helpdesk audit verify` over 1,000,000 events (100,000 tickets
//! of 10 events each) and the append cost of the hash-chain trigger, each next to a raw
//! baseline measured in the same run on the same database.
//!
//! Run: `cargo run --release -p helpdesk-tests --bin audit-bench` (Postgres as for the tests;
//! `AUDIT_BENCH_EVENTS` sets another event count). Prints a Markdown table for
//! `docs/benchmarks.md`.

#![allow(clippy::unwrap_used, clippy::print_stdout)] // a benchmark tool, not a service

use std::time::{Duration, Instant};

use helpdesk_platform::audit;
use sqlx::{Connection, PgPool};

const EVENTS_PER_TICKET: i64 = 10;
/// Connections of the parallel verification (the CLI's default).
const JOBS: usize = 4;

#[tokio::main]
async fn main() {
    let events: i64 = std::env::var("AUDIT_BENCH_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let tickets = events / EVENTS_PER_TICKET;
    let events = tickets * EVENTS_PER_TICKET;
    let database =
        helpdesk_platform::db::create_scratch_database(&helpdesk_tests::postgres_server_url())
            .await
            .unwrap();
    let pool = helpdesk_platform::db::connect(&database, 8).await.unwrap();
    let name: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&pool)
        .await
        .unwrap();
    println!(
        "{events} events: {tickets} tickets × {EVENTS_PER_TICKET} (TicketOpened, 9 ReplyAdded)\n"
    );
    println!("| measurement | ours | raw baseline | ratio |");
    println!("|---|---|---|---|");

    // 1. Appending: through the trigger, against the same rows into a copy of the table
    //    (same columns, defaults, identity and indexes) that has no trigger.
    sqlx::query("CREATE TABLE plain_events (LIKE events INCLUDING ALL)")
        .execute(&pool)
        .await
        .unwrap();
    let plain = append_all(&pool, "plain_events", tickets).await;
    let chained = append_all(&pool, "events", tickets).await;
    row(
        &format!("append, {tickets} rows per INSERT (events/s)"),
        events as f64 / chained.as_secs_f64(),
        events as f64 / plain.as_secs_f64(),
    );
    sqlx::query("DROP TABLE plain_events")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("VACUUM ANALYZE events")
        .execute(&pool)
        .await
        .unwrap();

    // 2. Verifying, against reading every payload, and against recomputing every hash in one
    //    statement (no order, no chain bookkeeping: the SQL floor of the same work).
    let scan = timed(
        &pool,
        "SELECT sum(length(payload::text) + length(metadata::text)) FROM events",
    )
    .await;
    let rehash = timed(
        &pool,
        "SELECT count(*) FROM events \
          WHERE event_chain_hash(hash, aggregate_type, aggregate_id, sequence, event_type, \
                                 event_version, payload, metadata) IS NOT NULL",
    )
    .await;
    let parallel_workers: String = sqlx::query_scalar("SHOW max_parallel_workers_per_gather")
        .fetch_one(&pool)
        .await
        .unwrap();
    for jobs in [1, JOBS] {
        let rate = events as f64 / verify_time(&pool, jobs, events).await.as_secs_f64();
        row(
            &format!("`audit verify --jobs {jobs}` (events/s) vs. reading every payload"),
            rate,
            events as f64 / scan.as_secs_f64(),
        );
        row(
            &format!(
                "`audit verify --jobs {jobs}` (events/s) vs. one-statement rehash \
                 ({parallel_workers} parallel workers)"
            ),
            rate,
            events as f64 / rehash.as_secs_f64(),
        );
    }

    // 3. Anchoring (hashing 100,000 chain heads) and verifying one ticket.
    let started = Instant::now();
    let anchor = audit::write_anchor(&pool).await.unwrap();
    assert_eq!(anchor.anchor.aggregates, tickets);
    let anchor_time = started.elapsed();
    let heads = timed(
        &pool,
        "SELECT count(*) FROM (SELECT DISTINCT ON (aggregate_type, aggregate_id) hash \
           FROM events ORDER BY aggregate_type, aggregate_id, sequence DESC) AS heads",
    )
    .await;
    println!(
        "| `audit anchor` over {tickets} chain heads (ms) | {:.0} | {:.0} (selecting the heads) | {:.2}× |",
        ms(anchor_time),
        ms(heads),
        anchor_time.as_secs_f64() / heads.as_secs_f64()
    );
    let mut one = Vec::new();
    for t in 1..=100 {
        let started = Instant::now();
        let id = format!("bench-{}", t * (tickets / 100).max(1));
        let report = audit::verify_aggregate(&pool, "Ticket", &id).await.unwrap();
        assert_eq!(report.events, EVENTS_PER_TICKET as u64);
        one.push(started.elapsed());
    }
    one.sort();
    println!(
        "| verify one ticket of 10 events, p50 (ms) | {:.2} | | |",
        ms(one[one.len() / 2])
    );

    // The store is about a gigabyte: do not leave it for the six-hour scratch clean-up.
    pool.close().await;
    let mut admin = sqlx::PgConnection::connect(&helpdesk_tests::postgres_server_url())
        .await
        .unwrap();
    let drop = format!(
        "DROP DATABASE {} WITH (FORCE)",
        helpdesk_platform::db::quote_identifier(&name)
    );
    sqlx::query(&drop).execute(&mut admin).await.unwrap();
}

/// Verifies the whole store on `jobs` connections; it must be clean.
async fn verify_time(pool: &PgPool, jobs: usize, events: i64) -> Duration {
    let started = Instant::now();
    let report = audit::verify_store(pool, jobs, |_| {}).await.unwrap();
    let elapsed = started.elapsed();
    assert!(report.is_clean(), "{:?}", report.broken);
    assert_eq!(report.events, events as u64);
    elapsed
}

fn row(name: &str, ours: f64, raw: f64) {
    println!("| {name} | {ours:.0} | {raw:.0} | {:.2} |", ours / raw);
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

async fn timed(pool: &PgPool, sql: &str) -> Duration {
    let started = Instant::now();
    sqlx::query(sql).execute(pool).await.unwrap();
    started.elapsed()
}

/// Appends every ticket's events into `table`, one INSERT per sequence (so a ticket's events
/// lie apart in the table, as in a store written over time), and returns the time taken.
async fn append_all(pool: &PgPool, table: &str, tickets: i64) -> Duration {
    // The trigger-less copy needs a value for the NOT NULL hash column.
    let (hash_column, hash_value) = if table == "events" {
        ("", "")
    } else {
        (", hash", ", ''::bytea")
    };
    let sql = format!(
        "INSERT INTO {table} (aggregate_type, aggregate_id, sequence, event_type, event_version, \
                              payload, metadata{hash_column}) \
         SELECT 'Ticket', 'bench-' || t, $1, \
                CASE WHEN $1 = 1 THEN 'TicketOpened' ELSE 'ReplyAdded' END, \
                CASE WHEN $1 = 1 THEN '1' ELSE '2' END, \
                CASE WHEN $1 = 1 THEN json_build_object('TicketOpened', json_build_object( \
                       'ticket_id', 'bench-' || t, 'subject', 'Printer on fire ' || t, \
                       'description', 'Third floor, next to the kitchen.', 'priority', 'high', \
                       'channel', 'email', 'requester', json_build_object('customer_id', \
                       'cust-' || (t % 1000), 'name', 'Ada', 'email', 'ada@example.org'), \
                       'tags', json_build_array('hardware'), 'group', null)) \
                     ELSE json_build_object('ReplyAdded', json_build_object( \
                       'interaction_id', gen_random_uuid(), 'body', 'Reply number ' || $1 || \
                       ' to ticket ' || t, 'author', json_build_object('id', 'agent-' || (t % 50), \
                       'kind', 'agent'), 'visibility', 'public', 'attachments', json_build_array())) \
                END, \
                json_build_object('command', 'add_interaction', 'actor_id', 'agent-' || (t % 50), \
                       'actor_role', 'agent', 'request_id', gen_random_uuid(), \
                       'occurred_at', clock_timestamp(), 'causation_id', gen_random_uuid(), \
                       'correlation_id', gen_random_uuid()){hash_value} \
           FROM generate_series(1, $2) AS t"
    );
    let started = Instant::now();
    for sequence in 1..=EVENTS_PER_TICKET {
        sqlx::query(&sql)
            .bind(sequence)
            .bind(tickets)
            .execute(pool)
            .await
            .unwrap();
    }
    started.elapsed()
}

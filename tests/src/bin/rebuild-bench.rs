//! Rebuild benchmark: events per second of `helpdesk projections rebuild search` and
//! `helpdesk projections rebuild sla` over an event store of 1,000,000 ticket events (plus the
//! SLA events they caused), one after the other and both at once, against the raw sequential
//! read rate of the events table measured in the same run.
//!
//! The store is written straight into a scratch database: 200,000 tickets of five events each
//! (opened, then four of: agent reply, customer reply, internal note, assignment, tag change,
//! pending, solved), decided by the domain's ticket aggregate, spread over 60 days and
//! interleaved by time as a live store would be; their SLA events are decided by the domain's
//! SLA engine under a business-hours policy, exactly as the `sla` projection would append them
//! (breaches included). Writing them through the API would take most of an hour and measure
//! the command path, which `helpdesk-load` does.
//!
//! Run (Postgres as for the tests; the rebuilds run the release `helpdesk` binary that sits
//! next to this one, so build that first):
//!
//! ```sh
//! cargo build --release -p helpdesk -p helpdesk-tests
//! cargo run --release -p helpdesk-tests --bin rebuild-bench
//! ```
//!
//! Prints a Markdown table for `docs/benchmarks.md`; progress goes to standard error.

#![allow(clippy::unwrap_used, clippy::print_stdout)] // a benchmark tool, not a service

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use cqrs_es::Aggregate;
use helpdesk_domain::sla::{SlaEvent, SlaPolicy, SlaPolicyCommand, TicketSla};
use helpdesk_domain::ticket::{
    AddInteraction, AssignTicket, ChangeTags, Channel, OpenTicket, Priority, Requester, Status,
    Ticket, TicketCommand, Visibility,
};
use helpdesk_domain::{Actor, Role};
use helpdesk_platform::event_log::{self, Cursor};
use serde_json::{Value, json};
use sqlx::PgPool;

const TICKETS: u64 = 200_000;
/// Rows per `INSERT`.
const INSERT_BATCH: usize = 5_000;
/// The history the tickets are spread over, ending now.
const HISTORY_DAYS: i64 = 60;

/// One row of the `events` table.
struct Row {
    aggregate_type: &'static str,
    aggregate_id: String,
    sequence: i64,
    event_type: &'static str,
    event_version: &'static str,
    payload: String,
    metadata: String,
    recorded_at: DateTime<Utc>,
}

fn policy() -> Value {
    json!({
        "name": "Standard", "position": 1,
        "targets": {
            "low": {"first_reply": 480, "resolution": 4800},
            "normal": {"first_reply": 240, "next_reply": 480, "resolution": 2400},
            "high": {"first_reply": 60, "next_reply": 120, "resolution": 960},
            "urgent": {"first_reply": 30, "next_reply": 60, "resolution": 480}
        },
        "calendar": {"kind": "business_hours", "time_zone": "Europe/Berlin",
                     "hours": {"mon": [{"start": "08:00", "end": "18:00"}],
                               "tue": [{"start": "08:00", "end": "18:00"}],
                               "wed": [{"start": "08:00", "end": "18:00"}],
                               "thu": [{"start": "08:00", "end": "18:00"}],
                               "fri": [{"start": "08:00", "end": "17:00"}]},
                     "holidays": ["2026-10-03", "2026-12-25", "2026-12-26"]}
    })
}

fn reply(author: &str, role: Role, visibility: Visibility, n: u64) -> TicketCommand {
    TicketCommand::AddInteraction(AddInteraction {
        interaction_id: format!("i-{n}"),
        author: Actor::new(author, role),
        visibility,
        body: format!(
            "Reply {n}: the invoice for order {} was charged twice",
            n * 7
        ),
    })
}

/// The four follow-ups of ticket `n`, varied by `n`.
fn follow_ups(n: u64) -> [TicketCommand; 4] {
    let agent = format!("agent-{}", n % 60);
    let customer = format!("customer-{}", n % 5_000);
    let assign = TicketCommand::Assign(AssignTicket {
        assignee: Some(Some(agent.clone())),
        group: Some(Some(format!("group-{}", n % 12))),
    });
    let tags = TicketCommand::ChangeTags(ChangeTags {
        add: vec![format!("topic-{}", n % 40)],
        remove: vec![],
    });
    let public = reply(&agent, Role::Agent, Visibility::Public, n);
    match n % 4 {
        0 => [
            assign,
            public,
            reply(&customer, Role::Customer, Visibility::Public, n + 1),
            TicketCommand::ChangeStatus { to: Status::Solved },
        ],
        1 => [
            reply(&agent, Role::Agent, Visibility::Internal, n),
            assign,
            public,
            TicketCommand::ChangeStatus {
                to: Status::Pending,
            },
        ],
        2 => [
            tags,
            assign,
            public,
            TicketCommand::ChangeStatus { to: Status::Solved },
        ],
        _ => [
            assign,
            reply(&customer, Role::Customer, Visibility::Public, n + 1),
            tags,
            public,
        ],
    }
}

fn open(n: u64, id: &str) -> TicketCommand {
    const PRIORITIES: [Priority; 4] = [
        Priority::Normal,
        Priority::High,
        Priority::Normal,
        Priority::Urgent,
    ];
    const CHANNELS: [Channel; 3] = [Channel::Email, Channel::Web, Channel::Phone];
    TicketCommand::Open(OpenTicket {
        ticket_id: id.to_owned(),
        subject: format!("Order {} arrived damaged", n * 13 % 100_003),
        description: format!(
            "Ticket {n}: the parcel was crushed and item {} is missing",
            n % 977
        ),
        priority: if n % 10 == 9 {
            Priority::Low
        } else {
            PRIORITIES[(n % 4) as usize]
        },
        channel: CHANNELS[(n % 3) as usize],
        requester: Requester {
            customer_id: format!("customer-{}", n % 5_000),
            name: Some(format!("Customer {}", n % 5_000)),
            email: Some(format!("customer{}@example.com", n % 5_000)),
        },
        tags: vec![format!("region-{}", n % 7)],
        group: None,
    })
}

fn metadata(actor: &str, role: &str, command: &str, extra: &[(&str, String)]) -> String {
    let mut value = json!({
        "actor_id": actor, "actor_role": role, "command": command,
        "correlation_id": "rebuild-bench", "causation_id": "rebuild-bench",
    });
    for (key, text) in extra {
        value[*key] = Value::String(text.clone());
    }
    value.to_string()
}

/// One ticket's events and the SLA events the projection would have appended for them.
fn ticket_rows(
    n: u64,
    opened_at: DateTime<Utc>,
    now: DateTime<Utc>,
    policies: &[(
        helpdesk_domain::sla::PolicyRef,
        helpdesk_domain::sla::SlaPolicyDefinition,
    )],
    rows: &mut Vec<Row>,
) {
    let id = uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 | u128::from(n))
        .to_string();
    let mut ticket = Ticket::default();
    let mut sla = TicketSla::default();
    let mut sequence = 0i64;
    let mut sla_sequence = 0i64;
    let mut push_sla = |events: Vec<SlaEvent>, at, ticket_sequence: i64, rows: &mut Vec<Row>| {
        for event in events {
            sla_sequence += 1;
            rows.push(Row {
                aggregate_type: "TicketSla",
                aggregate_id: id.clone(),
                sequence: sla_sequence,
                event_type: event.event_type(),
                event_version: SlaEvent::EVENT_VERSION,
                payload: serde_json::to_string(&event).unwrap(),
                metadata: metadata(
                    "sla",
                    "system",
                    "sla_projection",
                    &[("ticket_sequence", ticket_sequence.to_string())],
                ),
                recorded_at: at,
            });
        }
    };
    let commands = std::iter::once(open(n, &id)).chain(follow_ups(n));
    // Follow-ups 20 minutes to 3 days apart, never in the future.
    let mut at = opened_at;
    for (step, command) in commands.enumerate() {
        if step > 0 {
            let gap = 20 + (n * 7919 + step as u64 * 104_729) % (3 * 24 * 60);
            at = (at + TimeDelta::minutes(gap as i64)).min(now);
        }
        let name = command.name();
        for event in ticket.decide(command).unwrap() {
            sequence += 1;
            let decided = sla.on_ticket_event(&event, at, policies).unwrap();
            rows.push(Row {
                aggregate_type: "Ticket",
                aggregate_id: id.clone(),
                sequence,
                event_type: event.name(),
                event_version: event.version(),
                // Externally tagged (`{"TicketOpened": {…}}`), as cqrs-es stores it.
                payload: serde_json::to_string(&event).unwrap(),
                metadata: metadata("agent-1", "agent", name, &[]),
                recorded_at: at,
            });
            push_sla(decided, at, sequence, rows);
            ticket.apply(event);
        }
    }
    // What the breach watcher would have appended since the last event.
    let breaches = sla.due_breaches(now);
    for breach in &breaches {
        sla.apply(breach);
    }
    let last = breaches.iter().map(SlaEvent::at).max().unwrap_or(at);
    push_sla(breaches, last, sequence, rows);
}

async fn insert(pool: &PgPool, rows: &[Row]) {
    let mut types = Vec::with_capacity(rows.len());
    let mut ids = Vec::with_capacity(rows.len());
    let mut sequences = Vec::with_capacity(rows.len());
    let mut event_types = Vec::with_capacity(rows.len());
    let mut versions = Vec::with_capacity(rows.len());
    let mut payloads = Vec::with_capacity(rows.len());
    let mut metadatas = Vec::with_capacity(rows.len());
    let mut recorded = Vec::with_capacity(rows.len());
    for row in rows {
        types.push(row.aggregate_type);
        ids.push(row.aggregate_id.as_str());
        sequences.push(row.sequence);
        event_types.push(row.event_type);
        versions.push(row.event_version);
        payloads.push(row.payload.as_str());
        metadatas.push(row.metadata.as_str());
        recorded.push(row.recorded_at);
    }
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
             payload, metadata, recorded_at) \
         SELECT t, i, s, e, v, p::json, m::json, r \
           FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[], $6::text[], \
                       $7::text[], $8::timestamptz[]) WITH ORDINALITY AS x(t, i, s, e, v, p, m, r, o) \
          ORDER BY o",
    )
    .bind(&types)
    .bind(&ids)
    .bind(&sequences)
    .bind(&event_types)
    .bind(&versions)
    .bind(&payloads)
    .bind(&metadatas)
    .bind(&recorded)
    .execute(pool)
    .await
    .unwrap();
}

async fn generate(pool: &PgPool) -> (i64, i64) {
    let now = Utc::now();
    let definition = serde_json::from_value(policy()).unwrap();
    let created = SlaPolicy::default()
        .decide(SlaPolicyCommand::Create {
            policy_id: "standard".into(),
            definition,
        })
        .unwrap();
    for (n, event) in created.iter().enumerate() {
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                 event_version, payload, metadata, recorded_at) \
             VALUES ('SlaPolicy', 'standard', $1, $2, $3, $4, $5, $6)",
        )
        .bind(n as i64 + 1)
        .bind(event.name())
        .bind(event.version())
        .bind(serde_json::to_value(event).unwrap())
        .bind(json!({"actor_id": "admin-1", "actor_role": "admin", "command": "create_sla_policy"}))
        .bind(now - TimeDelta::days(HISTORY_DAYS + 1))
        .execute(pool)
        .await
        .unwrap();
    }
    let policies = helpdesk_projections::sla::policies::current_policies(pool)
        .await
        .unwrap();
    let start = now - TimeDelta::days(HISTORY_DAYS);
    let spacing = TimeDelta::days(HISTORY_DAYS).num_milliseconds() / TICKETS as i64;
    let mut rows = Vec::new();
    for n in 0..TICKETS {
        let opened_at = start + TimeDelta::milliseconds(spacing * n as i64);
        ticket_rows(n, opened_at, now, &policies, &mut rows);
    }
    // A live store interleaves tickets by time; each aggregate's own order is kept.
    rows.sort_by_key(|row| row.recorded_at);
    let ticket_events = rows.iter().filter(|r| r.aggregate_type == "Ticket").count() as i64;
    let sla_events = rows.len() as i64 - ticket_events;
    for (done, chunk) in rows.chunks(INSERT_BATCH).enumerate() {
        insert(pool, chunk).await;
        if done % 40 == 0 {
            eprintln!("inserted {} of {} events", done * INSERT_BATCH, rows.len());
        }
    }
    (ticket_events, sla_events)
}

/// Reads every event in store order the way the search rebuild does (batches of 2,000 rows,
/// payloads as stored text), parsing nothing and doing nothing with them; returns events/s.
async fn raw_read(pool: &PgPool) -> (u64, Duration) {
    let started = Instant::now();
    let mut cursor = Cursor::default();
    let mut events = 0u64;
    loop {
        let batch = event_log::next_replay_batch(pool, cursor, 2_000)
            .await
            .unwrap();
        let Some(last) = batch.last() else {
            break;
        };
        cursor = last.cursor();
        events += batch.len() as u64;
    }
    (events, started.elapsed())
}

/// Runs `helpdesk projections rebuild <name>` against the scratch database; its wall time.
fn rebuild(
    binary: &std::path::Path,
    database: &str,
    data_dir: &std::path::Path,
    name: &str,
) -> std::process::Child {
    std::process::Command::new(binary)
        .args(["projections", "rebuild", name])
        .env("DATABASE_URL", database)
        .env("HELPDESK_DATA_DIR", data_dir)
        .env(
            "HELPDESK_NATS_PREFIX",
            format!("rebuild-bench-{}", std::process::id()),
        )
        .env("HELPDESK_LOG_FORMAT", "json")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

fn wait(mut child: std::process::Child, what: &str) {
    let status = child.wait().unwrap();
    assert!(status.success(), "{what} failed: {status}");
}

fn timed(f: impl FnOnce()) -> Duration {
    let started = Instant::now();
    f();
    started.elapsed()
}

#[tokio::main]
async fn main() {
    let binary = helpdesk_tests::load::server::release_binary();
    let database =
        helpdesk_platform::db::create_scratch_database(&helpdesk_tests::postgres_server_url())
            .await
            .unwrap();
    let pool = helpdesk_platform::db::connect(&database, 4).await.unwrap();
    let started = Instant::now();
    let (ticket_events, sla_events) = generate(&pool).await;
    let generated = started.elapsed();
    sqlx::query("VACUUM ANALYZE events")
        .execute(&pool)
        .await
        .unwrap();
    // Flush the 2.5 GB just written now, so the checkpoint that would otherwise follow does
    // not write it out under the first measurement (needs a superuser, as the tests' role is).
    if let Err(error) = sqlx::query("CHECKPOINT").execute(&pool).await {
        eprintln!("CHECKPOINT refused ({error}); the first rebuild may share the disk with it");
    }
    let total = ticket_events + sla_events + 1;
    eprintln!(
        "{ticket_events} ticket events and {sla_events} SLA events of {TICKETS} tickets \
         written in {:.0} s",
        generated.as_secs_f64()
    );

    // Twice: the first read warms the cache the rebuilds then find warm too.
    raw_read(&pool).await;
    let (read, read_time) = raw_read(&pool).await;
    assert_eq!(read as i64, total, "the raw read saw every event");
    let data = tempfile::tempdir().unwrap();
    let url = database.expose().to_owned();
    let search = timed(|| wait(rebuild(&binary, &url, data.path(), "search"), "search"));
    let sla = timed(|| wait(rebuild(&binary, &url, data.path(), "sla"), "sla"));
    // The SLA rebuild leaves the tables' old rows dead; vacuum them now, so that autovacuum
    // does not do it under the next measurement.
    sqlx::query("VACUUM sla_state, sla_metric, sla_report_counts")
        .execute(&pool)
        .await
        .unwrap();
    let both = timed(|| {
        let search = rebuild(&binary, &url, data.path(), "search");
        let sla = rebuild(&binary, &url, data.path(), "sla");
        wait(search, "search");
        wait(sla, "sla");
    });
    let rate = |events: i64, time: Duration| events as f64 / time.as_secs_f64();
    let raw = rate(total, read_time);
    println!(
        "Store: {ticket_events} ticket events + {sla_events} SLA events + 1 policy event = \
         {total}, {TICKETS} tickets (generated in {:.0} s).\n",
        generated.as_secs_f64()
    );
    println!("| rebuild | events | wall time (s) | events/s | raw read events/s | ratio |");
    println!("|---|---|---|---|---|---|");
    for (what, time) in [
        ("search (tantivy)", search),
        ("sla", sla),
        ("search and sla at once", both),
    ] {
        let ours = rate(total, time);
        println!(
            "| {what} | {total} | {:.1} | {ours:.0} | {raw:.0} | {:.2} |",
            time.as_secs_f64(),
            ours / raw
        );
    }
    println!(
        "| raw sequential read (`event_log::next_replay_batch`, 2,000 per batch) | {total} | {:.1} | \
         {raw:.0} | {raw:.0} | 1.00 |",
        read_time.as_secs_f64()
    );
    pool.close().await;
}

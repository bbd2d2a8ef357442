//! The `sla` projection and the breach watcher on the real relay, runtime, Postgres and NATS:
//! breaches recorded once by competing watchers, a rebuild that replays the stored SLA events
//! into the same rows and counts, and duplicated or reordered ticket events deciding each SLA
//! event once.
//!
//! The first two run on the real clock with one-minute targets (the smallest a policy allows),
//! so each takes a little over a minute; they run side by side. Backdating `recorded_at` in
//! SQL would be faster, but it would test a history the store could not have written, and not
//! the watcher waking up on time.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use helpdesk_domain::sla::{
    SlaPolicy, SlaPolicyCommand, SlaPolicyDefinition, SlaPolicyEvent, SlaPolicyUpdated,
};
use helpdesk_domain::ticket::{
    AddInteraction, AssignTicket, Channel, OpenTicket, Priority, Requester, Status, TicketCommand,
    Visibility,
};
use helpdesk_domain::{Actor, Role};
use helpdesk_projections::runtime::{self, RuntimeSettings};
use helpdesk_projections::sla::{self, BreachWatcher, CountFolder, SlaProjection};
use helpdesk_projections::{Applied, Projection};
use helpdesk_schemas::EventEnvelope;
use serde_json::{Value, json};
use sqlx::PgPool;
use support::Harness;

/// Stores version 1 of a policy as the `SlaPolicy` aggregate would (decided by the domain,
/// appended as its first event).
async fn create_policy(pool: &PgPool, id: &str, definition: Value) {
    let definition: SlaPolicyDefinition = serde_json::from_value(definition).unwrap();
    let events = SlaPolicy::default()
        .decide(SlaPolicyCommand::Create {
            policy_id: id.into(),
            definition,
        })
        .unwrap();
    for (n, event) in events.iter().enumerate() {
        append_policy_event(pool, id, n as i64 + 1, event).await;
    }
}

/// Stores a new version of a policy.
async fn update_policy(pool: &PgPool, id: &str, version: i64, definition: Value) {
    let definition: SlaPolicyDefinition = serde_json::from_value(definition).unwrap();
    let event = SlaPolicyEvent::SlaPolicyUpdated(SlaPolicyUpdated { definition });
    append_policy_event(pool, id, version, &event).await;
}

async fn append_policy_event(pool: &PgPool, id: &str, sequence: i64, event: &SlaPolicyEvent) {
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
             event_version, payload, metadata) \
         VALUES ('SlaPolicy', $1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(sequence)
    .bind(event.name())
    .bind(event.version())
    .bind(serde_json::to_value(event).unwrap())
    .bind(json!({"actor_id": "admin-1", "actor_role": "admin", "command": "sla_policy"}))
    .execute(pool)
    .await
    .unwrap();
}

fn open(id: &str, priority: Priority) -> TicketCommand {
    TicketCommand::Open(OpenTicket {
        ticket_id: id.to_owned(),
        subject: "Printer on fire".into(),
        description: "Help".into(),
        priority,
        channel: Channel::Email,
        requester: Requester {
            customer_id: "cust-1".into(),
            name: None,
            email: None,
        },
        tags: vec![],
        group: None,
    })
}

fn reply(role: Role, visibility: Visibility) -> TicketCommand {
    let id = if role == Role::Customer {
        "cust-1"
    } else {
        "agent-1"
    };
    TicketCommand::AddInteraction(AddInteraction {
        interaction_id: uuid::Uuid::now_v7().to_string(),
        author: Actor::new(id, role),
        visibility,
        body: "…".into(),
    })
}

fn agent_reply() -> TicketCommand {
    reply(Role::Agent, Visibility::Public)
}

fn status(to: Status) -> TicketCommand {
    TicketCommand::ChangeStatus { to }
}

fn priority(to: Priority) -> TicketCommand {
    TicketCommand::ChangePriority { to }
}

/// Starts the relay, the `sla` projection's consumer and a report counts' folder (which folds
/// while the projection writes; the tests compare counts folded or not).
fn start_pipeline(harness: &Harness) -> Vec<tokio::task::JoinHandle<()>> {
    let mut settings = RuntimeSettings::new(harness.prefix.clone());
    settings.retry_delay = Duration::from_millis(20);
    let projection = Arc::new(SlaProjection::new(harness.pool.clone()));
    vec![
        harness.start_relay(),
        tokio::spawn(runtime::run(harness.nats(), projection, settings)),
        tokio::spawn(CountFolder::new(harness.pool.clone()).run()),
    ]
}

/// Waits (up to `within`) until `sql` returns true.
async fn wait_for(pool: &PgPool, sql: &str, within: Duration, what: &str) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let done: bool = sqlx::query_scalar(sql).fetch_one(pool).await.unwrap();
        if done {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the projection has applied every ticket event in the store.
async fn wait_until_projected(pool: &PgPool) {
    wait_for(
        pool,
        "SELECT NOT EXISTS (SELECT 1 FROM (SELECT aggregate_id, max(sequence) AS version \
            FROM events WHERE aggregate_type = 'Ticket' GROUP BY aggregate_id) e \
          LEFT JOIN sla_state s ON s.ticket_id = e.aggregate_id \
          WHERE s.last_sequence IS DISTINCT FROM e.version)",
        Duration::from_secs(30),
        "every ticket event projected",
    )
    .await;
}

async fn count_events(pool: &PgPool, event_type: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_type = 'TicketSla' AND event_type = $1",
    )
    .bind(event_type)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unanswered_ticket_is_breached_once_by_two_watchers_within_five_seconds_of_its_due_time()
{
    // Given a one-minute first reply target around the clock, the pipeline and two watchers
    let harness = Harness::start().await;
    create_policy(
        &harness.pool,
        "one-minute",
        json!({"name": "One minute", "position": 1,
               "targets": {"normal": {"first_reply": 1}},
               "calendar": {"kind": "always"}}),
    )
    .await;
    let mut tasks = start_pipeline(&harness);
    for _ in 0..2 {
        tasks.push(tokio::spawn(BreachWatcher::new(harness.pool.clone()).run()));
    }

    // When a ticket is opened and nobody answers
    let ticket = uuid::Uuid::now_v7().to_string();
    harness
        .command(&ticket, open(&ticket, Priority::Normal))
        .await;
    wait_until_projected(&harness.pool).await;
    let due_at: DateTime<Utc> = sqlx::query_scalar(
        "SELECT due_at FROM sla_metric WHERE ticket_id = $1 AND metric = 'first_reply'",
    )
    .bind(&ticket)
    .fetch_one(&harness.pool)
    .await
    .unwrap();

    // Then exactly one breach is recorded, dated at the due instant, within 5 s of it
    wait_for(
        &harness.pool,
        "SELECT EXISTS (SELECT 1 FROM events WHERE aggregate_type = 'TicketSla' \
                          AND event_type = 'SlaBreached')",
        Duration::from_secs(90),
        "a breach recorded",
    )
    .await;
    let (payload, recorded_at): (Value, DateTime<Utc>) = sqlx::query_as(
        "SELECT payload::jsonb, recorded_at FROM events \
          WHERE aggregate_type = 'TicketSla' AND event_type = 'SlaBreached'",
    )
    .fetch_one(&harness.pool)
    .await
    .unwrap();
    assert_eq!(payload["metric"], "first_reply");
    assert_eq!(
        payload["at"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap(),
        due_at
    );
    let late = recorded_at - due_at;
    assert!(
        late <= chrono::TimeDelta::seconds(5),
        "recorded {late} after the due instant"
    );

    // And two more watchers sweeping side by side, again and again, find nothing left to record
    let (a, b) = (
        BreachWatcher::new(harness.pool.clone()),
        BreachWatcher::new(harness.pool.clone()),
    );
    for _ in 0..20 {
        let (left, right) = tokio::join!(a.sweep(), b.sweep());
        assert_eq!(left.unwrap().recorded + right.unwrap().recorded, 0);
    }
    assert_eq!(count_events(&harness.pool, "SlaBreached").await, 1);
    let row: (String, DateTime<Utc>) = sqlx::query_as(
        "SELECT outcome, breached_at FROM sla_metric WHERE ticket_id = $1 AND metric = 'first_reply'",
    )
    .bind(&ticket)
    .fetch_one(&harness.pool)
    .await
    .unwrap();
    assert_eq!(row, ("breached".to_owned(), due_at));
    for task in tasks {
        task.abort();
    }
    harness.delete_streams().await;
}

/// The whole SLA read model as JSON rows, in key order.
async fn snapshot(pool: &PgPool) -> Vec<Vec<Value>> {
    let mut tables = Vec::new();
    for sql in [
        "SELECT to_jsonb(s) FROM sla_state s ORDER BY ticket_id",
        "SELECT to_jsonb(m) FROM sla_metric m ORDER BY ticket_id, metric, activation",
        sla::store::CURRENT_COUNTS,
    ] {
        tables.push(sqlx::query_scalar(sql).fetch_all(pool).await.unwrap());
    }
    tables
}

/// Tickets with varied histories; each script is run in two phases with the breaches of
/// one-minute targets in between.
fn scripts() -> Vec<(Priority, Vec<TicketCommand>, Vec<TicketCommand>)> {
    let vip = TicketCommand::Assign(AssignTicket {
        assignee: Some(Some("agent-2".into())),
        group: Some(Some("vip".into())),
    });
    vec![
        // answered at once; the customer's follow-up waits past its target
        (
            Priority::Normal,
            vec![agent_reply(), reply(Role::Customer, Visibility::Public)],
            vec![agent_reply(), status(Status::Solved)],
        ),
        // nobody answers in time; an internal note does not count
        (
            Priority::Normal,
            vec![reply(Role::Agent, Visibility::Internal)],
            vec![agent_reply()],
        ),
        // parked as pending (paused), then worked
        (
            Priority::Normal,
            vec![status(Status::Pending)],
            vec![status(Status::Open), agent_reply()],
        ),
        // urgent, lowered to a priority without targets (withdrawn), raised again
        (
            Priority::Urgent,
            vec![priority(Priority::Low)],
            vec![priority(Priority::High), agent_reply()],
        ),
        // moved to the VIP group (retargeted), answered, solved and reopened
        (
            Priority::Normal,
            vec![
                vip,
                agent_reply(),
                status(Status::Solved),
                status(Status::Open),
            ],
            vec![
                reply(Role::Customer, Visibility::Public),
                status(Status::Solved),
            ],
        ),
        // solved on first touch, reopened later
        (
            Priority::Normal,
            vec![status(Status::Solved)],
            vec![status(Status::Open)],
        ),
        // a customer writes before any answer; on hold for a while
        (
            Priority::High,
            vec![
                reply(Role::Customer, Visibility::Public),
                status(Status::OnHold),
            ],
            vec![status(Status::Open), agent_reply()],
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebuild_replays_the_stored_sla_events_into_identical_rows_and_counts() {
    // Given two policies (the VIP group's wins), the pipeline and a watcher
    let harness = Harness::start().await;
    create_policy(
        &harness.pool,
        "standard",
        json!({"name": "Standard", "position": 10,
               "targets": {
                   "normal": {"first_reply": 1, "next_reply": 1, "resolution": 2},
                   "high": {"first_reply": 60, "next_reply": 60, "resolution": 600},
                   "urgent": {"first_reply": 1, "resolution": 3}},
               "calendar": {"kind": "always"}}),
    )
    .await;
    create_policy(
        &harness.pool,
        "vip",
        json!({"name": "VIP", "position": 1, "applies_to": {"groups": ["vip"]},
               "targets": {"normal": {"first_reply": 30, "resolution": 600}},
               "calendar": {"kind": "always"}, "pause_statuses": ["on_hold"]}),
    )
    .await;
    let mut tasks = start_pipeline(&harness);
    tasks.push(tokio::spawn(BreachWatcher::new(harness.pool.clone()).run()));

    // When varied tickets are worked, some targets pass, and they are worked some more
    let scripts = scripts();
    let mut tickets = Vec::new();
    for (priority, first, _) in &scripts {
        let id = uuid::Uuid::now_v7().to_string();
        harness.command(&id, open(&id, *priority)).await;
        for command in first {
            harness.command(&id, command.clone()).await;
        }
        tickets.push(id);
    }
    wait_for(
        &harness.pool,
        "SELECT count(*) >= 2 FROM events WHERE event_type = 'SlaBreached'",
        Duration::from_secs(120),
        "the one-minute targets breached",
    )
    .await;
    for (id, (_, _, second)) in tickets.iter().zip(&scripts) {
        for command in second {
            harness.command(id, command.clone()).await;
        }
    }
    wait_until_projected(&harness.pool).await;
    for task in tasks {
        task.abort();
        let _ = task.await;
    }
    let types: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT event_type FROM events WHERE aggregate_type = 'TicketSla' ORDER BY 1",
    )
    .fetch_all(&harness.pool)
    .await
    .unwrap();
    assert_eq!(
        types,
        [
            "SlaBreached",
            "SlaMetricActivated",
            "SlaMetricFulfilled",
            "SlaMetricPaused",
            "SlaMetricResumed",
            "SlaMetricRetargeted",
            "SlaMetricWithdrawn"
        ],
        "the scenario exercises every kind of SLA event"
    );
    let live = snapshot(&harness.pool).await;
    let stored = harness.event_count().await;

    // Then a rebuild appends nothing and leaves every row and count as the live path did
    let rebuilt = sla::rebuild::rebuild(&harness.pool, |_| {}).await.unwrap();
    assert_eq!(rebuilt.tickets, tickets.len() as u64);
    assert_eq!(harness.event_count().await, stored);
    let replayed = snapshot(&harness.pool).await;
    assert_eq!(replayed[0], live[0], "sla_state");
    assert_eq!(replayed[1], live[1], "sla_metric");
    assert_eq!(replayed[2], live[2], "sla_report_counts");
    assert!(!live[2].is_empty());

    // And so does a rebuild reading two tickets at a time, whose chunks are read, replayed
    // and written at once
    let rebuilt = sla::rebuild::rebuild_in_chunks(&harness.pool, 2, |_| {})
        .await
        .unwrap();
    assert_eq!(rebuilt.tickets, tickets.len() as u64);
    assert_eq!(
        snapshot(&harness.pool).await,
        live,
        "rebuilt two tickets at a time"
    );

    // And a ticket whose `sla_state` row was lost is replayed up to the last ticket event its
    // stored SLA events name (here its last one), so it comes back as it was
    let lost: String = sqlx::query_scalar(
        "SELECT s.ticket_id FROM sla_state s \
           JOIN (SELECT aggregate_id, max((metadata ->> 'ticket_sequence')::bigint) AS named \
                   FROM events WHERE aggregate_type = 'TicketSla' GROUP BY aggregate_id) e \
             ON e.aggregate_id = s.ticket_id \
          WHERE e.named = s.last_sequence \
          ORDER BY s.ticket_id LIMIT 1",
    )
    .fetch_one(&harness.pool)
    .await
    .unwrap();
    sqlx::query("DELETE FROM sla_state WHERE ticket_id = $1")
        .bind(&lost)
        .execute(&harness.pool)
        .await
        .unwrap();
    let rebuilt = sla::rebuild::rebuild(&harness.pool, |_| {}).await.unwrap();
    assert_eq!(rebuilt.tickets, tickets.len() as u64, "{lost} replayed");
    assert_eq!(
        snapshot(&harness.pool).await,
        live,
        "rebuilt without {lost}'s state row"
    );
    harness.delete_streams().await;
}

/// The SLA tables as the catalog describes them: columns, constraints, indexes and storage
/// parameters, by table.
async fn sla_catalog(pool: &PgPool) -> Value {
    sqlx::query_scalar(
        "SELECT jsonb_agg(jsonb_build_object( \
             'table', c.relname, 'schema', c.relnamespace::regnamespace::text, \
             'options', c.reloptions, 'persistence', c.relpersistence, \
             'columns', (SELECT jsonb_agg(jsonb_build_array(a.attname, \
                                format_type(a.atttypid, a.atttypmod), a.attnotnull, \
                                pg_get_expr(d.adbin, d.adrelid)) ORDER BY a.attnum) \
                           FROM pg_attribute a \
                           LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
                          WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), \
             'constraints', (SELECT jsonb_agg(jsonb_build_array(conname, \
                                    pg_get_constraintdef(oid)) ORDER BY conname) \
                               FROM pg_constraint WHERE conrelid = c.oid), \
             'indexes', (SELECT jsonb_agg(pg_get_indexdef(indexrelid) \
                                ORDER BY pg_get_indexdef(indexrelid)) \
                           FROM pg_index WHERE indrelid = c.oid)) ORDER BY c.relname) \
           FROM pg_class c \
          WHERE c.relname IN ('sla_state', 'sla_metric', 'sla_report_counts') \
            AND c.relkind = 'r'",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Waits until a statement starting with `prefix` waits for a lock.
async fn wait_until_waiting_for_a_lock(pool: &PgPool, prefix: &str, what: &str) {
    let sql = format!(
        "SELECT EXISTS (SELECT 1 FROM pg_stat_activity \
          WHERE datname = current_database() AND wait_event_type = 'Lock' \
            AND query LIKE '{prefix}%')"
    );
    wait_for(pool, &sql, Duration::from_secs(30), what).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebuild_swaps_in_whole_tables_with_the_same_definition_past_readers_and_writers() {
    // Given tickets projected under a policy
    let harness = Harness::start().await;
    let pool = &harness.pool;
    let envelopes = answered_and_solved_tickets(&harness, 3).await;
    let projection = SlaProjection::new(pool.clone());
    for outcome in projection.apply_batch(&envelopes).await {
        outcome.unwrap();
    }
    // one of them unlogged, and with extended statistics (which the swap does not carry over)
    for setup in [
        "ALTER TABLE sla_metric SET UNLOGGED",
        "CREATE STATISTICS sla_metric_dims ON priority, channel FROM sla_metric",
    ] {
        sqlx::query(setup).execute(pool).await.unwrap();
    }
    let live = snapshot(pool).await;
    let catalog = sla_catalog(pool).await;
    let indexes: usize = catalog
        .as_array()
        .unwrap()
        .iter()
        .map(|table| table["indexes"].as_array().unwrap().len())
        .sum();
    assert_eq!(indexes, 6, "{catalog:#}");
    let ticket = live[0][0]["ticket_id"].as_str().unwrap().to_owned();
    // a report in a transaction of its own, holding the metric rows it read
    let mut report = pool.begin().await.unwrap();
    let count_rows = "SELECT count(*) FROM sla_metric";
    let rows: i64 = sqlx::query_scalar(count_rows)
        .fetch_one(&mut *report)
        .await
        .unwrap();
    // and a writer whose statement is prepared against the live table
    let mut writer = pool.acquire().await.unwrap();
    let reassign = "UPDATE sla_state SET assignee = $2 WHERE ticket_id = $1";
    sqlx::query(reassign)
        .bind(&ticket)
        .bind(live[0][0]["assignee"].as_str())
        .execute(&mut *writer)
        .await
        .unwrap();

    // When a rebuild runs, reaches the swap while the report still reads, and the writer
    // comes in behind it
    let rebuilding = tokio::spawn({
        let pool = pool.clone();
        async move { sla::rebuild::rebuild(&pool, |_| {}).await }
    });
    wait_until_waiting_for_a_lock(pool, "LOCK TABLE", "the rebuild waiting to swap").await;
    let reread: i64 = sqlx::query_scalar(count_rows)
        .fetch_one(&mut *report)
        .await
        .unwrap();
    let writing = tokio::spawn({
        let ticket = ticket.clone();
        async move {
            sqlx::query(reassign)
                .bind(&ticket)
                .bind("agent-after-rebuild")
                .execute(&mut *writer)
                .await
                .map(|done| done.rows_affected())
        }
    });
    wait_until_waiting_for_a_lock(pool, "UPDATE sla_state", "the writer waiting").await;
    report.commit().await.unwrap();

    // Then the report read the old rows throughout, the rebuild swapped, the writer's update
    // went into the new table, and the tables are defined as before
    assert_eq!(reread, rows);
    let rebuilt = rebuilding.await.unwrap().unwrap();
    assert_eq!(rebuilt.tickets, 3);
    assert_eq!(writing.await.unwrap().unwrap(), 1);
    let after = snapshot(pool).await;
    assert_eq!(after[1], live[1], "sla_metric");
    assert_eq!(after[2], live[2], "sla_report_counts");
    let mut expected = live[0].clone();
    expected[0]["assignee"] = json!("agent-after-rebuild");
    assert_eq!(after[0], expected, "sla_state");
    assert_eq!(sla_catalog(pool).await, catalog);
    let leftover: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'sla_rebuild')",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert!(!leftover, "the copies' schema is gone");
}

#[tokio::test]
async fn duplicated_and_reordered_ticket_events_decide_each_sla_event_once() {
    // Given tickets opened and answered under a policy, their events read back from the store
    let harness = Harness::start().await;
    let envelopes = answered_and_solved_tickets(&harness, 5).await;

    // When every event arrives twice, newest first (gaps retried in later rounds)
    let projection = SlaProjection::new(harness.pool.clone());
    let mut pending: Vec<_> = envelopes.iter().chain(envelopes.iter()).rev().collect();
    for round in 0.. {
        assert!(round < 20, "reordered events never converged");
        let mut later = Vec::new();
        for envelope in pending {
            match projection.apply(envelope).await {
                Ok(_) => {}
                Err(helpdesk_projections::ProjectionError::Gap { .. }) => later.push(envelope),
                Err(other) => panic!("{other}"),
            }
        }
        if later.is_empty() {
            break;
        }
        pending = later;
    }

    // Then each ticket has its SLA events once, in one gap-free sequence
    assert_every_ticket_measured_once(&harness.pool, 5).await;
}

#[tokio::test]
async fn a_lane_batch_is_applied_together_and_a_redelivery_inside_one_falls_back_to_single_events()
{
    // Given three tickets opened, answered and solved under a policy, their ticket events read
    // back from the store in commit order
    let harness = Harness::start().await;
    let envelopes = ticket_events_of_three_tickets(&harness).await;
    let projection = SlaProjection::new(harness.pool.clone());

    // When the first five arrive as one batch, then the last six (two of them again)
    let first = projection.apply_batch(&envelopes[..5]).await;
    let second = projection.apply_batch(&envelopes[3..]).await;

    // Then the first batch is applied whole, and the second tells the redeliveries apart
    assert!(
        first.iter().all(|o| o == &Ok(Applied::Applied)),
        "{first:?}"
    );
    let second: Vec<Applied> = second.into_iter().map(Result::unwrap).collect();
    assert_eq!(
        second,
        [
            Applied::Duplicate,
            Applied::Duplicate,
            Applied::Applied,
            Applied::Applied,
            Applied::Applied,
            Applied::Applied
        ]
    );
    // and each ticket has its SLA events once: both metrics activated and fulfilled
    assert_every_ticket_measured_once(&harness.pool, 3).await;
}

#[tokio::test]
async fn a_lane_batch_with_the_projections_own_sla_events_among_its_ticket_events_is_one_transaction()
 {
    // Given three tickets opened, answered and solved under a policy, and the first one's
    // events already applied, so that its SLA events are in the store
    let harness = Harness::start().await;
    let tickets = ticket_events_of_three_tickets(&harness).await;
    let projection = SlaProjection::new(harness.pool.clone());
    let first = projection.apply_batch(&tickets[..3]).await;
    assert!(
        first.iter().all(|o| o == &Ok(Applied::Applied)),
        "{first:?}"
    );
    let sla_events: Vec<_> = harness
        .committed_envelopes()
        .await
        .into_iter()
        .filter(|envelope| envelope.aggregate_type == sla::store::AGGREGATE_TYPE)
        .collect();
    assert_eq!(sla_events.len(), 4);

    // When the other two tickets' events arrive in one lane batch with those SLA events
    // between them, as the stream brings the projection's own events back
    let mut batch = Vec::new();
    for (i, ticket_event) in tickets[3..].iter().enumerate() {
        batch.push(ticket_event.clone());
        if let Some(sla_event) = sla_events.get(i) {
            batch.push(sla_event.clone());
        }
    }
    let outcomes: Vec<Applied> = projection
        .apply_batch(&batch)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();

    // Then the ticket events are applied and the SLA events ignored, in the batch's order
    let expected: Vec<Applied> = batch
        .iter()
        .map(|e| match e.aggregate_type.as_str() {
            "Ticket" => Applied::Applied,
            _ => Applied::Duplicate,
        })
        .collect();
    assert_eq!(outcomes, expected);
    // and the two tickets' SLA events were decided in one transaction
    let transactions: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT tx_id::text) FROM events \
          WHERE aggregate_type = 'TicketSla' AND aggregate_id = ANY($1)",
    )
    .bind([
        tickets[3].aggregate_id.clone(),
        tickets[6].aggregate_id.clone(),
    ])
    .fetch_one(&harness.pool)
    .await
    .unwrap();
    assert_eq!(transactions, 1);
    assert_every_ticket_measured_once(&harness.pool, 3).await;
}

/// Backends of the test's database holding a transaction id.
async fn holding_an_id(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity \
          WHERE datname = current_database() AND backend_xid IS NOT NULL",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// The report counts, one JSON object per row, in key order.
async fn folded_counts(pool: &PgPool) -> Vec<Value> {
    sqlx::query_scalar(
        "SELECT to_jsonb(c) FROM sla_report_counts c \
          ORDER BY metric, dimension, granularity, period, key, outcome, business_minutes",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn unfolded_changes(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM sla_report_count_changes")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_waits_for_its_tickets_without_a_transaction_id_and_never_for_the_report_counts() {
    // Given three tickets opened, answered and solved under a policy (the answers and the
    // solutions change the report counts), their ticket events read back from the store
    let harness = Harness::start().await;
    let pool = &harness.pool;
    let envelopes: Vec<_> = answered_and_solved_tickets(&harness, 3)
        .await
        .into_iter()
        .filter(|envelope| envelope.aggregate_type == "Ticket")
        .collect();
    let projection = SlaProjection::new(pool.clone());
    // one transaction holding the first ticket (as a breach watcher would), another holding
    // the report counts against every writer
    let mut watcher = pool.begin().await.unwrap();
    let state = sla::store::lock(&mut watcher, &envelopes[0].aggregate_id)
        .await
        .unwrap();
    assert!(state.is_none(), "not projected yet");
    let mut counting = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE sla_report_counts IN EXCLUSIVE MODE")
        .execute(&mut *counting)
        .await
        .unwrap();

    // When the projection applies the events as one run
    let applying = tokio::spawn({
        let envelopes = envelopes.clone();
        async move { projection.apply_batch(&envelopes).await }
    });

    // Then it waits for the ticket without a transaction id (nothing in the database holds
    // one, so the relay could publish anything committed)
    wait_until_waiting_for_a_lock(pool, "SELECT (SELECT count(*) FROM pg_advisory", "tickets")
        .await;
    assert_eq!(holding_an_id(pool).await, 0, "waiting for the ticket");
    watcher.commit().await.unwrap();
    // and writes the whole run while the counts are still held: its count changes are
    // appended, not added to the rows every ticket shares
    let outcomes = tokio::time::timeout(Duration::from_secs(30), applying)
        .await
        .expect("the run waited for the report counts")
        .unwrap();
    assert!(
        outcomes.iter().all(|o| o == &Ok(Applied::Applied)),
        "{outcomes:?}"
    );
    assert_every_ticket_measured_once(pool, 3).await;
    let current = snapshot(pool).await.remove(2);
    assert!(!current.is_empty(), "the run changed report counts");
    assert!(folded_counts(pool).await.is_empty(), "nothing folded yet");
    // and once the counts are free, a fold brings them to what the changes say
    counting.commit().await.unwrap();
    let folded = sla::store::fold_count_changes(pool).await.unwrap();
    assert!(folded.changes > 0 && !folded.skipped, "{folded:?}");
    assert_eq!(folded.below_zero, 0);
    assert_eq!(unfolded_changes(pool).await, 0);
    assert_eq!(folded_counts(pool).await, current);
}

#[tokio::test]
async fn a_fold_sums_the_changes_into_the_counts_deletes_rows_at_zero_and_only_one_folds_at_once() {
    let harness = Harness::start().await;
    let pool = &harness.pool;
    let change = |period: &str, minutes: i64, count: i64| {
        format!(
            "('resolution', 'priority', 'day', '{period}', 'normal', 'breached', {minutes}, \
              {count})"
        )
    };
    // Given counts: two breaches still unanswered on 1 March, one answered (30 minutes)
    sqlx::query(&format!(
        "INSERT INTO sla_report_counts VALUES {}, {}",
        change("2026-03-01", -1, 2),
        change("2026-03-01", 30, 1)
    ))
    .execute(pool)
    .await
    .unwrap();
    // and changes appended since: both unanswered breaches answered (one in 30 minutes, one in
    // 45), a breach on 2 March, and a change taken back within the same fold
    sqlx::query(&format!(
        "INSERT INTO sla_report_count_changes VALUES {}, {}, {}, {}, {}, {}, {}",
        change("2026-03-01", -1, -1),
        change("2026-03-01", 30, 1),
        change("2026-03-01", -1, -1),
        change("2026-03-01", 45, 1),
        change("2026-03-02", -1, 1),
        change("2026-03-03", -1, 1),
        change("2026-03-03", -1, -1)
    ))
    .execute(pool)
    .await
    .unwrap();

    // When another folder is folding (it holds the folder's advisory lock), a second skips
    let mut other = pool.begin().await.unwrap();
    let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1, 1)")
        .bind(0x534c_4100_i32)
        .fetch_one(&mut *other)
        .await
        .unwrap();
    assert!(held);
    let skipped = sla::store::fold_count_changes(pool).await.unwrap();
    assert!(skipped.skipped, "{skipped:?}");
    assert_eq!(unfolded_changes(pool).await, 7);
    other.commit().await.unwrap();
    // and once it is done, a fold moves every change
    let folded = sla::store::fold_count_changes(pool).await.unwrap();

    // Then the counts are the sums, the row taken to zero is gone, and no change is left
    assert_eq!(
        folded,
        sla::store::Folded {
            changes: 7,
            counts: 4,
            below_zero: 0,
            skipped: false
        }
    );
    let counts: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT period::text, business_minutes, count FROM sla_report_counts \
          ORDER BY period, business_minutes",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(
        counts,
        vec![
            ("2026-03-01".into(), 30, 2),
            ("2026-03-01".into(), 45, 1),
            ("2026-03-02".into(), -1, 1),
        ]
    );
    assert_eq!(unfolded_changes(pool).await, 0);
    // and a fold with nothing to do changes nothing
    assert_eq!(
        sla::store::fold_count_changes(pool).await.unwrap(),
        sla::store::Folded::default()
    );
}

#[tokio::test]
async fn a_folder_counts_what_it_folds_and_the_rows_it_leaves_below_zero() {
    // Given a change taking back a breach that was never counted
    let harness = Harness::start().await;
    let pool = &harness.pool;
    sqlx::query(
        "INSERT INTO sla_report_count_changes VALUES \
         ('resolution', 'priority', 'day', '2026-03-04', 'normal', 'breached', -1, -1)",
    )
    .execute(pool)
    .await
    .unwrap();
    assert_eq!(sla::store::unfolded_count_changes(pool).await.unwrap(), 1);
    // When a folder runs
    let folder = CountFolder::new(pool.clone());
    let stats = folder.stats();
    let running = tokio::spawn(folder.run());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while stats.folds() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no fold in 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.abort();
    // Then its figures say it folded the one change and left a row below zero
    assert_eq!((stats.changes(), stats.below_zero()), (1, 1));
    assert!(stats.seconds() > 0.0);
    assert_eq!(sla::store::unfolded_count_changes(pool).await.unwrap(), 0);
    let count: i64 = sqlx::query_scalar("SELECT count FROM sla_report_counts")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(count, -1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_policy_created_or_changed_later_reaches_open_tickets_at_once_and_replays_identically() {
    // Given a normal and a low priority ticket opened while no policy exists
    let harness = Harness::start().await;
    let tasks = start_pipeline(&harness);
    let normal = uuid::Uuid::now_v7().to_string();
    let low = uuid::Uuid::now_v7().to_string();
    harness
        .command(&normal, open(&normal, Priority::Normal))
        .await;
    harness.command(&low, open(&low, Priority::Low)).await;
    wait_until_projected(&harness.pool).await;
    assert_eq!(count_events(&harness.pool, "SlaMetricActivated").await, 0);
    let opened_at: DateTime<Utc> = sqlx::query_scalar(
        "SELECT recorded_at FROM events WHERE aggregate_type = 'Ticket' AND aggregate_id = $1 \
            AND sequence = 1",
    )
    .bind(&normal)
    .fetch_one(&harness.pool)
    .await
    .unwrap();

    // When a policy with targets for normal tickets is created, with no further ticket event
    create_policy(
        &harness.pool,
        "late",
        json!({"name": "Late", "position": 1,
               "targets": {"normal": {"first_reply": 60, "resolution": 600}},
               "calendar": {"kind": "always"}}),
    )
    .await;

    // Then the open normal ticket's clocks start from its opening, and only its clocks
    wait_for(
        &harness.pool,
        "SELECT count(*) = 2 FROM events WHERE event_type = 'SlaMetricActivated'",
        Duration::from_secs(30),
        "both targets activated by the policy change",
    )
    .await;
    let activated: Vec<(String, Value, Value)> = sqlx::query_as(
        "SELECT aggregate_id, payload::jsonb, metadata::jsonb FROM events \
          WHERE event_type = 'SlaMetricActivated' ORDER BY sequence",
    )
    .fetch_all(&harness.pool)
    .await
    .unwrap();
    for (ticket, payload, metadata) in &activated {
        assert_eq!(ticket, &normal);
        assert_eq!(metadata["command"], "sla_policy_reapply");
        let started: DateTime<Utc> = serde_json::from_value(payload["started_at"].clone()).unwrap();
        assert_eq!(
            started, opened_at,
            "measured from the opening, not the change"
        );
    }
    let first_due: DateTime<Utc> =
        serde_json::from_value(activated[0].1["due_at"].clone()).unwrap();
    assert_eq!(first_due, opened_at + chrono::Duration::minutes(60));

    // When the first reply target is lowered to 30 minutes
    update_policy(
        &harness.pool,
        "late",
        2,
        json!({"name": "Late", "position": 1,
               "targets": {"normal": {"first_reply": 30, "resolution": 600}},
               "calendar": {"kind": "always"}}),
    )
    .await;

    // Then both running metrics move to version 2, the first reply due from the same start
    wait_for(
        &harness.pool,
        "SELECT count(*) = 2 FROM events WHERE event_type = 'SlaMetricRetargeted'",
        Duration::from_secs(30),
        "both running metrics retargeted to the new policy version",
    )
    .await;
    let retargeted: Value = sqlx::query_scalar(
        "SELECT payload::jsonb FROM events WHERE event_type = 'SlaMetricRetargeted' \
            AND payload->>'metric' = 'first_reply'",
    )
    .fetch_one(&harness.pool)
    .await
    .unwrap();
    assert_eq!(retargeted["metric"], "first_reply");
    assert_eq!(retargeted["policy"]["version"], 2);
    let due: DateTime<Utc> = serde_json::from_value(retargeted["due_at"].clone()).unwrap();
    assert_eq!(due, opened_at + chrono::Duration::minutes(30));
    let due_in_row: DateTime<Utc> = sqlx::query_scalar(
        "SELECT due_at FROM sla_metric WHERE ticket_id = $1 AND metric = 'first_reply'",
    )
    .bind(&normal)
    .fetch_one(&harness.pool)
    .await
    .unwrap();
    assert_eq!(due_in_row, due);
    for task in tasks {
        task.abort();
        let _ = task.await;
    }

    // And the policy event delivered again changes nothing, and a rebuild gives the same rows
    let stored = harness.event_count().await;
    let policy_events: Vec<_> = harness
        .committed_envelopes()
        .await
        .into_iter()
        .filter(|envelope| envelope.aggregate_type == "SlaPolicy")
        .collect();
    assert_eq!(policy_events.len(), 2);
    let projection = SlaProjection::new(harness.pool.clone());
    for envelope in &policy_events {
        projection.apply(envelope).await.unwrap();
    }
    assert_eq!(harness.event_count().await, stored);
    let live = snapshot(&harness.pool).await;
    sla::rebuild::rebuild(&harness.pool, |_| {}).await.unwrap();
    assert_eq!(snapshot(&harness.pool).await, live);
    harness.delete_streams().await;
}

/// `tickets` tickets opened, answered and solved under a 24×7 policy, and every event of the
/// store (the policy's too) in commit order, as no projection has seen them yet.
async fn answered_and_solved_tickets(harness: &Harness, tickets: usize) -> Vec<EventEnvelope> {
    create_policy(
        &harness.pool,
        "standard",
        json!({"name": "Standard", "position": 1,
               "targets": {"normal": {"first_reply": 60, "resolution": 600}},
               "calendar": {"kind": "always"}}),
    )
    .await;
    for _ in 0..tickets {
        let id = uuid::Uuid::now_v7().to_string();
        harness.command(&id, open(&id, Priority::Normal)).await;
        harness.command(&id, agent_reply()).await;
        harness.command(&id, status(Status::Solved)).await;
    }
    harness.committed_envelopes().await
}

/// The ticket events of three tickets of [`answered_and_solved_tickets`], in commit order
/// (three each: opened, answered, solved).
async fn ticket_events_of_three_tickets(harness: &Harness) -> Vec<EventEnvelope> {
    let events: Vec<_> = answered_and_solved_tickets(harness, 3)
        .await
        .into_iter()
        .filter(|envelope| envelope.aggregate_type == "Ticket")
        .collect();
    assert_eq!(events.len(), 9);
    events
}

/// Each of the `tickets` tickets of [`answered_and_solved_tickets`] has its SLA events once, in
/// one gap-free sequence (both metrics activated, then fulfilled), and both were achieved.
async fn assert_every_ticket_measured_once(pool: &PgPool, tickets: usize) {
    let per_ticket: Vec<(String, Vec<String>)> = sqlx::query_as(
        "SELECT aggregate_id, array_agg(event_type ORDER BY sequence) FROM events \
          WHERE aggregate_type = 'TicketSla' GROUP BY aggregate_id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(per_ticket.len(), tickets);
    for (ticket, types) in per_ticket {
        assert_eq!(
            types,
            [
                "SlaMetricActivated",
                "SlaMetricActivated",
                "SlaMetricFulfilled",
                "SlaMetricFulfilled"
            ],
            "{ticket}"
        );
    }
    let achieved: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sla_metric WHERE outcome = 'achieved'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(achieved, 2 * i64::try_from(tickets).unwrap());
}

/// Pages of shared buffers (found there or read in) that a query's execution touched: the top
/// node of its `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)`, planning left out.
fn pages_touched(plan: &Value) -> i64 {
    let top = &plan[0]["Plan"];
    top["Shared Hit Blocks"].as_i64().unwrap() + top["Shared Read Blocks"].as_i64().unwrap()
}

/// `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)` of `sql`.
fn explained(sql: &str) -> String {
    format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}")
}

/// Inserts running clocks straight into `sla_metric` (rows of the read model, for tests of the
/// queries over it): one per row of `clocks`, a FROM item giving `n` (the ticket is
/// `ticket-<n>`), `metric` and `due_at`.
async fn insert_running_clocks(pool: &PgPool, clocks: &str) {
    sqlx::query(&format!(
        "INSERT INTO sla_metric (ticket_id, metric, activation, policy_id, policy_version, \
             target_minutes, started_at, activated_at, due_at, paused, priority, channel) \
         SELECT 'ticket-' || n, metric, 1, 'policy', 1, 60, now(), now(), due_at, false, \
                'normal', 'email' \
           FROM {clocks}"
    ))
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn a_sweep_reads_the_clocks_that_are_due_not_every_running_one() {
    // Given 5,000 running clocks: three of them an hour overdue, the rest due tomorrow
    let harness = Harness::start().await;
    insert_running_clocks(
        &harness.pool,
        "(SELECT n, 'first_reply' AS metric, \
                 now() + CASE WHEN n <= 3 THEN interval '-1 hour' ELSE interval '1 day' END \
                     AS due_at \
            FROM generate_series(1, 5000) n) clocks",
    )
    .await;

    // When the breach watcher asks which clocks are due and when the next one falls due
    let due: Vec<String> = sqlx::query_scalar(sla::watcher::DUE_CLOCKS)
        .bind(1.0_f64)
        .bind(500_i64)
        .fetch_all(&harness.pool)
        .await
        .unwrap();
    let next: Option<f64> = sqlx::query_scalar(sla::watcher::NEXT_DUE)
        .bind(1.0_f64)
        .fetch_optional(&harness.pool)
        .await
        .unwrap();

    // Then it gets the three overdue clocks and an overdue next instant, and each query
    // touches a few pages, not one per running clock
    let mut due = due;
    due.sort();
    assert_eq!(due, ["ticket-1", "ticket-2", "ticket-3"]);
    assert!(next.unwrap() < -3_000.0, "{next:?}");
    let sweep: Value = sqlx::query_scalar(&explained(sla::watcher::DUE_CLOCKS))
        .bind(1.0_f64)
        .bind(500_i64)
        .fetch_one(&harness.pool)
        .await
        .unwrap();
    let next_due: Value = sqlx::query_scalar(&explained(sla::watcher::NEXT_DUE))
        .bind(1.0_f64)
        .fetch_one(&harness.pool)
        .await
        .unwrap();
    let (sweep, next_due) = (pages_touched(&sweep), pages_touched(&next_due));
    assert!(sweep <= 20, "the sweep touched {sweep} pages");
    assert!(
        next_due <= 20,
        "the next due instant touched {next_due} pages"
    );
}

#[tokio::test]
async fn reading_a_runs_tickets_probes_their_metric_rows_instead_of_reading_the_table() {
    // Given 60,000 tickets with three metric rows each, in a table never analyzed
    let harness = Harness::start().await;
    insert_running_clocks(
        &harness.pool,
        "generate_series(1, 60000) n, \
         unnest(ARRAY['first_reply', 'next_reply', 'resolution']) metric, \
         LATERAL (SELECT now() AS due_at) due",
    )
    .await;
    let pages: i64 = sqlx::query_scalar("SELECT pg_relation_size('sla_metric') / 8192")
        .fetch_one(&harness.pool)
        .await
        .unwrap();

    // When a lane's run reads 50 of those tickets (one of them twice)
    let mut run: Vec<String> = (1..=50).map(|n| format!("ticket-{}", n * 1000)).collect();
    run.push("ticket-1000".to_owned());
    let mut tx = harness.pool.begin().await.unwrap();
    let stored =
        sla::store::read_tickets(&mut tx, &run.iter().map(String::as_str).collect::<Vec<_>>())
            .await
            .unwrap();
    tx.rollback().await.unwrap();
    let plan: Value = sqlx::query_scalar(&explained(sla::store::READ_TICKETS))
        .bind(&run)
        .fetch_one(&harness.pool)
        .await
        .unwrap();

    // Then it gets each ticket's three rows once, touching a few pages per ticket rather
    // than the whole table
    assert_eq!(stored.rows.len(), 50);
    assert!(stored.rows.values().all(|rows| rows.len() == 3));
    let touched = pages_touched(&plan);
    assert!(
        touched < pages / 4,
        "the read touched {touched} pages of a {pages}-page table"
    );
}

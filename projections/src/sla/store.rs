//! The SQL of the SLA read model: the per-ticket state row and its lock, the `sla_metric` rows,
//! the report counts, and appending `TicketSla` events to the event store.
//!
//! Every function but [`fold_count_changes`] takes the caller's transaction: a ticket's SLA
//! events, rows, count changes and state are committed together or not at all.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::sync::LazyLock;

use chrono::{DateTime, NaiveDate, Utc};
use helpdesk_domain::sla::{SlaEvent, TicketSla};
use helpdesk_schemas::EventEnvelope;
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgArguments;
use sqlx::{Postgres, Row, Transaction};

use super::model::{Dims, MetricRow, Outcome, Tally, TicketRows};
use crate::ProjectionError;

/// The aggregate type SLA events are stored under (one aggregate per ticket, same id).
pub const AGGREGATE_TYPE: &str = "TicketSla";

/// One row of `sla_state`: the SLA engine's state of a ticket and where the projection stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketState {
    pub ticket_id: String,
    /// The domain's state: facts from ticket events, clocks from SLA events.
    pub engine: TicketSla,
    /// The last `Ticket` sequence applied.
    pub last_sequence: i64,
    /// The last `TicketSla` sequence appended or applied.
    pub last_sla_sequence: i64,
    /// `event_id` of the ticket event at `last_sequence`.
    pub last_event_id: Option<String>,
    #[serde(flatten)]
    pub dims: Dims,
}

impl TicketState {
    /// The state of a ticket before its first event.
    pub fn new(ticket_id: &str, dims: Dims) -> TicketState {
        TicketState {
            ticket_id: ticket_id.to_owned(),
            engine: TicketSla::default(),
            last_sequence: 0,
            last_sla_sequence: 0,
            last_event_id: None,
            dims,
        }
    }
}

/// Advisory lock class of the SLA writers' own locks.
const SLA_LOCKS: i32 = 0x534c_4100;
/// The writers' lock: shared by every writer, exclusive for a rebuild.
const WRITERS_LOCK: i32 = 0;
/// The folder's lock: one [`fold_count_changes`] at a time.
const FOLD_LOCK: i32 = 1;
/// Advisory lock class of the tickets' locks (the object is `hashtext` of the ticket id).
const SLA_TICKET_LOCKS: i32 = 0x534c_4154;

/// Locks `tickets` for deciding their SLA events, the way every writer does before it reads a
/// state: the writers' lock shared (a rebuild takes it exclusively), then each ticket's lock,
/// in key order so that two runs of tickets never wait for each other in a circle.
///
/// These are transaction-level advisory locks, which take no transaction id: a transaction
/// that reads and decides first and writes in a few statements at the end holds its id only
/// for those, and the relay, which publishes only below the oldest id still running, is not
/// held back while it reads (docs/adr/0010-sla-writers-advisory-locks.md).
pub async fn lock_tickets(
    tx: &mut Transaction<'_, Postgres>,
    tickets: &[&str],
) -> Result<(), ProjectionError> {
    sqlx::query(
        "SELECT (SELECT count(*) FROM pg_advisory_xact_lock_shared($1, $2)) \
              + (SELECT count(pg_advisory_xact_lock($3, k)) FROM ( \
                     SELECT DISTINCT hashtext(t) AS k FROM unnest($4::text[]) t ORDER BY k) keys)",
    )
    .bind(SLA_LOCKS)
    .bind(WRITERS_LOCK)
    .bind(SLA_TICKET_LOCKS)
    .bind(tickets)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Locks out every other SLA writer for the rest of the transaction (the rebuild).
pub async fn lock_out_writers(tx: &mut Transaction<'_, Postgres>) -> Result<(), ProjectionError> {
    take_sla_lock(tx, WRITERS_LOCK).await
}

/// Takes one of the [`SLA_LOCKS`] exclusively until the transaction ends.
async fn take_sla_lock(
    tx: &mut Transaction<'_, Postgres>,
    object: i32,
) -> Result<(), ProjectionError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
        .bind(SLA_LOCKS)
        .bind(object)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// What [`read_tickets`] found of some tickets, as of its one statement.
#[derive(Debug, Default)]
pub struct Stored {
    /// The state rows there are.
    pub states: HashMap<String, TicketState>,
    /// The metric rows, by ticket.
    pub rows: HashMap<String, Vec<MetricRow>>,
    /// The number of `SlaPolicy` events in the store (the policy cache compares it).
    pub policy_events: i64,
}

/// The number of policy events, and the state rows and metric rows of the tickets `$1`.
///
/// The metric rows are read ticket by ticket, each ticket once, each a probe of the primary key
/// (a lateral subquery, which `OFFSET 0` keeps from being merged into a join). As
/// `ticket_id = ANY($1)`, on a database never analyzed, the planner took a few dozen tickets for
/// a tenth of the table and read all of it (107,000 rows for 28 tickets' 44): 58 ms a run on
/// average in the fifth minute at 1,000 commands/s, and growing with the table.
pub const READ_TICKETS: &str = "SELECT \
        (SELECT count(*) FROM events WHERE aggregate_type = 'SlaPolicy'), \
        ARRAY(SELECT to_jsonb(s) FROM sla_state s WHERE ticket_id = ANY($1)), \
        ARRAY(SELECT to_jsonb(m) FROM (SELECT DISTINCT id FROM unnest($1::text[]) AS u(id)) t \
                 CROSS JOIN LATERAL ( \
                     SELECT * FROM sla_metric WHERE ticket_id = t.id OFFSET 0) m)";

/// Reads the states and metric rows of `tickets`, locked by [`lock_tickets`] before, and the
/// number of policy events: everything a run of ticket events needs, in one round trip.
pub async fn read_tickets(
    tx: &mut Transaction<'_, Postgres>,
    tickets: &[&str],
) -> Result<Stored, ProjectionError> {
    let (policy_events, states, rows): (i64, Vec<serde_json::Value>, Vec<serde_json::Value>) =
        sqlx::query_as(READ_TICKETS)
            // Planned for each call, with the tickets in hand: a plan kept from when the tables
            // were nearly empty reads all of `sla_metric` for a few tickets' rows (seen on a
            // database never analyzed: 0.9 ms a call after 45 s of load, against 0.3 ms).
            .persistent(false)
            .bind(tickets)
            .fetch_one(&mut **tx)
            .await?;
    let mut stored = Stored {
        policy_events,
        ..Stored::default()
    };
    for row in states {
        let ticket_id = row["ticket_id"].as_str().unwrap_or_default().to_owned();
        let state = read_state(&ticket_id, row)?;
        stored.states.insert(ticket_id, state);
    }
    for row in rows {
        let ticket_id = row["ticket_id"].as_str().unwrap_or_default().to_owned();
        let row = read_row(&ticket_id, row)?;
        stored.rows.entry(ticket_id).or_default().push(row);
    }
    Ok(stored)
}

/// Locks ([`lock_tickets`]) and reads a ticket's state row, if it has one.
pub async fn lock(
    tx: &mut Transaction<'_, Postgres>,
    ticket_id: &str,
) -> Result<Option<TicketState>, ProjectionError> {
    lock_tickets(tx, &[ticket_id]).await?;
    let row: Option<serde_json::Value> =
        sqlx::query_scalar("SELECT to_jsonb(s) FROM sla_state s WHERE ticket_id = $1")
            .bind(ticket_id)
            .fetch_optional(&mut **tx)
            .await?;
    row.map(|row| read_state(ticket_id, row)).transpose()
}

fn read_state(ticket_id: &str, row: serde_json::Value) -> Result<TicketState, ProjectionError> {
    serde_json::from_value(row).map_err(|error| {
        ProjectionError::Permanent(format!(
            "unreadable sla_state of ticket {ticket_id}: {error}"
        ))
    })
}

/// Inserts many state rows at once (the rebuild): one array per column, so that Postgres
/// parses only the engine's JSON.
pub async fn insert_states(
    tx: &mut Transaction<'_, Postgres>,
    states: &[TicketState],
) -> Result<(), ProjectionError> {
    if states.is_empty() {
        return Ok(());
    }
    StateColumns::of(states)
        .bind(sqlx::query(&INSERT_STATES))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A query whose parameters are bound one column array at a time.
type PgQuery<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

/// `UNNEST` of one bound array per type, numbered from `$first`.
fn unnest(first: usize, types: &[&str]) -> String {
    let arrays: Vec<String> = types
        .iter()
        .enumerate()
        .map(|(i, ty)| format!("${}::{ty}[]", first + i))
        .collect();
    format!("UNNEST({})", arrays.join(", "))
}

/// The array types of [`StateColumns`], in `sla_state`'s column order.
const STATE_TYPES: [&str; 9] = [
    "text", "jsonb", "int8", "int8", "text", "text", "text", "text", "text",
];

/// Inserting [`StateColumns`] bound from `$first`; `upsert` replaces existing rows.
fn insert_states_sql(first: usize, upsert: bool) -> String {
    let on_conflict = if upsert {
        " ON CONFLICT (ticket_id) DO UPDATE SET engine = EXCLUDED.engine, \
             last_sequence = EXCLUDED.last_sequence, \
             last_sla_sequence = EXCLUDED.last_sla_sequence, \
             last_event_id = EXCLUDED.last_event_id, priority = EXCLUDED.priority, \
             group_id = EXCLUDED.group_id, assignee = EXCLUDED.assignee, \
             channel = EXCLUDED.channel"
    } else {
        ""
    };
    format!(
        "INSERT INTO sla_state (ticket_id, engine, last_sequence, last_sla_sequence, \
             last_event_id, priority, group_id, assignee, channel) \
         SELECT * FROM {}{on_conflict}",
        unnest(first, &STATE_TYPES)
    )
}

static INSERT_STATES: LazyLock<String> = LazyLock::new(|| insert_states_sql(1, false));

/// State rows as one array per `sla_state` column ([`STATE_TYPES`]).
struct StateColumns<'a> {
    ticket_id: Vec<&'a str>,
    engine: Vec<sqlx::types::Json<&'a TicketSla>>,
    last_sequence: Vec<i64>,
    last_sla_sequence: Vec<i64>,
    last_event_id: Vec<Option<&'a str>>,
    priority: Vec<&'a str>,
    group_id: Vec<Option<&'a str>>,
    assignee: Vec<Option<&'a str>>,
    channel: Vec<&'a str>,
}

impl<'a> StateColumns<'a> {
    fn of<S: Borrow<TicketState>>(states: &'a [S]) -> StateColumns<'a> {
        let states = || states.iter().map(Borrow::borrow);
        StateColumns {
            ticket_id: states().map(|s| s.ticket_id.as_str()).collect(),
            engine: states().map(|s| sqlx::types::Json(&s.engine)).collect(),
            last_sequence: states().map(|s| s.last_sequence).collect(),
            last_sla_sequence: states().map(|s| s.last_sla_sequence).collect(),
            last_event_id: states().map(|s| s.last_event_id.as_deref()).collect(),
            priority: states().map(|s| s.dims.priority.as_str()).collect(),
            group_id: states().map(|s| s.dims.group_id.as_deref()).collect(),
            assignee: states().map(|s| s.dims.assignee.as_deref()).collect(),
            channel: states().map(|s| s.dims.channel.as_str()).collect(),
        }
    }

    fn bind<'q>(&'q self, query: PgQuery<'q>) -> PgQuery<'q> {
        query
            .bind(&self.ticket_id)
            .bind(&self.engine)
            .bind(&self.last_sequence)
            .bind(&self.last_sla_sequence)
            .bind(&self.last_event_id)
            .bind(&self.priority)
            .bind(&self.group_id)
            .bind(&self.assignee)
            .bind(&self.channel)
    }
}

/// The `sla_metric` rows of a ticket.
pub async fn load_rows(
    tx: &mut Transaction<'_, Postgres>,
    ticket_id: &str,
) -> Result<TicketRows, ProjectionError> {
    let rows: Vec<serde_json::Value> =
        sqlx::query_scalar("SELECT to_jsonb(m) FROM sla_metric m WHERE ticket_id = $1")
            .bind(ticket_id)
            .fetch_all(&mut **tx)
            .await?;
    let rows = rows
        .into_iter()
        .map(|row| read_row(ticket_id, row))
        .collect::<Result<Vec<MetricRow>, _>>()?;
    Ok(TicketRows::loaded(ticket_id, rows))
}

fn read_row(ticket_id: &str, row: serde_json::Value) -> Result<MetricRow, ProjectionError> {
    serde_json::from_value(row).map_err(|error| {
        ProjectionError::Permanent(format!(
            "unreadable sla_metric of ticket {ticket_id}: {error}"
        ))
    })
}

/// `sla_metric` rows as one array per column, the shape `UNNEST` reads: Postgres parses no
/// JSON and no text for them.
#[derive(Debug, Default)]
pub struct MetricColumns {
    ticket_id: Vec<String>,
    metric: Vec<&'static str>,
    activation: Vec<i32>,
    policy_id: Vec<String>,
    policy_version: Vec<i64>,
    target_minutes: Vec<i32>,
    started_at: Vec<DateTime<Utc>>,
    activated_at: Vec<DateTime<Utc>>,
    due_at: Vec<DateTime<Utc>>,
    paused: Vec<bool>,
    fulfilled_at: Vec<Option<DateTime<Utc>>>,
    business_minutes: Vec<Option<i64>>,
    breached_at: Vec<Option<DateTime<Utc>>>,
    withdrawn_at: Vec<Option<DateTime<Utc>>>,
    outcome: Vec<Option<&'static str>>,
    priority: Vec<String>,
    group_id: Vec<Option<String>>,
    assignee: Vec<Option<String>>,
    channel: Vec<String>,
}

impl MetricColumns {
    /// Appends a row; refuses numbers the columns cannot hold.
    pub fn push(&mut self, row: &MetricRow) -> Result<(), ProjectionError> {
        let out_of_range = |what: &str| {
            ProjectionError::Permanent(format!(
                "{what} of {} {} activation {} does not fit its sla_metric column",
                row.ticket_id, row.metric, row.activation
            ))
        };
        let activation = i32::try_from(row.activation).map_err(|_| out_of_range("activation"))?;
        let policy_version =
            i64::try_from(row.policy_version).map_err(|_| out_of_range("policy_version"))?;
        let target_minutes =
            i32::try_from(row.target_minutes).map_err(|_| out_of_range("target_minutes"))?;
        let business_minutes = row
            .business_minutes
            .map(i64::try_from)
            .transpose()
            .map_err(|_| out_of_range("business_minutes"))?;
        self.ticket_id.push(row.ticket_id.clone());
        self.metric.push(row.metric.as_str());
        self.activation.push(activation);
        self.policy_id.push(row.policy_id.clone());
        self.policy_version.push(policy_version);
        self.target_minutes.push(target_minutes);
        self.started_at.push(row.started_at);
        self.activated_at.push(row.activated_at);
        self.due_at.push(row.due_at);
        self.paused.push(row.paused);
        self.fulfilled_at.push(row.fulfilled_at);
        self.business_minutes.push(business_minutes);
        self.breached_at.push(row.breached_at);
        self.withdrawn_at.push(row.withdrawn_at);
        self.outcome.push(row.outcome.map(Outcome::as_str));
        self.priority.push(row.dims.priority.clone());
        self.group_id.push(row.dims.group_id.clone());
        self.assignee.push(row.dims.assignee.clone());
        self.channel.push(row.dims.channel.clone());
        Ok(())
    }

    /// The columns of `rows`.
    fn of<'r>(rows: impl IntoIterator<Item = &'r MetricRow>) -> Result<Self, ProjectionError> {
        let mut columns = MetricColumns::default();
        for row in rows {
            columns.push(row)?;
        }
        Ok(columns)
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.ticket_id.is_empty()
    }

    /// Runs `sql` (an `INSERT INTO sla_metric` reading `UNNEST($1 … $19)`) with the columns
    /// bound, unless there are no rows.
    async fn insert(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        sql: &'static str,
    ) -> Result<(), ProjectionError> {
        if self.is_empty() {
            return Ok(());
        }
        self.bind(sqlx::query(sql)).execute(&mut **tx).await?;
        Ok(())
    }

    fn bind<'q>(&'q self, query: PgQuery<'q>) -> PgQuery<'q> {
        query
            .bind(&self.ticket_id)
            .bind(&self.metric)
            .bind(&self.activation)
            .bind(&self.policy_id)
            .bind(&self.policy_version)
            .bind(&self.target_minutes)
            .bind(&self.started_at)
            .bind(&self.activated_at)
            .bind(&self.due_at)
            .bind(&self.paused)
            .bind(&self.fulfilled_at)
            .bind(&self.business_minutes)
            .bind(&self.breached_at)
            .bind(&self.withdrawn_at)
            .bind(&self.outcome)
            .bind(&self.priority)
            .bind(&self.group_id)
            .bind(&self.assignee)
            .bind(&self.channel)
    }
}

/// The array types of [`MetricColumns`], in `sla_metric`'s column order.
const METRIC_TYPES: [&str; 19] = [
    "text",
    "text",
    "int4",
    "text",
    "int8",
    "int4",
    "timestamptz",
    "timestamptz",
    "timestamptz",
    "bool",
    "timestamptz",
    "int8",
    "timestamptz",
    "timestamptz",
    "text",
    "text",
    "text",
    "text",
    "text",
];

/// Inserting [`MetricColumns`] bound from `$first`; `upsert` replaces existing rows.
fn insert_metric_sql(first: usize, upsert: bool) -> String {
    let on_conflict = if upsert {
        " ON CONFLICT (ticket_id, metric, activation) DO UPDATE SET \
             policy_id = EXCLUDED.policy_id, policy_version = EXCLUDED.policy_version, \
             target_minutes = EXCLUDED.target_minutes, started_at = EXCLUDED.started_at, \
             activated_at = EXCLUDED.activated_at, due_at = EXCLUDED.due_at, \
             paused = EXCLUDED.paused, fulfilled_at = EXCLUDED.fulfilled_at, \
             business_minutes = EXCLUDED.business_minutes, breached_at = EXCLUDED.breached_at, \
             withdrawn_at = EXCLUDED.withdrawn_at, outcome = EXCLUDED.outcome, \
             priority = EXCLUDED.priority, group_id = EXCLUDED.group_id, \
             assignee = EXCLUDED.assignee, channel = EXCLUDED.channel"
    } else {
        ""
    };
    format!(
        "INSERT INTO sla_metric AS m (ticket_id, metric, activation, policy_id, policy_version, \
             target_minutes, started_at, activated_at, due_at, paused, fulfilled_at, \
             business_minutes, breached_at, withdrawn_at, outcome, priority, group_id, assignee, \
             channel) \
         SELECT * FROM {}{on_conflict}",
        unnest(first, &METRIC_TYPES)
    )
}

static INSERT_METRIC: LazyLock<String> = LazyLock::new(|| insert_metric_sql(1, false));

/// Inserts `sla_metric` rows that cannot exist yet (the rebuild, into an emptied table).
pub async fn insert_rows(
    tx: &mut Transaction<'_, Postgres>,
    columns: &MetricColumns,
) -> Result<(), ProjectionError> {
    columns.insert(tx, &INSERT_METRIC).await
}

/// Adds a tally to `sla_report_counts` and deletes rows that reached zero: the rebuild's
/// writer, which has the tables to itself (live writers append changes instead: [`write`]).
///
/// Rows are upserted in key order. The changes are sent as one array per column (`UNNEST`), so
/// Postgres parses no JSON for them.
pub async fn apply_tally(
    tx: &mut Transaction<'_, Postgres>,
    tally: &Tally,
) -> Result<(), ProjectionError> {
    let changes = CountColumns::of(tally);
    if changes.count.is_empty() {
        return Ok(());
    }
    let lowest = changes
        .bind(sqlx::query(&ADD_COUNTS))
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)?;
    changes.settle(tx, lowest).await
}

/// The array types of [`CountColumns`], in `sla_report_counts`' column order.
const COUNT_TYPES: [&str; 8] = [
    "text", "text", "text", "date", "text", "text", "int8", "int8",
];

/// The rows of [`CountColumns`] bound from `$first`, named `r`.
fn count_changes(first: usize) -> String {
    format!(
        "{} AS r(metric, dimension, granularity, period, key, outcome, business_minutes, count)",
        unnest(first, &COUNT_TYPES)
    )
}

/// Adding [`CountColumns`] bound from `$first` to the counts, returning each new count.
fn add_counts_sql(first: usize) -> String {
    upsert_counts_sql(&count_changes(first), "c.count")
}

/// The count key columns of `sla_report_counts` (and of `sla_report_count_changes`).
const COUNT_KEY: &str = "metric, dimension, granularity, period, key, outcome, business_minutes";

/// Adding the rows of `source` (count key columns, then `count`) to the counts in key order,
/// returning `returning` of each changed count row (named `c`).
fn upsert_counts_sql(source: &str, returning: &str) -> String {
    format!(
        "INSERT INTO sla_report_counts AS c \
         SELECT * FROM {source} ORDER BY {COUNT_KEY} \
         ON CONFLICT ({COUNT_KEY}) DO UPDATE SET count = c.count + EXCLUDED.count \
         RETURNING {returning}"
    )
}

/// The lowest count [`CountColumns`] left.
static ADD_COUNTS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH changed AS ({}) SELECT min(count) FROM changed",
        add_counts_sql(1)
    )
});

/// Deleting the count rows that [`CountColumns`] took down to zero.
static DELETE_ZERO_COUNTS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "DELETE FROM sla_report_counts c USING {} \
          WHERE c.count = 0 AND r.count < 0 \
            AND (c.metric, c.dimension, c.granularity, c.period, c.key, c.outcome, \
                 c.business_minutes) \
              = (r.metric, r.dimension, r.granularity, r.period, r.key, r.outcome, \
                 r.business_minutes)",
        count_changes(1)
    )
});

/// The changes of a tally as one array per `sla_report_counts` column.
#[derive(Debug, Default)]
struct CountColumns<'a> {
    metric: Vec<&'static str>,
    dimension: Vec<&'static str>,
    granularity: Vec<&'static str>,
    period: Vec<NaiveDate>,
    key: Vec<&'a str>,
    outcome: Vec<&'static str>,
    business_minutes: Vec<i64>,
    count: Vec<i64>,
}

impl<'a> CountColumns<'a> {
    fn of(tally: &'a Tally) -> CountColumns<'a> {
        let mut columns = CountColumns::default();
        for (key, count) in tally.changes() {
            columns.metric.push(key.metric.as_str());
            columns.dimension.push(key.dimension.as_str());
            columns.granularity.push(key.granularity.as_str());
            columns.period.push(key.period);
            columns.key.push(&key.key);
            columns.outcome.push(key.outcome.as_str());
            columns.business_minutes.push(key.business_minutes);
            columns.count.push(count);
        }
        columns
    }

    fn bind<'q>(&'q self, query: PgQuery<'q>) -> PgQuery<'q> {
        query
            .bind(&self.metric)
            .bind(&self.dimension)
            .bind(&self.granularity)
            .bind(&self.period)
            .bind(&self.key)
            .bind(&self.outcome)
            .bind(&self.business_minutes)
            .bind(&self.count)
    }

    /// After the changes were added: refuses a count below zero (`lowest`, the lowest count
    /// they left) and deletes the rows they took down to zero.
    async fn settle(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        lowest: Option<i64>,
    ) -> Result<(), ProjectionError> {
        if lowest.is_some_and(|lowest| lowest < 0) {
            return Err(ProjectionError::Permanent(
                "an SLA report count would fall below zero (a fulfilment of an outcome that was \
                 never counted)"
                    .into(),
            ));
        }
        if self.count.iter().any(|count| *count < 0) {
            self.bind(sqlx::query(&DELETE_ZERO_COUNTS))
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }
}

/// Writes every quarter's counts as the sum of its months' (the same rows counting each
/// outcome at both granularities would give), for a rebuild that counted days and months only.
/// Expects no quarter rows.
pub async fn sum_quarters_from_months(
    tx: &mut Transaction<'_, Postgres>,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "INSERT INTO sla_report_counts \
         SELECT metric, dimension, 'quarter', date_trunc('quarter', period)::date, key, outcome, \
                business_minutes, sum(count)::bigint \
           FROM sla_report_counts \
          WHERE granularity = 'month' \
          GROUP BY metric, dimension, date_trunc('quarter', period)::date, key, outcome, \
                   business_minutes",
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Why a batch of SLA events was decided: the metadata every one of them carries.
#[derive(Debug, Clone)]
pub struct Cause {
    /// `event_id` of the ticket event that caused them (for the watcher: the last one applied).
    pub causation_id: String,
    /// Carried over from the ticket event, or its event id.
    pub correlation_id: String,
    /// The ticket sequence they were decided at; the rebuild applies them right after it.
    pub ticket_sequence: i64,
    /// What decided them: `sla_projection`, `sla_policy_reapply` or `sla_breach_watcher`.
    pub command: &'static str,
}

impl Cause {
    /// Events decided because of `envelope` (a ticket or policy event), at the ticket's
    /// `ticket_sequence`.
    pub fn of(envelope: &EventEnvelope, ticket_sequence: i64, command: &'static str) -> Cause {
        Cause {
            causation_id: envelope.event_id.clone(),
            correlation_id: envelope
                .metadata
                .get("correlation_id")
                .cloned()
                .unwrap_or_else(|| envelope.event_id.clone()),
            ticket_sequence,
            command,
        }
    }
}

/// SLA events decided in one transaction, of any number of tickets, as one array per column of
/// the events table: [`SlaEvents::insert`] appends them all in one statement.
#[derive(Debug, Default)]
pub struct SlaEvents {
    aggregate_id: Vec<String>,
    sequence: Vec<i64>,
    event_type: Vec<&'static str>,
    payload: Vec<String>,
    metadata: Vec<String>,
}

impl SlaEvents {
    /// Adds `events` to the ticket's `TicketSla` aggregate after `state.last_sla_sequence` and
    /// moves it on. A writer holding a stale state collides on the events primary key.
    pub fn push(
        &mut self,
        state: &mut TicketState,
        events: &[SlaEvent],
        cause: &Cause,
    ) -> Result<(), ProjectionError> {
        if events.is_empty() {
            return Ok(());
        }
        let metadata = serde_json::to_string(&HashMap::from([
            ("actor_id", "sla".to_owned()),
            ("actor_role", "system".to_owned()),
            (
                "occurred_at",
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            ),
            ("correlation_id", cause.correlation_id.clone()),
            ("causation_id", cause.causation_id.clone()),
            ("ticket_sequence", cause.ticket_sequence.to_string()),
            ("command", cause.command.to_owned()),
        ]))
        .map_err(|error| ProjectionError::Permanent(format!("unserializable metadata: {error}")))?;
        for event in events {
            let payload = serde_json::to_string(event).map_err(|error| {
                ProjectionError::Permanent(format!("unserializable SLA event: {error}"))
            })?;
            state.last_sla_sequence += 1;
            self.aggregate_id.push(state.ticket_id.clone());
            self.sequence.push(state.last_sla_sequence);
            self.event_type.push(event.event_type());
            self.payload.push(payload);
            self.metadata.push(metadata.clone());
        }
        Ok(())
    }

    /// Appends the events, in the order they were pushed (their global positions follow it).
    pub async fn insert(&self, tx: &mut Transaction<'_, Postgres>) -> Result<(), ProjectionError> {
        if self.aggregate_id.is_empty() {
            return Ok(());
        }
        self.bind(sqlx::query(&INSERT_EVENTS))
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    fn bind<'q>(&'q self, query: PgQuery<'q>) -> PgQuery<'q> {
        query
            .bind(AGGREGATE_TYPE)
            .bind(SlaEvent::EVENT_VERSION)
            .bind(&self.aggregate_id)
            .bind(&self.sequence)
            .bind(&self.event_type)
            .bind(&self.payload)
            .bind(&self.metadata)
    }
}

/// The array types of [`SlaEvents`] (after the aggregate type and the event version).
const EVENT_TYPES: [&str; 5] = ["text", "int8", "text", "text", "text"];

/// Appending [`SlaEvents`] bound from `$first`, in the order they were pushed.
fn insert_events_sql(first: usize) -> String {
    format!(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
             payload, metadata) \
         SELECT ${first}, e.aggregate_id, e.sequence, e.event_type, ${}, e.payload::json, \
                e.metadata::json \
           FROM {} WITH ORDINALITY AS e(aggregate_id, sequence, event_type, payload, metadata, ord) \
          ORDER BY e.ord",
        first + 1,
        unnest(first + 2, &EVENT_TYPES)
    )
}

static INSERT_EVENTS: LazyLock<String> = LazyLock::new(|| insert_events_sql(1));

/// Everything one transaction of SLA writers decided, as one statement: the SLA events, the
/// metric rows and the states (both upserted), and the report count changes, appended to
/// `sla_report_count_changes` for [`fold_count_changes`]. Bound in that order: events from
/// `$1`, then the [`METRIC_TYPES`], the [`STATE_TYPES`] and the [`COUNT_TYPES`] arrays.
static WRITE: LazyLock<String> = LazyLock::new(|| {
    let metric = 1 + 2 + EVENT_TYPES.len();
    let state = metric + METRIC_TYPES.len();
    let count = state + STATE_TYPES.len();
    format!(
        "WITH appended AS ({}), saved_rows AS ({}), saved_states AS ({}) \
         INSERT INTO sla_report_count_changes SELECT * FROM {}",
        insert_events_sql(1),
        insert_metric_sql(metric, true),
        insert_states_sql(state, true),
        count_changes(count)
    )
});

/// Appends `events` to the ticket's `TicketSla` aggregate after `state.last_sla_sequence` and
/// moves it on ([`SlaEvents`] for one ticket).
pub async fn append(
    tx: &mut Transaction<'_, Postgres>,
    state: &mut TicketState,
    events: &[SlaEvent],
    cause: &Cause,
) -> Result<(), ProjectionError> {
    let mut decided = SlaEvents::default();
    decided.push(state, events, cause)?;
    decided.insert(tx).await
}

/// Appends SLA events decided for a locked ticket (after `state.last_sla_sequence`, moving it
/// on) and applies them to its rows, counts and state: the write path of the breach watcher
/// and of a policy change. `state.engine` has applied them already.
pub async fn record(
    tx: &mut Transaction<'_, Postgres>,
    state: &mut TicketState,
    events: &[SlaEvent],
    cause: &Cause,
) -> Result<(), ProjectionError> {
    let mut decided = SlaEvents::default();
    decided.push(state, events, cause)?;
    let mut tally = Tally::default();
    let mut rows = load_rows(tx, &state.ticket_id).await?;
    rows.record(&state.dims, events, &mut tally);
    rows.follow(&state.dims);
    write(tx, &decided, &[(&*state, &rows)], &tally).await
}

/// Writes what one transaction of SLA writers decided ([`WRITE`]): the SLA events, the changed
/// metric rows and the states of `tickets`, and the report count changes, in one statement.
///
/// The count changes are appended, not added to the shared count rows, so no writer waits for
/// another's: the transaction holds its id for this one statement and its commit
/// (docs/adr/0012-sla-report-count-changes.md).
pub async fn write(
    tx: &mut Transaction<'_, Postgres>,
    events: &SlaEvents,
    tickets: &[(&TicketState, &TicketRows)],
    tally: &Tally,
) -> Result<(), ProjectionError> {
    let counts = CountColumns::of(tally);
    let rows = MetricColumns::of(tickets.iter().flat_map(|(_, rows)| rows.changed()))?;
    let states: Vec<&TicketState> = tickets.iter().map(|(state, _)| *state).collect();
    let states = StateColumns::of(&states);
    let query = sqlx::query(&WRITE);
    counts
        .bind(states.bind(rows.bind(events.bind(query))))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Every report count as of now, folded or not, in key order: the rows `sla_report_counts`
/// would hold after a fold, as JSON objects of its columns (what a rebuild is compared
/// against).
pub const CURRENT_COUNTS: &str = "SELECT jsonb_build_object('metric', metric, \
            'dimension', dimension, 'granularity', granularity, 'period', period, 'key', key, \
            'outcome', outcome, 'business_minutes', business_minutes, 'count', sum(count)) \
       FROM (SELECT * FROM sla_report_counts UNION ALL SELECT * FROM sla_report_count_changes) c \
      GROUP BY metric, dimension, granularity, period, key, outcome, business_minutes \
     HAVING sum(count) <> 0 \
      ORDER BY metric, dimension, granularity, period, key, outcome, business_minutes";

/// Changes folded at most per [`fold_count_changes`], so that a fold after a long pause (a
/// folder down, changes piled up) holds its transaction id for a bounded time.
pub const FOLD_AT_MOST: i64 = 50_000;

/// Moves up to `$1` committed count changes into `sla_report_counts`, summed per count row,
/// and returns how many there were, how many count rows they changed and how many of those
/// rows ended below zero; rows they took to zero are deleted in a second statement.
static FOLD: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH moved AS (DELETE FROM sla_report_count_changes WHERE ctid = ANY(ARRAY( \
                            SELECT ctid FROM sla_report_count_changes LIMIT $1)) \
                        RETURNING *), \
              summed AS (SELECT {COUNT_KEY}, sum(count)::bigint AS count FROM moved \
                          GROUP BY {COUNT_KEY} HAVING sum(count) <> 0), \
              added AS ({}) \
         SELECT (SELECT count(*) FROM moved), \
                (SELECT count(*) FROM added), \
                (SELECT count(*) FROM added WHERE count < 0), \
                (SELECT coalesce(jsonb_agg(to_jsonb(added)), '[]') FROM added WHERE count = 0)",
        upsert_counts_sql("summed", "c.*")
    )
});

/// Deletes the count rows `$1` (a JSON array of rows, as [`FOLD`] returns them) still at zero.
const DELETE_FOLDED_ZEROS: &str = "DELETE FROM sla_report_counts c \
      USING jsonb_to_recordset($1) AS z(metric text, dimension text, granularity text, \
            period date, key text, outcome text, business_minutes bigint) \
      WHERE c.count = 0 \
        AND (c.metric, c.dimension, c.granularity, c.period, c.key, c.outcome, \
             c.business_minutes) \
          = (z.metric, z.dimension, z.granularity, z.period, z.key, z.outcome, \
             z.business_minutes)";

/// Most changes [`unfolded_count_changes`] counts.
pub const UNFOLDED_COUNTED_UP_TO: i64 = 1_000_000;

/// The report count changes not folded yet, counted up to [`UNFOLDED_COUNTED_UP_TO`] (a
/// folder that keeps up leaves a few seconds' worth; one that stopped, all of them).
pub async fn unfolded_count_changes(pool: &sqlx::PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT FROM sla_report_count_changes LIMIT $1) AS unfolded",
    )
    .bind(UNFOLDED_COUNTED_UP_TO)
    .fetch_one(pool)
    .await
}

/// What one [`fold_count_changes`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Folded {
    /// Changes moved out of `sla_report_count_changes`.
    pub changes: u64,
    /// Count rows they changed.
    pub counts: u64,
    /// Count rows they left below zero (an outcome taken back that was never counted: a bug,
    /// which a rebuild of the SLA view repairs).
    pub below_zero: u64,
    /// Whether another folder held the lock, so this one did nothing.
    pub skipped: bool,
}

/// Folds the committed report count changes (up to [`FOLD_AT_MOST`]) into
/// `sla_report_counts`, in one transaction of its own: sums them per count row, adds the sums,
/// deletes the rows that reached zero and the changes.
///
/// One folder at a time (an advisory lock, tried: a second folder skips); a rebuild locks them
/// all out as it does the writers. A change committed while the fold runs is not in its
/// snapshot and waits for the next. A report reads both tables in one statement, so it sees
/// every change once, folded or not.
pub async fn fold_count_changes(pool: &sqlx::PgPool) -> Result<Folded, ProjectionError> {
    let mut tx = pool.begin().await?;
    let locked: bool = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM pg_advisory_xact_lock_shared($1, $2)) = 1 \
            AND pg_try_advisory_xact_lock($1, $3)",
    )
    .bind(SLA_LOCKS)
    .bind(WRITERS_LOCK)
    .bind(FOLD_LOCK)
    .fetch_one(&mut *tx)
    .await?;
    if !locked {
        return Ok(Folded {
            skipped: true,
            ..Folded::default()
        });
    }
    let (changes, counts, below_zero, zeros): (i64, i64, i64, serde_json::Value) =
        sqlx::query_as(&FOLD)
            .bind(FOLD_AT_MOST)
            .fetch_one(&mut *tx)
            .await?;
    if zeros.as_array().is_some_and(|zeros| !zeros.is_empty()) {
        sqlx::query(DELETE_FOLDED_ZEROS)
            .bind(zeros)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    let count = |n: i64| u64::try_from(n).unwrap_or_default();
    Ok(Folded {
        changes: count(changes),
        counts: count(counts),
        below_zero: count(below_zero),
        skipped: false,
    })
}

//! `ticket_summary`: one row per ticket in Postgres, for lists and the query side.

use async_trait::async_trait;
use helpdesk_domain::ticket::{TicketEvent, TicketOpened};
use helpdesk_schemas::EventEnvelope;
use sqlx::{PgConnection, PgPool};

use crate::{Applied, Projection, ProjectionError};

/// The projection's name.
pub const NAME: &str = "ticket_summary";

/// Projects ticket events into the `ticket_summary` table.
#[derive(Debug, Clone)]
pub struct TicketSummary {
    pool: PgPool,
    /// The name its checkpoint and consumer go by (normally [`NAME`]).
    name: String,
}

impl TicketSummary {
    /// A projection writing through `pool`.
    pub fn new(pool: PgPool) -> Self {
        TicketSummary::named(pool, NAME)
    }

    /// The same projection under another name (tests run variants side by side).
    pub fn named(pool: PgPool, name: &str) -> Self {
        TicketSummary {
            pool,
            name: name.to_owned(),
        }
    }
}

#[async_trait]
impl Projection for TicketSummary {
    fn name(&self) -> &str {
        &self.name
    }

    async fn apply(&self, envelope: &EventEnvelope) -> Result<Applied, ProjectionError> {
        let mut connection = self.pool.acquire().await?;
        apply(&mut connection, envelope).await
    }

    /// Applies a lane's batch in one transaction: one commit — one wait for the WAL to reach
    /// the disk — for the batch instead of one per event, which is what bounds the projection
    /// when commits are slow (a busy host). The events go ticket by ticket in ticket id order,
    /// each ticket's in the batch's order, so two workers' transactions lock the rows they
    /// share in one order and never wait for each other in a circle.
    ///
    /// A redelivery or a gap is an answer, not an error, and leaves the transaction going. Any
    /// error (an unreadable payload, a failed statement, the commit) rolls the batch back, and
    /// its events are applied again one by one, each with its own outcome.
    async fn apply_batch(
        &self,
        envelopes: &[EventEnvelope],
    ) -> Vec<Result<Applied, ProjectionError>> {
        if let Ok(outcomes) = self.apply_in_one_transaction(envelopes).await {
            return outcomes;
        }
        let mut connection = match self.pool.acquire().await {
            Ok(connection) => connection,
            Err(error) => {
                let error = ProjectionError::from(error);
                return envelopes.iter().map(|_| Err(error.clone())).collect();
            }
        };
        let mut outcomes = Vec::with_capacity(envelopes.len());
        for envelope in envelopes {
            outcomes.push(apply(&mut connection, envelope).await);
        }
        outcomes
    }

    async fn reset(&self) -> Result<(), ProjectionError> {
        crate::reset_tables(&self.pool, &self.name, "ticket_summary").await
    }

    async fn save_checkpoint(&self, position: i64) -> Result<(), ProjectionError> {
        crate::save_checkpoint(&self.pool, &self.name, position).await
    }
}

impl TicketSummary {
    /// The outcomes of `envelopes` applied and committed in one transaction, in the batch's
    /// order; an error when any of them failed or the commit did (nothing is kept then).
    async fn apply_in_one_transaction(
        &self,
        envelopes: &[EventEnvelope],
    ) -> Result<Vec<Result<Applied, ProjectionError>>, ProjectionError> {
        let mut order: Vec<usize> = (0..envelopes.len()).collect();
        order.sort_by(|a, b| envelopes[*a].aggregate_id.cmp(&envelopes[*b].aggregate_id));
        let mut outcomes = vec![Ok(Applied::Duplicate); envelopes.len()];
        let mut tx = self.pool.begin().await?;
        for i in order {
            outcomes[i] = match apply(&mut tx, &envelopes[i]).await {
                gap @ Err(ProjectionError::Gap { .. }) => gap,
                Err(error) => return Err(error),
                applied => applied,
            };
        }
        tx.commit().await?;
        Ok(outcomes)
    }
}

/// Applies one event in one statement (or two, for a change that is not the ticket's next).
async fn apply(
    connection: &mut PgConnection,
    envelope: &EventEnvelope,
) -> Result<Applied, ProjectionError> {
    if envelope.aggregate_type != "Ticket" {
        return Ok(Applied::Duplicate);
    }
    let event = envelope
        .ticket_event()
        .map_err(|e| ProjectionError::Permanent(format!("unreadable payload: {e}")))?;
    match event {
        TicketEvent::TicketOpened(opened) => insert(connection, envelope, opened).await,
        other => update(connection, envelope, other).await,
    }
}

async fn insert(
    connection: &mut PgConnection,
    envelope: &EventEnvelope,
    opened: TicketOpened,
) -> Result<Applied, ProjectionError> {
    // Stored sorted, as every later tag change leaves them.
    let mut tags = opened.tags.clone();
    tags.sort();
    let inserted = sqlx::query(
        "INSERT INTO ticket_summary (ticket_id, subject, status, priority, channel, group_id, \
             tags, requester_id, requester_name, requester_email, created_at, updated_at, \
             last_sequence, last_position) \
         VALUES ($1, $2, 'new', $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $12) \
         ON CONFLICT (ticket_id) DO NOTHING",
    )
    .bind(&envelope.aggregate_id)
    .bind(&opened.subject)
    .bind(wire_name(&opened.priority))
    .bind(wire_name(&opened.channel))
    .bind(&opened.group)
    .bind(&tags)
    .bind(&opened.requester.customer_id)
    .bind(&opened.requester.name)
    .bind(&opened.requester.email)
    .bind(envelope.recorded_at)
    .bind(envelope.sequence)
    .bind(envelope.global_position)
    .execute(&mut *connection)
    .await?;
    Ok(if inserted.rows_affected() == 1 {
        Applied::Applied
    } else {
        Applied::Duplicate
    })
}

/// Applies a change in one statement that also checks the sequence: it updates the row only
/// when `envelope` is the ticket's next event. Otherwise the row's sequence, read afterwards,
/// tells a redelivery (nothing to do) from a gap.
async fn update(
    connection: &mut PgConnection,
    envelope: &EventEnvelope,
    event: TicketEvent,
) -> Result<Applied, ProjectionError> {
    let (column_sql, value) = change_of(event);
    let statement = format!(
        "UPDATE ticket_summary SET {column_sql}, updated_at = $2, last_sequence = $3, \
         last_position = $4 WHERE ticket_id = $1 AND last_sequence = $3 - 1"
    );
    let query = sqlx::query(&statement)
        .bind(&envelope.aggregate_id)
        .bind(envelope.recorded_at)
        .bind(envelope.sequence)
        .bind(envelope.global_position);
    let query = match value {
        Change::Text(text) => query.bind(text),
        Change::Pair(first, second) => query.bind(first).bind(second),
        Change::Tags(added, removed) => query.bind(added).bind(removed),
        Change::None => query,
    };
    if query.execute(&mut *connection).await?.rows_affected() == 1 {
        return Ok(Applied::Applied);
    }
    let last: Option<i64> =
        sqlx::query_scalar("SELECT last_sequence FROM ticket_summary WHERE ticket_id = $1")
            .bind(&envelope.aggregate_id)
            .fetch_optional(&mut *connection)
            .await?;
    let last = last.unwrap_or(0);
    if envelope.sequence <= last {
        return Ok(Applied::Duplicate);
    }
    Err(ProjectionError::Gap {
        expected: last + 1,
        got: envelope.sequence,
    })
}

/// The values an update binds after the four common ones.
enum Change {
    Text(String),
    Pair(Option<String>, Option<String>),
    Tags(Vec<String>, Vec<String>),
    None,
}

/// The SET clause and values for one event (parameters from `$5`).
fn change_of(event: TicketEvent) -> (&'static str, Change) {
    match event {
        TicketEvent::TicketStatusChanged(e) => ("status = $5", Change::Text(wire_name(&e.to))),
        TicketEvent::TicketPriorityChanged(e) => ("priority = $5", Change::Text(wire_name(&e.to))),
        TicketEvent::TicketAssigned(e) => (
            "assignee = $5, group_id = $6",
            Change::Pair(e.assignee, e.group),
        ),
        TicketEvent::TagsChanged(e) => (
            "tags = ARRAY(SELECT DISTINCT t FROM unnest(array_cat(tags, $5::text[])) AS t \
                          WHERE t <> ALL($6::text[]) ORDER BY t)",
            Change::Tags(e.added, e.removed),
        ),
        TicketEvent::ReplyAdded(_) => ("reply_count = reply_count + 1", Change::None),
        TicketEvent::TicketOpened(_) => ("ticket_id = ticket_id", Change::None),
    }
}

/// The snake_case wire name of an enum value.
fn wire_name<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

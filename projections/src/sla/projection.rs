//! The `sla` projection: decides each ticket event's SLA events with the domain's engine,
//! appends them to the event store as the ticket's `TicketSla` aggregate, and keeps
//! `sla_state`, `sla_metric` and the report counts — all in one transaction per event, or
//! per run of a lane's ticket events when each is its ticket's next.
//!
//! `Ticket` events are decided one by one. An `SlaPolicy` event (a policy created or changed)
//! drops the cached policies and re-selects the policy of every ticket the projection knows
//! ([`TicketSla::reapply_policies`](helpdesk_domain::sla::TicketSla::reapply_policies)), so
//! open tickets are retargeted, withdrawn or activated at the change instead of at their next
//! event. `TicketSla` events (its own, coming back through the stream) are ignored. The
//! projection is the only place SLA events are *decided*; the rebuild (`sla::rebuild`) only
//! replays the stored ones.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use async_trait::async_trait;
use helpdesk_domain::sla::{PolicyRef, SlaPolicyDefinition};
use helpdesk_domain::ticket::TicketEvent;
use helpdesk_schemas::EventEnvelope;
use sqlx::PgPool;
use tokio::sync::Mutex;

use super::model::{Dims, Tally, TicketRows};
use super::policies::current_policies;
use super::store::{self, Cause, TicketState};
use crate::{Applied, Projection, ProjectionError};

/// The projection's name (its durable consumer and dead-letter subject).
pub const NAME: &str = "sla";

/// Events that end a lane's wait for more of its batch at once (`HELPDESK_SLA_BATCH_WAIT_MS`,
/// [`crate::runtime::Gather`]): a run of 64 events already shares its commit with enough
/// others that waiting for more saves little, and under a backlog the lanes never wait.
pub const BATCH_ENOUGH: usize = 64;

/// The current version of every policy, in selection order.
pub type Policies = Arc<Vec<(PolicyRef, SlaPolicyDefinition)>>;

/// Projects ticket events into SLA events and the SLA read model.
#[derive(Debug, Clone)]
pub struct SlaProjection {
    pool: PgPool,
    name: String,
    policies: Arc<PolicyCache>,
}

impl SlaProjection {
    /// The projection, writing through `pool`.
    pub fn new(pool: PgPool) -> Self {
        SlaProjection::named(pool, NAME)
    }

    /// The same projection under another name (tests run variants side by side).
    pub fn named(pool: PgPool, name: &str) -> Self {
        SlaProjection {
            pool,
            name: name.to_owned(),
            policies: Arc::default(),
        }
    }

    /// Decides a run of ticket events in one transaction and writes the outcome at its end
    /// ([`store::write`]): the tickets are locked and read in two statements that take no
    /// transaction id, the engine decides in memory, and the writes come last, so the
    /// transaction holds its id — and with it the relay's tail — only for them.
    ///
    /// `Applied` means every event was applied. Anything else — a redelivery (`Duplicate`), a
    /// gap, an error — rolls the whole run back; [`Projection::apply_batch`] then applies a
    /// run's events one by one, so that each gets its own outcome.
    async fn apply_ticket_events(
        &self,
        envelopes: &[&EventEnvelope],
    ) -> Result<Applied, ProjectionError> {
        let mut tx = self.pool.begin().await?;
        let ids: Vec<&str> = envelopes.iter().map(|e| e.aggregate_id.as_str()).collect();
        store::lock_tickets(&mut tx, &ids).await?;
        let mut stored = store::read_tickets(&mut tx, &ids).await?;
        // Read on the transaction's own connection: a lane never waits for a second one.
        let policies = self
            .policies
            .current(&mut *tx, stored.policy_events)
            .await?;
        let mut tickets: HashMap<String, Ticket> = HashMap::new();
        for (id, state) in stored.states.drain() {
            let rows = TicketRows::loaded(&id, stored.rows.remove(&id).unwrap_or_default());
            tickets.insert(id, Ticket { state, rows });
        }
        let mut events = store::SlaEvents::default();
        let mut tally = Tally::default();
        for &envelope in envelopes {
            if decide(envelope, &mut tickets, &policies, &mut events, &mut tally)?
                == Applied::Duplicate
            {
                return Ok(Applied::Duplicate);
            }
        }
        let written: Vec<(&TicketState, &TicketRows)> = tickets
            .values()
            .map(|ticket| (&ticket.state, &ticket.rows))
            .collect();
        store::write(&mut tx, &events, &written, &tally).await?;
        tx.commit().await?;
        Ok(Applied::Applied)
    }
}

/// A ticket as a run of its events finds it and leaves it.
struct Ticket {
    state: TicketState,
    rows: TicketRows,
}

/// Decides one ticket event of a run: its SLA events go to `decided`, its report count changes
/// to `tally`, and its ticket's state and rows change in `tickets`. A ticket not in `tickets`
/// has no state yet; its first event (`TicketOpened`) makes one.
fn decide(
    envelope: &EventEnvelope,
    tickets: &mut HashMap<String, Ticket>,
    policies: &Policies,
    decided: &mut store::SlaEvents,
    tally: &mut Tally,
) -> Result<Applied, ProjectionError> {
    let event = envelope
        .ticket_event()
        .map_err(|e| ProjectionError::Permanent(format!("unreadable payload: {e}")))?;
    let ticket_id = envelope.aggregate_id.as_str();
    let ticket = match (tickets.entry(ticket_id.to_owned()), &event) {
        (Entry::Occupied(entry), _) => entry.into_mut(),
        (Entry::Vacant(entry), TicketEvent::TicketOpened(opened)) => entry.insert(Ticket {
            state: TicketState::new(ticket_id, Dims::opened(opened)),
            rows: TicketRows::loaded(ticket_id, Vec::new()),
        }),
        (Entry::Vacant(_), _) => {
            return Err(ProjectionError::Gap {
                expected: 1,
                got: envelope.sequence,
            });
        }
    };
    let state = &mut ticket.state;
    if envelope.sequence <= state.last_sequence {
        return Ok(Applied::Duplicate);
    }
    if envelope.sequence != state.last_sequence + 1 {
        return Err(ProjectionError::Gap {
            expected: state.last_sequence + 1,
            got: envelope.sequence,
        });
    }
    let events = state
        .engine
        .on_ticket_event(&event, envelope.recorded_at, policies)
        .map_err(|error| {
            ProjectionError::Permanent(format!(
                "the SLA engine cannot process {} (sequence {}) of ticket {ticket_id}: {error}; \
                 fix the policy, then redrive this dead letter",
                envelope.event_type, envelope.sequence
            ))
        })?;
    state.dims.observe(&event);
    state.last_sequence = envelope.sequence;
    state.last_event_id = Some(envelope.event_id.clone());
    let cause = Cause::of(envelope, envelope.sequence, "sla_projection");
    decided.push(state, &events, &cause)?;
    ticket.rows.record(&state.dims, &events, tally);
    ticket.rows.follow(&state.dims);
    Ok(Applied::Applied)
}

/// Whether `envelope` belongs in a run of ticket events: a ticket event, or one of the
/// projection's own SLA events, which it ignores.
fn in_ticket_run(envelope: &EventEnvelope) -> bool {
    matches!(
        envelope.aggregate_type.as_str(),
        "Ticket" | store::AGGREGATE_TYPE
    )
}

impl SlaProjection {
    /// Applies a run of ticket and SLA events ([`in_ticket_run`]): the ticket events in one
    /// transaction when there are several and all of them are their ticket's next, else one
    /// by one, each with its own outcome; the SLA events are `Duplicate` (nothing to do).
    async fn apply_run(&self, run: &[EventEnvelope]) -> Vec<Result<Applied, ProjectionError>> {
        let tickets: Vec<&EventEnvelope> = run
            .iter()
            .filter(|e| e.aggregate_type == "Ticket")
            .collect();
        if tickets.len() > 1
            && matches!(
                self.apply_ticket_events(&tickets).await,
                Ok(Applied::Applied)
            )
        {
            return run
                .iter()
                .map(|e| match e.aggregate_type.as_str() {
                    "Ticket" => Ok(Applied::Applied),
                    _ => Ok(Applied::Duplicate),
                })
                .collect();
        }
        let mut outcomes = Vec::with_capacity(run.len());
        for envelope in run {
            outcomes.push(self.apply(envelope).await);
        }
        outcomes
    }

    /// Brings every known ticket in line with the policies after `envelope` changed one.
    ///
    /// The states are scanned without locks, a batch at a time, and the engine is asked on a
    /// copy; only a ticket whose clocks would change is locked and decided again in its own
    /// transaction (a concurrent ticket event or breach may have moved it meanwhile). A
    /// redelivered policy event finds nothing left to change.
    async fn reapply_policies(&self, envelope: &EventEnvelope) -> Result<Applied, ProjectionError> {
        const BATCH: i64 = 1000;
        let policy_events: i64 =
            sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_type = 'SlaPolicy'")
                .fetch_one(&self.pool)
                .await?;
        let policies = self.policies.current(&self.pool, policy_events).await?;
        let at = envelope.recorded_at;
        let mut after = String::new();
        let mut changed = 0u64;
        loop {
            let rows: Vec<serde_json::Value> = sqlx::query_scalar(
                "SELECT to_jsonb(s) FROM sla_state s WHERE ticket_id > $1 \
                  ORDER BY ticket_id LIMIT $2",
            )
            .bind(&after)
            .bind(BATCH)
            .fetch_all(&self.pool)
            .await?;
            let Some(last) = rows.last() else {
                break;
            };
            after = last["ticket_id"].as_str().unwrap_or_default().to_owned();
            for row in rows {
                let Ok(state) = serde_json::from_value::<TicketState>(row) else {
                    continue; // `lock` reports an unreadable state at the ticket's next event
                };
                let mut probe = state.engine.clone();
                if probe
                    .reapply_policies(at, &policies)
                    .is_ok_and(|events| events.is_empty())
                {
                    continue;
                }
                if self
                    .reapply_to(&state.ticket_id, envelope, &policies)
                    .await?
                {
                    changed += 1;
                }
            }
        }
        tracing::info!(
            policy = %envelope.aggregate_id,
            version = envelope.sequence,
            tickets = changed,
            "SLA policies reapplied to open tickets"
        );
        Ok(Applied::Applied)
    }

    /// Re-selects one ticket's policy under its lock; true when SLA events were appended.
    async fn reapply_to(
        &self,
        ticket_id: &str,
        envelope: &EventEnvelope,
        policies: &Policies,
    ) -> Result<bool, ProjectionError> {
        let mut tx = self.pool.begin().await?;
        let Some(mut state) = store::lock(&mut tx, ticket_id).await? else {
            return Ok(false);
        };
        let events = match state
            .engine
            .reapply_policies(envelope.recorded_at, policies)
        {
            Ok(events) => events,
            Err(error) => {
                // The ticket's next event meets the same error and is dead-lettered there,
                // with the ticket named; the other tickets still get the change.
                tracing::warn!(%ticket_id, %error, "SLA policy change not applied to ticket");
                return Ok(false);
            }
        };
        if events.is_empty() {
            return Ok(false);
        }
        let cause = Cause::of(envelope, state.last_sequence, "sla_policy_reapply");
        store::record(&mut tx, &mut state, &events, &cause).await?;
        tx.commit().await?;
        Ok(true)
    }
}

#[async_trait]
impl Projection for SlaProjection {
    fn name(&self) -> &str {
        &self.name
    }

    /// A lane's batch is applied in runs: each stretch of ticket events — with the
    /// projection's own SLA events among them, which the stream brings back into the same
    /// lanes (they share the ticket's id) and which it ignores — is decided in one
    /// transaction; a policy event is applied on its own, in its place.
    async fn apply_batch(
        &self,
        envelopes: &[EventEnvelope],
    ) -> Vec<Result<Applied, ProjectionError>> {
        let mut outcomes = Vec::with_capacity(envelopes.len());
        let mut rest = envelopes;
        while let Some(first) = rest.first() {
            let run = rest
                .iter()
                .position(|e| !in_ticket_run(e))
                .unwrap_or(rest.len());
            if run == 0 {
                outcomes.push(self.apply(first).await);
                rest = &rest[1..];
            } else {
                let (run, after) = rest.split_at(run);
                outcomes.extend(self.apply_run(run).await);
                rest = after;
            }
        }
        outcomes
    }

    async fn apply(&self, envelope: &EventEnvelope) -> Result<Applied, ProjectionError> {
        match envelope.aggregate_type.as_str() {
            "Ticket" => self.apply_ticket_events(&[envelope]).await,
            "SlaPolicy" => {
                self.policies.forget().await;
                self.reapply_policies(envelope).await
            }
            _ => Ok(Applied::Duplicate),
        }
    }

    /// Empties the SLA read model. The SLA events in the store stay: they are the record of
    /// what was decided. Rebuild with [`super::rebuild::rebuild`], which replays them; the
    /// generic `rebuild::rebuild` would decide every ticket event again under today's policies
    /// and append the results a second time.
    async fn reset(&self) -> Result<(), ProjectionError> {
        crate::reset_tables(
            &self.pool,
            &self.name,
            // the changes before the counts: the order a fold locks them in
            "sla_state, sla_metric, sla_report_count_changes, sla_report_counts",
        )
        .await
    }

    async fn save_checkpoint(&self, position: i64) -> Result<(), ProjectionError> {
        crate::save_checkpoint(&self.pool, &self.name, position).await
    }
}

/// The policies in force, reloaded whenever the store holds a different number of `SlaPolicy`
/// events than when they were loaded (policies are few, and their events only ever grow). One
/// index-only count per ticket event (read with the ticket's state row) makes a policy created
/// just before a ticket opens apply to it, whatever order the stream's lanes deliver the two
/// in.
#[derive(Debug, Default)]
struct PolicyCache {
    loaded: Mutex<Option<(i64, Policies)>>,
}

impl PolicyCache {
    /// The policies as of `events` `SlaPolicy` events in the store, read with `executor` when
    /// the cached ones are older.
    async fn current<'e>(
        &self,
        executor: impl sqlx::PgExecutor<'e>,
        events: i64,
    ) -> Result<Policies, ProjectionError> {
        let mut loaded = self.loaded.lock().await;
        if let Some((count, policies)) = loaded.as_ref()
            && *count == events
        {
            return Ok(policies.clone());
        }
        let policies: Policies = Arc::new(current_policies(executor).await?);
        *loaded = Some((events, policies.clone()));
        Ok(policies)
    }

    async fn forget(&self) {
        *self.loaded.lock().await = None;
    }
}

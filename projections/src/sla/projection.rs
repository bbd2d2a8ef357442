//! The `sla` projection: decides each ticket event's SLA events with the domain's engine,
//! appends them to the event store as the ticket's `TicketSla` aggregate, and keeps
//! `sla_state`, `sla_metric` and `sla_report_counts` — all in one transaction per event.
//!
//! Only `Ticket` events are decided. `TicketSla` events (its own, coming back through the
//! stream) are ignored; an `SlaPolicy` event drops the cached policies. The projection is the
//! only place SLA events are *decided* from ticket events; the rebuild (`sla::rebuild`) only
//! replays the stored ones.

use std::sync::Arc;

use async_trait::async_trait;
use helpdesk_domain::sla::{PolicyRef, SlaPolicyDefinition};
use helpdesk_domain::ticket::TicketEvent;
use helpdesk_schemas::EventEnvelope;
use sqlx::PgPool;
use tokio::sync::Mutex;

use super::model::Dims;
use super::policies::current_policies;
use super::store::{self, Cause, TicketState};
use crate::{Applied, Projection, ProjectionError};

/// The projection's name (its durable consumer and dead-letter subject).
pub const NAME: &str = "sla";

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

    async fn apply_ticket_event(
        &self,
        envelope: &EventEnvelope,
    ) -> Result<Applied, ProjectionError> {
        let event = envelope
            .ticket_event()
            .map_err(|e| ProjectionError::Permanent(format!("unreadable payload: {e}")))?;
        let policies = self.policies.current(&self.pool).await?;
        let ticket_id = envelope.aggregate_id.as_str();
        let mut tx = self.pool.begin().await?;
        if let TicketEvent::TicketOpened(opened) = &event {
            store::create_if_missing(&mut tx, &TicketState::new(ticket_id, Dims::opened(opened)))
                .await?;
        }
        let Some(mut state) = store::lock(&mut tx, ticket_id).await? else {
            return Err(ProjectionError::Gap {
                expected: 1,
                got: envelope.sequence,
            });
        };
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
            .on_ticket_event(&event, envelope.recorded_at, &policies)
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
        let cause = Cause {
            causation_id: envelope.event_id.clone(),
            correlation_id: envelope
                .metadata
                .get("correlation_id")
                .cloned()
                .unwrap_or_else(|| envelope.event_id.clone()),
            ticket_sequence: envelope.sequence,
            command: "sla_projection",
        };
        store::append(&mut tx, &mut state, &events, &cause).await?;
        store::record(&mut tx, &state, &events).await?;
        tx.commit().await?;
        Ok(Applied::Applied)
    }
}

#[async_trait]
impl Projection for SlaProjection {
    fn name(&self) -> &str {
        &self.name
    }

    async fn apply(&self, envelope: &EventEnvelope) -> Result<Applied, ProjectionError> {
        match envelope.aggregate_type.as_str() {
            "Ticket" => self.apply_ticket_event(envelope).await,
            "SlaPolicy" => {
                self.policies.forget().await;
                Ok(Applied::Duplicate)
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
            "sla_state, sla_metric, sla_report_counts",
        )
        .await
    }

    async fn save_checkpoint(&self, position: i64) -> Result<(), ProjectionError> {
        crate::save_checkpoint(&self.pool, &self.name, position).await
    }
}

/// The policies in force, reloaded whenever the store holds a different number of `SlaPolicy`
/// events than when they were loaded (policies are few, and their events only ever grow). One
/// index-only count per ticket event makes a policy created just before a ticket opens apply
/// to it, whatever order the stream's lanes deliver the two in.
#[derive(Debug, Default)]
struct PolicyCache {
    loaded: Mutex<Option<(i64, Policies)>>,
}

impl PolicyCache {
    async fn current(&self, pool: &PgPool) -> Result<Policies, ProjectionError> {
        let events: i64 =
            sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_type = 'SlaPolicy'")
                .fetch_one(pool)
                .await?;
        let mut loaded = self.loaded.lock().await;
        if let Some((count, policies)) = loaded.as_ref()
            && *count == events
        {
            return Ok(policies.clone());
        }
        let policies: Policies = Arc::new(current_policies(pool).await?);
        *loaded = Some((events, policies.clone()));
        Ok(policies)
    }

    async fn forget(&self) {
        *self.loaded.lock().await = None;
    }
}

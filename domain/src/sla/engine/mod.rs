//! The SLA engine: from a ticket's events and the SLA policies, the metric events of its
//! clocks (activated, paused, resumed, retargeted, fulfilled, breached, withdrawn).
//!
//! Pure like the rest of the domain: instants arrive with the ticket events, "now" arrives as
//! an argument of [`TicketSla::due_breaches`], and nothing reads a clock. An SLA projector
//! feeds each ticket event to [`TicketSla::on_ticket_event`], stores the events it returns, and
//! asks [`TicketSla::due_breaches`] on a timer.
//!
//! # The rules
//!
//! - **Who selects the policy**: the engine. The caller passes the version in force of every
//!   policy; on every ticket event the engine takes [`select_policy`] of the ticket's current
//!   priority, group and channel. A policy edit therefore reaches a ticket with its next event,
//!   or at once through [`TicketSla::reapply_policies`].
//! - **first_reply** starts when the ticket is opened and is fulfilled by the first public reply
//!   of an agent.
//! - **next_reply** starts with a public customer reply once the first reply has been given and
//!   no next reply is awaited; the next public agent reply fulfils it. While the first reply is
//!   awaited, customer replies start nothing (the first reply answers them too).
//! - Internal notes and replies by the system fulfil and start nothing.
//! - **resolution** starts when the ticket is opened and is fulfilled when it becomes `solved`.
//!   Reopening a solved ticket starts a new activation from the reopening.
//! - **Pausing**: every running clock stops while the ticket is in one of the policy's pause
//!   statuses, and reply clocks also while it is solved or closed. Leaving resumes them; the
//!   due instant moves by the business time spent stopped. A measurement that starts while the
//!   clock is stopped (a customer reply to a pending ticket) is activated and paused at once.
//! - **Retargeting**: when the ticket's priority or group, or the policies, change the target
//!   of a running activation, the due instant is recomputed from the activation's original start
//!   with the new target, less the time paused, and a `retargeted` event records it. A due
//!   instant already past is breached at once. A target that appears mid-measurement activates
//!   it from its original start; a target that disappears withdraws it.
//! - No policy, or no target for the ticket's priority and the metric: no activation.
//! - **Breaches**: a running activation is breached when its due instant is reached (a
//!   fulfilment at exactly the due instant is late), once per activation; it stays open and
//!   its fulfilment is still recorded with its business minutes.
//! - `business_minutes` of a fulfilment are the whole business minutes on the clock: from the
//!   start to the fulfilment, less the time stopped.
//!
//! # State
//!
//! [`TicketSla`] holds two parts. What the engine knows of the ticket (priority, group,
//! channel, status timeline, when measurements started and ended) is folded from ticket
//! events by [`TicketSla::observe`]. The clocks ([`SlaClocks`]) are folded from SLA events by
//! [`TicketSla::apply`]. `on_ticket_event` does both: it decides the SLA events and applies
//! them, so the stored SLA events always rebuild the clocks exactly.

mod clocks;
mod events;
mod facts;
mod reconcile;
mod timing;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::sla::{PolicyRef, SlaPolicyDefinition, select_policy};
use crate::ticket::TicketEvent;

pub use clocks::{Activation, Outcome, SlaClocks};
pub use events::{SlaEngineError, SlaEvent};

use facts::TicketFacts;
use reconcile::{Recorder, reconcile};

/// The SLA state of one ticket.
///
/// `Default` is the state before `TicketOpened`. Serializable, so a projector may keep it as a
/// snapshot instead of folding the ticket's history on every event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketSla {
    facts: Option<TicketFacts>,
    clocks: SlaClocks,
}

impl TicketSla {
    /// The clocks, as the SLA events so far describe them.
    pub fn clocks(&self) -> &SlaClocks {
        &self.clocks
    }

    /// Processes one ticket event that happened at `at`, with `policies` the version in force
    /// of every SLA policy. Returns the SLA events it causes, in order, already applied.
    ///
    /// Breaches due before the event are recorded first, then the event's effects (fulfilment,
    /// start, pause, resume, retarget, withdrawal), then breaches the effects made due (a
    /// target already exceeded). `at` earlier than an instant already seen for this ticket is
    /// taken as that instant: time does not run backwards on a ticket.
    ///
    /// On error nothing changed; the event may be processed again once the policy is fixed.
    pub fn on_ticket_event(
        &mut self,
        event: &TicketEvent,
        at: DateTime<Utc>,
        policies: &[(PolicyRef, SlaPolicyDefinition)],
    ) -> Result<Vec<SlaEvent>, SlaEngineError> {
        self.process(Some(event), at, policies)
    }

    /// Re-selects the policy after the policies changed and brings the clocks in line at `at`:
    /// retargets, withdraws or activates as [`on_ticket_event`](Self::on_ticket_event) would.
    /// Call it for each open ticket when a policy is created or updated, or rely on the
    /// ticket's next event to do the same.
    pub fn reapply_policies(
        &mut self,
        at: DateTime<Utc>,
        policies: &[(PolicyRef, SlaPolicyDefinition)],
    ) -> Result<Vec<SlaEvent>, SlaEngineError> {
        self.process(None, at, policies)
    }

    /// Breaches due by `at`, then the event (if any), then the clocks brought in line with the
    /// facts under the selected policy, then breaches the changes made due. All or nothing.
    fn process(
        &mut self,
        event: Option<&TicketEvent>,
        at: DateTime<Utc>,
        policies: &[(PolicyRef, SlaPolicyDefinition)],
    ) -> Result<Vec<SlaEvent>, SlaEngineError> {
        let at = self.effective_instant(at);
        let mut next = self.clone();
        let mut recorder = Recorder {
            clocks: &mut next.clocks,
            events: Vec::new(),
        };
        recorder.breaches_until(at);
        if let Some(event) = event {
            observe(&mut next.facts, event, at);
        }
        if let Some(facts) = &next.facts {
            let selected = select_policy(
                policies,
                facts.priority,
                facts.group.as_deref(),
                facts.channel,
            );
            reconcile(facts, selected, at, &mut recorder)?;
            recorder.breaches_until(at);
        }
        let events = recorder.events;
        *self = next;
        Ok(events)
    }

    /// Folds a ticket event into what the engine knows of the ticket, without deciding
    /// anything. For rebuilding: observing a ticket's events and applying its stored SLA events
    /// (in any interleaving) gives the state `on_ticket_event` left.
    pub fn observe(&mut self, event: &TicketEvent, at: DateTime<Utc>) {
        let at = self.effective_instant(at);
        observe(&mut self.facts, event, at);
    }

    /// Folds one stored SLA event into the clocks.
    pub fn apply(&mut self, event: &SlaEvent) {
        self.clocks.apply(event);
    }

    /// A `breached` event for every running activation due at or before `now` and not yet
    /// breached. Store them and [`apply`](Self::apply) them.
    pub fn due_breaches(&self, now: DateTime<Utc>) -> Vec<SlaEvent> {
        self.clocks.due_breaches(now)
    }

    fn effective_instant(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        self.facts
            .as_ref()
            .map_or(at, |facts| at.max(facts.last_at))
    }
}

fn observe(facts: &mut Option<TicketFacts>, event: &TicketEvent, at: DateTime<Utc>) {
    match (facts.as_mut(), event) {
        (None, TicketEvent::TicketOpened(opened)) => {
            *facts = Some(TicketFacts::opened(
                opened.priority,
                opened.group.clone(),
                opened.channel,
                at,
            ));
        }
        // A second opening cannot happen, nor can events before the opening.
        (Some(_), TicketEvent::TicketOpened(_)) | (None, _) => {}
        (Some(facts), event) => facts.observe(event, at),
    }
}

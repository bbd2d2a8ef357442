//! The state of a ticket's SLA clocks, folded from SLA events alone.
//!
//! This is what a reader (an SLA view, a breach scheduler, `as_of` queries) can rebuild from the
//! stored SLA events without the ticket's events or the policies.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::sla::{PolicyRef, SlaMetric};

use super::events::SlaEvent;

/// The latest activation of each metric of one ticket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaClocks {
    first_reply: Option<Activation>,
    next_reply: Option<Activation>,
    resolution: Option<Activation>,
}

/// One activation of a metric, as its events describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activation {
    /// Which activation of the metric, from 1.
    pub activation: u32,
    /// The policy version whose target applies (the latest, after retargets).
    pub policy: PolicyRef,
    /// When the measurement started.
    pub started_at: DateTime<Utc>,
    /// When the target is breached if the clock runs. While paused it is hypothetical: the
    /// due instant had the clock run on from the event that last set it.
    pub due_at: DateTime<Utc>,
    /// The target, in business minutes.
    pub target_minutes: u32,
    /// Whether the clock is stopped.
    pub paused: bool,
    /// The due instant that was breached, if it was.
    pub breached_at: Option<DateTime<Utc>>,
    /// Whether the activation is still measuring, and if not how it ended.
    pub outcome: Outcome,
}

/// How an activation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Outcome {
    /// Still measuring.
    Open,
    /// Fulfilled at `at`, after `business_minutes` on the clock.
    Fulfilled {
        /// When it was fulfilled.
        at: DateTime<Utc>,
        /// Business minutes on the clock.
        business_minutes: u64,
    },
    /// Withdrawn at `at`: no target applied any more.
    Withdrawn {
        /// When it was withdrawn.
        at: DateTime<Utc>,
    },
}

impl Activation {
    /// Whether the activation is still measuring.
    pub fn is_open(&self) -> bool {
        self.outcome == Outcome::Open
    }

    /// Whether the clock runs now: open and not paused.
    pub fn is_running(&self) -> bool {
        self.is_open() && !self.paused
    }
}

impl SlaClocks {
    /// The latest activation of `metric`, if any.
    pub fn get(&self, metric: SlaMetric) -> Option<&Activation> {
        self.slot(metric).as_ref()
    }

    fn slot(&self, metric: SlaMetric) -> &Option<Activation> {
        match metric {
            SlaMetric::FirstReply => &self.first_reply,
            SlaMetric::NextReply => &self.next_reply,
            SlaMetric::Resolution => &self.resolution,
        }
    }

    fn slot_mut(&mut self, metric: SlaMetric) -> &mut Option<Activation> {
        match metric {
            SlaMetric::FirstReply => &mut self.first_reply,
            SlaMetric::NextReply => &mut self.next_reply,
            SlaMetric::Resolution => &mut self.resolution,
        }
    }

    /// Folds one SLA event. Infallible: an event about an activation other than the metric's
    /// latest changes nothing.
    pub fn apply(&mut self, event: &SlaEvent) {
        if let SlaEvent::Activated {
            metric,
            activation,
            policy,
            started_at,
            due_at,
            target_minutes,
            ..
        } = event
        {
            let slot = self.slot_mut(*metric);
            // Activating again after a withdrawal keeps the breach: it is recorded only once.
            let breached_at = slot
                .as_ref()
                .filter(|previous| previous.activation == *activation)
                .and_then(|previous| previous.breached_at);
            *slot = Some(Activation {
                activation: *activation,
                policy: policy.clone(),
                started_at: *started_at,
                due_at: *due_at,
                target_minutes: *target_minutes,
                paused: false,
                breached_at,
                outcome: Outcome::Open,
            });
            return;
        }
        let Some(current) = self
            .slot_mut(event.metric())
            .as_mut()
            .filter(|current| current.activation == event.activation())
        else {
            return;
        };
        update(current, event);
    }

    /// A `breached` event for every running activation whose due instant is at or before
    /// `now` and that has not been breached yet, earliest due first. Paused, fulfilled and
    /// withdrawn activations never breach. The caller stores the events and applies them.
    pub fn due_breaches(&self, now: DateTime<Utc>) -> Vec<SlaEvent> {
        let mut breaches: Vec<SlaEvent> = SlaMetric::ALL
            .into_iter()
            .filter_map(|metric| {
                let current = self.get(metric)?;
                let due =
                    current.is_running() && current.breached_at.is_none() && current.due_at <= now;
                due.then_some(SlaEvent::Breached {
                    metric,
                    activation: current.activation,
                    at: current.due_at,
                })
            })
            .collect();
        breaches.sort_by_key(SlaEvent::at);
        breaches
    }
}

fn update(current: &mut Activation, event: &SlaEvent) {
    match event {
        SlaEvent::Activated { .. } => {}
        SlaEvent::Paused { .. } => current.paused = true,
        SlaEvent::Resumed { due_at, .. } => {
            current.paused = false;
            current.due_at = *due_at;
        }
        SlaEvent::Retargeted {
            policy,
            due_at,
            target_minutes,
            ..
        } => {
            current.policy = policy.clone();
            current.due_at = *due_at;
            current.target_minutes = *target_minutes;
        }
        SlaEvent::Fulfilled {
            at,
            business_minutes,
            ..
        } => {
            current.outcome = Outcome::Fulfilled {
                at: *at,
                business_minutes: *business_minutes,
            };
        }
        SlaEvent::Breached { at, .. } => current.breached_at = Some(*at),
        SlaEvent::Withdrawn { at, .. } => current.outcome = Outcome::Withdrawn { at: *at },
    }
}

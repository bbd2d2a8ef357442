//! The SLA engine's output: metric events in Zendesk's vocabulary (activated, paused, resumed,
//! fulfilled, breached), plus the two our policy changes need (retargeted, withdrawn).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::sla::{ClockError, PolicyRef, SlaMetric};

/// Something that happened to one activation of one SLA metric of a ticket.
///
/// An *activation* is one measurement of a metric: `first_reply` has one per ticket,
/// `next_reply` one per customer reply that waits for an answer, `resolution` one per opening
/// and reopening. Activations of a metric are numbered from 1 in the order the ticket starts
/// them, whether or not they got a target, so a number can be skipped.
///
/// On the wire the event is an object tagged by `type`:
///
/// ```json
/// { "type": "paused", "metric": "resolution", "activation": 1, "at": "2026-06-08T10:00:00Z" }
/// ```
///
/// `at` is the instant the event took effect, always the instant of the ticket event (or the
/// breach) that caused it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SlaEvent {
    /// A target now applies to the activation; its clock runs from `started_at`.
    ///
    /// `started_at` is the instant the ticket started the measurement (opened, customer
    /// replied, reopened). It is earlier than `at` when a target only appeared later, for
    /// example when the priority was raised to one that has a target; `due_at` then counts
    /// from `started_at`, less any time paused since.
    Activated {
        /// The metric measured.
        metric: SlaMetric,
        /// Which activation of the metric, from 1.
        activation: u32,
        /// The policy version whose target applies.
        policy: PolicyRef,
        /// When the target was applied.
        at: DateTime<Utc>,
        /// When the measurement started.
        started_at: DateTime<Utc>,
        /// When the target is breached if the clock keeps running.
        due_at: DateTime<Utc>,
        /// The target, in business minutes.
        target_minutes: u32,
    },
    /// The ticket entered a status that stops the clock (a pause status of the policy, or
    /// solved/closed for reply metrics). No breach is reported while paused.
    Paused {
        /// The metric measured.
        metric: SlaMetric,
        /// Which activation of the metric.
        activation: u32,
        /// When the clock stopped.
        at: DateTime<Utc>,
    },
    /// The clock runs again; the due instant moved by the business time spent paused.
    Resumed {
        /// The metric measured.
        metric: SlaMetric,
        /// Which activation of the metric.
        activation: u32,
        /// When the clock started again.
        at: DateTime<Utc>,
        /// The new due instant.
        due_at: DateTime<Utc>,
    },
    /// The policy or target of a running measurement changed (priority, group or policy
    /// change). `due_at` is recomputed from the original start with the new target, less the
    /// time paused; it may lie in the past, and is then breached at once.
    Retargeted {
        /// The metric measured.
        metric: SlaMetric,
        /// Which activation of the metric.
        activation: u32,
        /// When the change took effect.
        at: DateTime<Utc>,
        /// The policy version whose target now applies.
        policy: PolicyRef,
        /// The new due instant.
        due_at: DateTime<Utc>,
        /// The new target, in business minutes.
        target_minutes: u32,
    },
    /// The measurement ended as the metric defines (agent replied, ticket solved), breached
    /// or not.
    Fulfilled {
        /// The metric measured.
        metric: SlaMetric,
        /// Which activation of the metric.
        activation: u32,
        /// When it was fulfilled.
        at: DateTime<Utc>,
        /// Whole business minutes from `started_at` to `at`, less the time paused.
        business_minutes: u64,
    },
    /// The target was missed. Recorded once per activation; the activation stays open until
    /// it is fulfilled or withdrawn.
    Breached {
        /// The metric measured.
        metric: SlaMetric,
        /// Which activation of the metric.
        activation: u32,
        /// The due instant that passed.
        at: DateTime<Utc>,
    },
    /// No target applies any more (the ticket's priority, group or the policies changed); the
    /// measurement ends without being fulfilled. A breach already recorded stays.
    Withdrawn {
        /// The metric measured.
        metric: SlaMetric,
        /// Which activation of the metric.
        activation: u32,
        /// When the target was withdrawn.
        at: DateTime<Utc>,
    },
}

impl SlaEvent {
    /// The metric the event concerns.
    pub fn metric(&self) -> SlaMetric {
        match self {
            SlaEvent::Activated { metric, .. }
            | SlaEvent::Paused { metric, .. }
            | SlaEvent::Resumed { metric, .. }
            | SlaEvent::Retargeted { metric, .. }
            | SlaEvent::Fulfilled { metric, .. }
            | SlaEvent::Breached { metric, .. }
            | SlaEvent::Withdrawn { metric, .. } => *metric,
        }
    }

    /// The activation the event concerns.
    pub fn activation(&self) -> u32 {
        match self {
            SlaEvent::Activated { activation, .. }
            | SlaEvent::Paused { activation, .. }
            | SlaEvent::Resumed { activation, .. }
            | SlaEvent::Retargeted { activation, .. }
            | SlaEvent::Fulfilled { activation, .. }
            | SlaEvent::Breached { activation, .. }
            | SlaEvent::Withdrawn { activation, .. } => *activation,
        }
    }

    /// The instant the event took effect (for `breached`, the due instant).
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            SlaEvent::Activated { at, .. }
            | SlaEvent::Paused { at, .. }
            | SlaEvent::Resumed { at, .. }
            | SlaEvent::Retargeted { at, .. }
            | SlaEvent::Fulfilled { at, .. }
            | SlaEvent::Breached { at, .. }
            | SlaEvent::Withdrawn { at, .. } => *at,
        }
    }

    /// Every stored event type with the `type` tag of its payload, each written in version
    /// [`SlaEvent::EVENT_VERSION`].
    pub const EVENT_TYPES: [(&'static str, &'static str); 7] = [
        ("SlaMetricActivated", "activated"),
        ("SlaMetricPaused", "paused"),
        ("SlaMetricResumed", "resumed"),
        ("SlaMetricRetargeted", "retargeted"),
        ("SlaMetricFulfilled", "fulfilled"),
        ("SlaBreached", "breached"),
        ("SlaMetricWithdrawn", "withdrawn"),
    ];

    /// The version written for every SLA event type.
    pub const EVENT_VERSION: &'static str = "1";

    /// The event type it is stored and published under (`SlaBreached`, …).
    pub fn event_type(&self) -> &'static str {
        match self {
            SlaEvent::Activated { .. } => "SlaMetricActivated",
            SlaEvent::Paused { .. } => "SlaMetricPaused",
            SlaEvent::Resumed { .. } => "SlaMetricResumed",
            SlaEvent::Retargeted { .. } => "SlaMetricRetargeted",
            SlaEvent::Fulfilled { .. } => "SlaMetricFulfilled",
            SlaEvent::Breached { .. } => "SlaBreached",
            SlaEvent::Withdrawn { .. } => "SlaMetricWithdrawn",
        }
    }

    /// The stable name of the event, as in the `type` tag.
    pub fn name(&self) -> &'static str {
        match self {
            SlaEvent::Activated { .. } => "activated",
            SlaEvent::Paused { .. } => "paused",
            SlaEvent::Resumed { .. } => "resumed",
            SlaEvent::Retargeted { .. } => "retargeted",
            SlaEvent::Fulfilled { .. } => "fulfilled",
            SlaEvent::Breached { .. } => "breached",
            SlaEvent::Withdrawn { .. } => "withdrawn",
        }
    }
}

/// Why the engine could not process a ticket event. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlaEngineError {
    /// The policy's calendar has no due instant for a target within the clock's horizon.
    /// Policy validation keeps targets within a year of opening hours, so only a calendar
    /// whose holidays cover years can get here; fix the policy and process the event again.
    #[error("{metric} activation {activation} under policy {policy} has no due time: {source}")]
    NoDueTime {
        /// The metric being computed.
        metric: SlaMetric,
        /// Which activation of the metric.
        activation: u32,
        /// The policy version whose calendar failed.
        policy: PolicyRef,
        /// What the clock said.
        source: ClockError,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sla::SlaMetric;

    #[test]
    fn every_event_is_stored_under_a_listed_type_with_its_tag() {
        let at = DateTime::<Utc>::UNIX_EPOCH;
        let metric = SlaMetric::FirstReply;
        let events = [
            SlaEvent::Paused {
                metric,
                activation: 1,
                at,
            },
            SlaEvent::Resumed {
                metric,
                activation: 1,
                at,
                due_at: at,
            },
            SlaEvent::Fulfilled {
                metric,
                activation: 1,
                at,
                business_minutes: 3,
            },
            SlaEvent::Breached {
                metric,
                activation: 1,
                at,
            },
            SlaEvent::Withdrawn {
                metric,
                activation: 1,
                at,
            },
        ];
        for event in events {
            let tag = serde_json::to_value(&event).unwrap()["type"].clone();
            assert_eq!(tag, event.name());
            assert!(
                SlaEvent::EVENT_TYPES.contains(&(event.event_type(), event.name())),
                "{} is not listed",
                event.event_type()
            );
        }
        let types: std::collections::BTreeSet<_> = SlaEvent::EVENT_TYPES
            .iter()
            .map(|(stored, _)| stored)
            .collect();
        assert_eq!(types.len(), SlaEvent::EVENT_TYPES.len());
    }
}

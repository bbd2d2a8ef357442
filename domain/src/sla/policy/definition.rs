//! What an SLA policy says: which tickets it covers, the targets per priority, the calendar the
//! targets are counted in, and the statuses that stop the clock.

use serde::{Deserialize, Serialize};

use crate::sla::{Calendar, SlaMetric};
use crate::ticket::{Channel, Priority, Status};

/// One version of an SLA policy, as an administrator writes it.
///
/// ```json
/// {
///   "name": "Enterprise email",
///   "position": 10,
///   "applies_to": { "channels": ["email"], "groups": ["enterprise"] },
///   "targets": {
///     "urgent": { "first_reply": 30, "next_reply": 60, "resolution": 480 },
///     "normal": { "first_reply": 240 }
///   },
///   "calendar": { "kind": "always" },
///   "pause_statuses": ["pending", "on_hold"]
/// }
/// ```
///
/// Deserialization rejects unknown fields, so a misspelt target is an error rather than a
/// missing target. Call [`SlaPolicyDefinition::validate`] for the rules on values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SlaPolicyDefinition {
    /// Display name, 1–200 characters after trimming.
    pub name: String,
    /// Where the policy stands in the matching order: the matching policy with the lowest
    /// position applies; equal positions are ordered by policy id.
    pub position: u32,
    /// Which tickets the policy covers; omitted means every ticket.
    #[serde(default)]
    pub applies_to: AppliesTo,
    /// Targets per priority, in business minutes of `calendar`.
    pub targets: PriorityTargets,
    /// When the targets' minutes pass.
    pub calendar: Calendar,
    /// Statuses in which every running clock of the policy is paused. Only `pending` and
    /// `on_hold` may be listed; omitted means both.
    #[serde(default = "default_pause_statuses")]
    pub pause_statuses: Vec<Status>,
}

/// The statuses that pause SLA clocks unless a policy says otherwise: waiting on the customer
/// (`pending`) or on a third party (`on_hold`).
pub fn default_pause_statuses() -> Vec<Status> {
    vec![Status::Pending, Status::OnHold]
}

impl SlaPolicyDefinition {
    /// The target of `metric` for a ticket of `priority`, in business minutes, if any.
    pub fn target(&self, priority: Priority, metric: SlaMetric) -> Option<u32> {
        self.targets.for_priority(priority)?.get(metric)
    }

    /// Whether the policy covers a ticket with these facts. An empty list matches anything;
    /// a ticket without a group never matches a policy that lists groups.
    pub fn applies(&self, priority: Priority, group: Option<&str>, channel: Channel) -> bool {
        let rules = &self.applies_to;
        let priority_matches = rules.priorities.is_empty() || rules.priorities.contains(&priority);
        let group_matches = rules.groups.is_empty()
            || group.is_some_and(|group| rules.groups.iter().any(|listed| listed == group));
        let channel_matches = rules.channels.is_empty() || rules.channels.contains(&channel);
        priority_matches && group_matches && channel_matches
    }

    /// Whether SLA clocks of this policy stand still while the ticket is in `status`: in the
    /// policy's pause statuses, and always once the ticket is solved or closed (nobody owes a
    /// reply on a solved ticket; a reopen starts them again).
    pub fn clock_stops_in(&self, status: Status) -> bool {
        matches!(status, Status::Solved | Status::Closed) || self.pause_statuses.contains(&status)
    }
}

/// Which tickets a policy covers. Each list is a set of allowed values; an empty list allows
/// any value. A ticket must pass all three lists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AppliesTo {
    /// Ticket priorities covered; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub priorities: Vec<Priority>,
    /// Group ids covered; empty means all, including tickets without a group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Channels covered; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<Channel>,
}

/// Targets per ticket priority. A missing priority has no targets: its tickets get no SLA
/// clock from this policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PriorityTargets {
    /// Targets for `low` tickets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low: Option<MetricTargets>,
    /// Targets for `normal` tickets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normal: Option<MetricTargets>,
    /// Targets for `high` tickets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high: Option<MetricTargets>,
    /// Targets for `urgent` tickets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urgent: Option<MetricTargets>,
}

impl PriorityTargets {
    /// The targets for one priority.
    pub fn for_priority(&self, priority: Priority) -> Option<&MetricTargets> {
        match priority {
            Priority::Low => self.low.as_ref(),
            Priority::Normal => self.normal.as_ref(),
            Priority::High => self.high.as_ref(),
            Priority::Urgent => self.urgent.as_ref(),
        }
    }

    /// Every priority with its targets, lowest priority first.
    pub fn iter(&self) -> impl Iterator<Item = (Priority, Option<&MetricTargets>)> {
        [
            (Priority::Low, self.low.as_ref()),
            (Priority::Normal, self.normal.as_ref()),
            (Priority::High, self.high.as_ref()),
            (Priority::Urgent, self.urgent.as_ref()),
        ]
        .into_iter()
    }
}

/// The targets of one priority, in business minutes. A missing metric is not measured.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MetricTargets {
    /// First reply time target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_reply: Option<u32>,
    /// Next reply time target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_reply: Option<u32>,
    /// Resolution time target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<u32>,
}

impl MetricTargets {
    /// The target of one metric.
    pub fn get(&self, metric: SlaMetric) -> Option<u32> {
        match metric {
            SlaMetric::FirstReply => self.first_reply,
            SlaMetric::NextReply => self.next_reply,
            SlaMetric::Resolution => self.resolution,
        }
    }
}

//! Which policy applies to a ticket.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ticket::{Channel, Priority};

use super::definition::SlaPolicyDefinition;

/// One version of one policy: the policy's id and the aggregate sequence of the event that
/// produced this version (1 for the creation, then one more per update).
///
/// SLA events name the version they were computed with, so a report can tell which rules a
/// ticket was measured against even after the policy changed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyRef {
    /// The policy's id (its aggregate id).
    pub id: String,
    /// The policy's version.
    pub version: u64,
}

impl fmt::Display for PolicyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} v{}", self.id, self.version)
    }
}

/// The policy that applies to a ticket with these facts: of the policies whose
/// [`applies_to`](SlaPolicyDefinition::applies_to) matches, the one with the lowest
/// `position`, equal positions broken by the lower policy id (so the choice never depends on
/// the order of the list). `None` when no policy matches.
///
/// `policies` holds the version in force of each policy, each policy once. A policy that
/// matches but has no target for the ticket's priority still wins: the ticket then has no SLA
/// for those metrics, rather than falling through to a later policy.
pub fn select_policy<'a>(
    policies: &'a [(PolicyRef, SlaPolicyDefinition)],
    priority: Priority,
    group: Option<&str>,
    channel: Channel,
) -> Option<&'a (PolicyRef, SlaPolicyDefinition)> {
    policies
        .iter()
        .filter(|(_, definition)| definition.applies(priority, group, channel))
        .min_by(|(a_ref, a), (b_ref, b)| (a.position, &a_ref.id).cmp(&(b.position, &b_ref.id)))
}

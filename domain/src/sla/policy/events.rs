//! The facts stored for an SLA policy. Each event is a new version of the policy; the version
//! number is the event's aggregate sequence. Same rules as the ticket's events: stable names,
//! versioned shapes, never rewritten.

use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use super::definition::SlaPolicyDefinition;

/// A policy was created; this is its version 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct SlaPolicyCreated {
    /// The policy's id (also the aggregate id).
    pub policy_id: String,
    /// The definition, validated, name trimmed.
    pub definition: SlaPolicyDefinition,
}

/// A policy's definition was replaced; this is its next version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct SlaPolicyUpdated {
    /// The complete new definition, validated, name trimmed.
    pub definition: SlaPolicyDefinition,
}

/// Every event of the SLA policy aggregate, externally tagged (`{"SlaPolicyCreated": {…}}`)
/// as cqrs-es stores them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SlaPolicyEvent {
    /// See [`SlaPolicyCreated`].
    SlaPolicyCreated(SlaPolicyCreated),
    /// See [`SlaPolicyUpdated`].
    SlaPolicyUpdated(SlaPolicyUpdated),
}

impl SlaPolicyEvent {
    /// Every `(event_type, event_version)` this code writes.
    pub const CURRENT_VERSIONS: [(&'static str, &'static str); 2] =
        [("SlaPolicyCreated", "1"), ("SlaPolicyUpdated", "1")];

    /// The stable name of the event.
    pub fn name(&self) -> &'static str {
        match self {
            SlaPolicyEvent::SlaPolicyCreated(_) => "SlaPolicyCreated",
            SlaPolicyEvent::SlaPolicyUpdated(_) => "SlaPolicyUpdated",
        }
    }

    /// The version this code writes for the event.
    pub fn version(&self) -> &'static str {
        let name = self.name();
        SlaPolicyEvent::CURRENT_VERSIONS
            .iter()
            .find(|(event, _)| *event == name)
            .map_or("1", |(_, version)| version)
    }

    /// The definition this event makes current.
    pub fn definition(&self) -> &SlaPolicyDefinition {
        match self {
            SlaPolicyEvent::SlaPolicyCreated(created) => &created.definition,
            SlaPolicyEvent::SlaPolicyUpdated(updated) => &updated.definition,
        }
    }
}

impl DomainEvent for SlaPolicyEvent {
    fn event_type(&self) -> String {
        self.name().to_owned()
    }

    fn event_version(&self) -> String {
        self.version().to_owned()
    }
}

//! The facts stored in the event log. Each event has a stable past-tense name and a version.
//!
//! A stored event is never renamed or reshaped: a change in shape means a new version (and an
//! upcaster for the old rows). The JSON Schema of every `(name, version)` is generated into
//! `schemas/events/` and a test fails when it drifts from these types.
//!
//! Who did it, when and why is not in the payload: it is in the event metadata (actor id and
//! role, occurred-at, correlation, causation and request ids), written by the command API.

use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use super::values::{Author, Channel, Priority, Requester, Status, Visibility};

/// A customer asked for help; the ticket exists from here on, with status `new`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct TicketOpened {
    /// The ticket's id (also the aggregate id).
    pub ticket_id: String,
    /// One-line summary, trimmed, 1–200 characters.
    pub subject: String,
    /// The request itself, at most 64 KiB.
    pub description: String,
    pub priority: Priority,
    pub channel: Channel,
    pub requester: Requester,
    /// Initial tags, deduplicated, in the order given.
    pub tags: Vec<String>,
    /// The group the ticket was routed to, if any.
    pub group: Option<String>,
}

/// The ticket moved from one status to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct TicketStatusChanged {
    pub from: Status,
    pub to: Status,
}

/// The ticket's priority changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct TicketPriorityChanged {
    pub from: Priority,
    pub to: Priority,
}

/// The assignee and/or group changed. Both the new and the previous values are recorded, so a
/// reader never has to replay history to know what changed; `null` means unassigned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct TicketAssigned {
    pub assignee: Option<String>,
    pub group: Option<String>,
    pub previous_assignee: Option<String>,
    pub previous_group: Option<String>,
}

/// Someone added an interaction: a public reply or an internal note.
///
/// Version 2 added `attachments`. Version 1 rows are upcast on read (see `upcast`): they had
/// no attachments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct ReplyAdded {
    /// Id of the interaction, unique across the product.
    pub interaction_id: String,
    pub author: Author,
    pub visibility: Visibility,
    /// The text, at most 64 KiB, line endings normalised to `\n`.
    pub body: String,
    /// Files attached to the interaction (since version 2; empty until uploads exist).
    pub attachments: Vec<Attachment>,
}

/// A file attached to an interaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Attachment {
    /// Id of the stored file.
    pub id: String,
    /// File name as uploaded.
    pub name: String,
    /// Media type, e.g. `image/png`.
    pub content_type: String,
    /// Size in bytes.
    pub size: u64,
}

/// Tags were added to and/or removed from the ticket. Lists only real changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct TagsChanged {
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

/// Every event of the ticket aggregate.
///
/// Serialized externally tagged (`{"TicketOpened": {…}}`) in the `payload` column, as cqrs-es
/// expects; the `event_type` and `event_version` columns carry the name and version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TicketEvent {
    TicketOpened(TicketOpened),
    TicketStatusChanged(TicketStatusChanged),
    TicketPriorityChanged(TicketPriorityChanged),
    TicketAssigned(TicketAssigned),
    ReplyAdded(ReplyAdded),
    TagsChanged(TagsChanged),
}

impl TicketEvent {
    /// Every `(event_type, event_version)` this code writes. Used to generate the schemas and
    /// to check that none is missing.
    pub const CURRENT_VERSIONS: [(&'static str, &'static str); 6] = [
        ("TicketOpened", "1"),
        ("TicketStatusChanged", "1"),
        ("TicketPriorityChanged", "1"),
        ("TicketAssigned", "1"),
        ("ReplyAdded", "2"),
        ("TagsChanged", "1"),
    ];

    /// The stable name of the event.
    pub fn name(&self) -> &'static str {
        match self {
            TicketEvent::TicketOpened(_) => "TicketOpened",
            TicketEvent::TicketStatusChanged(_) => "TicketStatusChanged",
            TicketEvent::TicketPriorityChanged(_) => "TicketPriorityChanged",
            TicketEvent::TicketAssigned(_) => "TicketAssigned",
            TicketEvent::ReplyAdded(_) => "ReplyAdded",
            TicketEvent::TagsChanged(_) => "TagsChanged",
        }
    }

    /// The version this code writes for the event.
    pub fn version(&self) -> &'static str {
        let name = self.name();
        TicketEvent::CURRENT_VERSIONS
            .iter()
            .find(|(event, _)| *event == name)
            .map_or("1", |(_, version)| version)
    }
}

impl DomainEvent for TicketEvent {
    fn event_type(&self) -> String {
        self.name().to_owned()
    }

    fn event_version(&self) -> String {
        self.version().to_owned()
    }
}

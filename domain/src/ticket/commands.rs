//! What a user may ask of a ticket. Commands carry raw user input (the aggregate validates it)
//! plus everything the domain may not look up itself: the new ids and the acting user.

use crate::actor::Actor;

use super::values::{Channel, Priority, Requester, Status, Visibility};

/// Open a new ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenTicket {
    /// The id chosen for the ticket by the caller (the API generates a UUIDv7).
    pub ticket_id: String,
    pub subject: String,
    pub description: String,
    pub priority: Priority,
    pub channel: Channel,
    pub requester: Requester,
    pub tags: Vec<String>,
    pub group: Option<String>,
}

/// Assign or unassign an agent and/or a group. For each field, `None` leaves it as it is,
/// `Some(None)` unassigns, and `Some(Some(id))` assigns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AssignTicket {
    pub assignee: Option<Option<String>>,
    pub group: Option<Option<String>>,
}

/// Add and/or remove tags.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChangeTags {
    pub add: Vec<String>,
    pub remove: Vec<String>,
}

/// Add a public reply or an internal note, written by the acting user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddInteraction {
    /// The id chosen for the interaction by the caller.
    pub interaction_id: String,
    pub author: Actor,
    pub visibility: Visibility,
    pub body: String,
}

/// Every command the ticket aggregate handles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketCommand {
    Open(OpenTicket),
    ChangeStatus { to: Status },
    ChangePriority { to: Priority },
    Assign(AssignTicket),
    ChangeTags(ChangeTags),
    AddInteraction(AddInteraction),
}

impl TicketCommand {
    /// Stable name of the command, for metrics and logs.
    pub fn name(&self) -> &'static str {
        match self {
            TicketCommand::Open(_) => "open_ticket",
            TicketCommand::ChangeStatus { .. } => "change_status",
            TicketCommand::ChangePriority { .. } => "change_priority",
            TicketCommand::Assign(_) => "assign",
            TicketCommand::ChangeTags(_) => "change_tags",
            TicketCommand::AddInteraction(_) => "add_interaction",
        }
    }
}

//! The ticket aggregate: one support request and everything that happened to it.
//!
//! - `values`: the vocabulary (status, priority, channel, …);
//! - `commands`: what a user may ask for;
//! - `events`: the past-tense facts that get stored, each with a stable name and version;
//! - `errors`: one variant per broken rule;
//! - `aggregate`: the state rebuilt from events and the `decide` function;
//! - `upcast`: how stored events of older versions are read as the current version.

mod aggregate;
mod commands;
mod errors;
mod events;
pub mod upcast;
mod values;

pub use aggregate::Ticket;
pub use commands::{AddInteraction, AssignTicket, ChangeTags, OpenTicket, TicketCommand};
pub use errors::TicketError;
pub use events::{
    Attachment, ReplyAdded, TagsChanged, TicketAssigned, TicketEvent, TicketOpened,
    TicketPriorityChanged, TicketStatusChanged,
};
pub use values::{Author, AuthorKind, Channel, Priority, Requester, Status, Visibility};

#[cfg(test)]
mod tests;

//! One variant per broken rule. Messages are lowercase and say what is wrong, not what to do.

use crate::validation::Violations;

use super::values::Status;

/// Why the ticket aggregate refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// One or more fields of the command are invalid.
    #[error("invalid input: {0}")]
    Invalid(Violations),
    /// The ticket was never opened.
    #[error("ticket not found")]
    NotFound,
    /// An open command for an id that already has a ticket.
    #[error("ticket already exists")]
    AlreadyOpened,
    /// Closed tickets are final.
    #[error("ticket is closed")]
    Closed,
    /// A solved ticket only accepts being reopened or closed.
    #[error("ticket is solved; only reopening or closing it is allowed")]
    Solved,
    /// The status graph does not have this edge.
    #[error("a ticket cannot move from {from} to {to}")]
    InvalidTransition {
        from: &'static str,
        to: &'static str,
    },
    /// The command would change nothing.
    #[error("{0}")]
    NoChange(&'static str),
    /// Internal notes are for staff.
    #[error("only staff (agents, managers, admins) may add internal notes")]
    InternalNoteNotAllowed,
}

impl TicketError {
    pub(crate) fn invalid_transition(from: Status, to: Status) -> Self {
        TicketError::InvalidTransition {
            from: from.as_str(),
            to: to.as_str(),
        }
    }
}

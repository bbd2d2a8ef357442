//! One variant per broken rule. Messages are lowercase and say what is wrong.

use crate::validation::Violations;

/// Why the SLA policy aggregate refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlaPolicyError {
    /// One or more fields of the definition (or the id) are invalid.
    #[error("invalid input: {0}")]
    Invalid(Violations),
    /// The policy was never created.
    #[error("sla policy not found")]
    NotFound,
    /// A create command for an id that already has a policy.
    #[error("sla policy already exists")]
    AlreadyExists,
    /// An update whose definition equals the current version.
    #[error("sla policy already has this definition")]
    NoChange,
}

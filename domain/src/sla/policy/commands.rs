//! What an administrator may ask of an SLA policy. The definition arrives as written; the
//! aggregate trims and validates it.

use super::definition::SlaPolicyDefinition;

/// Every command the SLA policy aggregate handles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlaPolicyCommand {
    /// Create the policy with its first version.
    Create {
        /// The id chosen for the policy by the caller (the API generates it).
        policy_id: String,
        /// The first version of the policy.
        definition: SlaPolicyDefinition,
    },
    /// Replace the policy's definition with a new version.
    Update {
        /// The new version of the policy, complete.
        definition: SlaPolicyDefinition,
    },
}

impl SlaPolicyCommand {
    /// Stable name of the command, for metrics and logs.
    pub fn name(&self) -> &'static str {
        match self {
            SlaPolicyCommand::Create { .. } => "create_sla_policy",
            SlaPolicyCommand::Update { .. } => "update_sla_policy",
        }
    }
}

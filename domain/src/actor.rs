//! Who performs a command. The command API fills this in from the verified token; the domain
//! uses it to decide rules such as "only staff may add internal notes".

use serde::{Deserialize, Serialize};

/// The role of the person or process acting on a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A requester: someone asking for help.
    Customer,
    /// A support agent working tickets.
    Agent,
    /// An agent who also manages SLA policies and reads reports.
    Manager,
    /// Read-only access to everything, for compliance.
    Auditor,
    /// Full access.
    Admin,
    /// The product itself (automations, the SLA breach watcher).
    System,
}

impl Role {
    /// Every role, in a stable order (used for error messages and documentation).
    pub const ALL: [Role; 6] = [
        Role::Customer,
        Role::Agent,
        Role::Manager,
        Role::Auditor,
        Role::Admin,
        Role::System,
    ];

    /// The wire name of the role, as stored in event metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Agent => "agent",
            Role::Manager => "manager",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
            Role::System => "system",
        }
    }

    /// Parses a wire name; `None` for anything that is not a role.
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == name)
    }
}

/// The acting user of a command: an id and a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// Stable id of the user (the token subject).
    pub id: String,
    /// The role the user acts in.
    pub role: Role,
}

impl Actor {
    /// Builds an actor.
    pub fn new(id: impl Into<String>, role: Role) -> Self {
        Self {
            id: id.into(),
            role,
        }
    }
}

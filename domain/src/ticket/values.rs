//! The ticket's vocabulary. Wire names are `snake_case` and never change once published.

use serde::{Deserialize, Serialize};

/// How urgent a ticket is. Ordered: `low < normal < high < urgent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    Normal,
    High,
    Urgent,
}

/// Where a ticket's life stands.
///
/// `new → open → pending | on_hold → solved → closed`. Agents move freely between `open`,
/// `pending` and `on_hold`; `solved` may be reopened to `open` or closed; `closed` is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Status {
    New,
    Open,
    Pending,
    OnHold,
    Solved,
    Closed,
}

impl Status {
    /// Whether a ticket in `self` may move to `to`. Staying put is not a transition.
    pub fn can_become(self, to: Status) -> bool {
        use Status::*;
        match (self, to) {
            // A new ticket may be picked up, parked, or solved on first touch.
            (New, Open | Pending | OnHold | Solved) => true,
            (Open | Pending | OnHold, Open | Pending | OnHold) => self != to,
            (Open | Pending | OnHold, Solved) => true,
            // Reopen, or close for good.
            (Solved, Open | Closed) => true,
            _ => false,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Open => "open",
            Status::Pending => "pending",
            Status::OnHold => "on_hold",
            Status::Solved => "solved",
            Status::Closed => "closed",
        }
    }
}

/// Through which channel a ticket arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Web,
    Email,
    Api,
    Chat,
    Phone,
}

/// Who may read an interaction: everyone on the ticket, or only staff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Visible to the requester.
    Public,
    /// An internal note: staff only.
    Internal,
}

/// What kind of participant wrote an interaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AuthorKind {
    Customer,
    Agent,
    System,
}

impl AuthorKind {
    /// The author kind a role writes as: staff roles write as agents.
    pub fn for_role(role: crate::Role) -> AuthorKind {
        use crate::Role;
        match role {
            Role::Customer => AuthorKind::Customer,
            Role::Agent | Role::Manager | Role::Auditor | Role::Admin => AuthorKind::Agent,
            Role::System => AuthorKind::System,
        }
    }
}

/// The writer of an interaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Author {
    /// The author's user id.
    pub id: String,
    /// Customer, agent or system.
    pub kind: AuthorKind,
}

/// The customer who asked for help.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Requester {
    /// Stable id of the customer (1–100 characters).
    pub customer_id: String,
    /// Display name (at most 200 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Contact address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::Status::*;

    #[test]
    fn agents_move_freely_between_working_statuses() {
        for from in [Open, Pending, OnHold] {
            for to in [Open, Pending, OnHold] {
                assert_eq!(from.can_become(to), from != to, "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn closed_is_final_and_new_is_never_reentered() {
        for to in [New, Open, Pending, OnHold, Solved, Closed] {
            assert!(!Closed.can_become(to));
        }
        for from in [Open, Pending, OnHold, Solved, Closed] {
            assert!(!from.can_become(New));
        }
    }

    #[test]
    fn only_solved_tickets_can_be_closed() {
        for from in [New, Open, Pending, OnHold] {
            assert!(!from.can_become(Closed));
        }
        assert!(Solved.can_become(Closed));
    }
}

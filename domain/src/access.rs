//! Who may do what: the one policy every endpoint consults before data leaves or a command runs.
//!
//! Pure decisions from (principal, action, the ticket's ownership facts) to allow, forbid, or
//! "not found". A customer asking about a ticket that is not theirs gets `Hidden`, answered as
//! 404, so that the existence of other customers' tickets never leaks.
//!
//! | role     | tickets it sees                   | may write                                         |
//! |----------|-----------------------------------|---------------------------------------------------|
//! | customer | its own (requester = its id)      | open as itself; public replies; status → solved/open |
//! | agent    | all, or its groups' + ungrouped   | everything on visible tickets, internal notes      |
//! | manager  | all                               | as agent, plus SLA policies and reports            |
//! | auditor  | all, internal notes included      | nothing                                            |
//! | admin    | all                               | everything                                         |

use crate::actor::{Actor, Role};
use crate::ticket::{Status, Visibility};

/// An authenticated caller, as established from a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token subject.
    pub id: String,
    pub role: Role,
    /// Groups the caller works in (agents).
    pub groups: Vec<String>,
    /// For customers: the customer they are.
    pub customer_id: Option<String>,
}

impl Principal {
    /// The actor recorded in event metadata.
    pub fn actor(&self) -> Actor {
        Actor::new(self.id.clone(), self.role)
    }

    fn is_staff(&self) -> bool {
        matches!(self.role, Role::Agent | Role::Manager | Role::Admin)
    }
}

/// Which tickets agents see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AgentScope {
    /// Every ticket.
    #[default]
    All,
    /// Tickets of their groups, and tickets not routed to any group yet.
    Groups,
}

/// The ownership facts of a ticket that access depends on.
#[derive(Debug, Clone, Copy)]
pub struct TicketFacts<'a> {
    pub requester_id: &'a str,
    pub group: Option<&'a str>,
}

/// What the caller wants to do.
#[derive(Debug, Clone, Copy)]
pub enum Action<'a> {
    /// Open a ticket for this requester.
    Open {
        requester_id: &'a str,
    },
    /// Read a ticket.
    Read,
    ChangeStatus {
        to: Status,
    },
    ChangePriority,
    Assign,
    ChangeTags,
    AddInteraction {
        visibility: Visibility,
    },
}

/// The policy's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    Allowed,
    /// The caller may know the ticket exists but may not do this (403).
    Forbidden(&'static str),
    /// The caller may not even know the ticket exists (404).
    Hidden,
}

/// Decides whether `principal` may perform `action` on the ticket described by `ticket`
/// (`None` only for `Open`, which has no ticket yet).
pub fn decide(
    principal: &Principal,
    scope: AgentScope,
    action: Action<'_>,
    ticket: Option<TicketFacts<'_>>,
) -> Access {
    if let Action::Open { requester_id } = action {
        return decide_open(principal, requester_id);
    }
    if let Some(ticket) = ticket
        && !can_see(principal, scope, ticket)
    {
        return Access::Hidden;
    }
    match principal.role {
        Role::Admin | Role::Manager | Role::Agent => Access::Allowed,
        Role::Auditor => match action {
            Action::Read => Access::Allowed,
            _ => Access::Forbidden("auditors have read-only access"),
        },
        Role::Customer => decide_customer(action),
        Role::System => Access::Allowed,
    }
}

fn decide_open(principal: &Principal, requester_id: &str) -> Access {
    match principal.role {
        Role::Auditor => Access::Forbidden("auditors have read-only access"),
        Role::Customer if principal.customer_id.as_deref() != Some(requester_id) => {
            Access::Forbidden("customers may only open tickets for themselves")
        }
        _ => Access::Allowed,
    }
}

fn decide_customer(action: Action<'_>) -> Access {
    match action {
        Action::Read | Action::Open { .. } => Access::Allowed,
        Action::AddInteraction {
            visibility: Visibility::Public,
        } => Access::Allowed,
        Action::AddInteraction {
            visibility: Visibility::Internal,
        } => Access::Forbidden("only staff may add internal notes"),
        Action::ChangeStatus {
            to: Status::Solved | Status::Open,
        } => Access::Allowed,
        Action::ChangeStatus { .. } => {
            Access::Forbidden("customers may only mark their tickets solved or reopen them")
        }
        Action::ChangePriority | Action::Assign | Action::ChangeTags => {
            Access::Forbidden("only staff may change priority, assignment or tags")
        }
    }
}

/// Whether the principal may know the ticket exists.
pub fn can_see(principal: &Principal, scope: AgentScope, ticket: TicketFacts<'_>) -> bool {
    match principal.role {
        Role::Customer => principal.customer_id.as_deref() == Some(ticket.requester_id),
        Role::Agent if scope == AgentScope::Groups => match ticket.group {
            None => true,
            Some(group) => principal.groups.iter().any(|g| g == group),
        },
        _ => true,
    }
}

/// Whether the principal may read operational state (projections, dead letters): managers,
/// auditors and admins.
pub fn may_read_operations(principal: &Principal) -> bool {
    matches!(principal.role, Role::Manager | Role::Auditor | Role::Admin)
}

/// Whether the principal may read SLA reports (compliance and breaches): managers, auditors
/// and admins, who oversee the desk; agents and customers may not.
pub fn may_read_reports(principal: &Principal) -> bool {
    matches!(principal.role, Role::Manager | Role::Auditor | Role::Admin)
}

/// Whether the principal may read internal notes.
pub fn sees_internal_notes(principal: &Principal) -> bool {
    principal.is_staff() || principal.role == Role::Auditor
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(role: Role) -> Principal {
        Principal {
            id: "u-1".into(),
            role,
            groups: vec!["billing".into()],
            customer_id: (role == Role::Customer).then(|| "cust-1".into()),
        }
    }

    const OWN: TicketFacts<'static> = TicketFacts {
        requester_id: "cust-1",
        group: Some("billing"),
    };
    const OTHERS: TicketFacts<'static> = TicketFacts {
        requester_id: "cust-2",
        group: Some("tech"),
    };

    #[test]
    fn a_customer_cannot_learn_that_another_customers_ticket_exists() {
        let customer = principal(Role::Customer);
        for action in [Action::Read, Action::ChangePriority] {
            assert_eq!(
                decide(&customer, AgentScope::All, action, Some(OTHERS)),
                Access::Hidden
            );
        }
    }

    #[test]
    fn a_customer_may_reply_publicly_solve_and_reopen_its_own_ticket_only() {
        let customer = principal(Role::Customer);
        let allowed = [
            Action::Read,
            Action::AddInteraction {
                visibility: Visibility::Public,
            },
            Action::ChangeStatus { to: Status::Solved },
            Action::ChangeStatus { to: Status::Open },
        ];
        for action in allowed {
            assert_eq!(
                decide(&customer, AgentScope::All, action, Some(OWN)),
                Access::Allowed
            );
        }
        let forbidden = [
            Action::AddInteraction {
                visibility: Visibility::Internal,
            },
            Action::ChangeStatus {
                to: Status::Pending,
            },
            Action::ChangePriority,
            Action::Assign,
            Action::ChangeTags,
        ];
        for action in forbidden {
            assert!(matches!(
                decide(&customer, AgentScope::All, action, Some(OWN)),
                Access::Forbidden(_)
            ));
        }
    }

    #[test]
    fn a_customer_opens_tickets_only_for_itself() {
        let customer = principal(Role::Customer);
        let own = Action::Open {
            requester_id: "cust-1",
        };
        let other = Action::Open {
            requester_id: "cust-2",
        };
        assert_eq!(
            decide(&customer, AgentScope::All, own, None),
            Access::Allowed
        );
        assert!(matches!(
            decide(&customer, AgentScope::All, other, None),
            Access::Forbidden(_)
        ));
    }

    #[test]
    fn sla_reports_are_for_managers_auditors_and_admins() {
        let readers: Vec<Role> = [
            Role::Customer,
            Role::Agent,
            Role::Manager,
            Role::Auditor,
            Role::Admin,
        ]
        .into_iter()
        .filter(|role| may_read_reports(&principal(*role)))
        .collect();
        assert_eq!(readers, [Role::Manager, Role::Auditor, Role::Admin]);
    }

    #[test]
    fn an_auditor_reads_everything_and_writes_nothing() {
        let auditor = principal(Role::Auditor);
        assert_eq!(
            decide(&auditor, AgentScope::All, Action::Read, Some(OTHERS)),
            Access::Allowed
        );
        assert!(matches!(
            decide(&auditor, AgentScope::All, Action::Assign, Some(OTHERS)),
            Access::Forbidden(_)
        ));
        assert!(sees_internal_notes(&auditor));
    }

    #[test]
    fn group_scoped_agents_see_their_groups_and_ungrouped_tickets() {
        let agent = principal(Role::Agent);
        let ungrouped = TicketFacts {
            requester_id: "cust-2",
            group: None,
        };
        assert!(can_see(&agent, AgentScope::Groups, OWN));
        assert!(can_see(&agent, AgentScope::Groups, ungrouped));
        assert!(!can_see(&agent, AgentScope::Groups, OTHERS));
        assert!(can_see(&agent, AgentScope::All, OTHERS));
        assert!(can_see(
            &principal(Role::Manager),
            AgentScope::Groups,
            OTHERS
        ));
    }
}

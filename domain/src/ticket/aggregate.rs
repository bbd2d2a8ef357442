//! The ticket aggregate: state rebuilt from events, and `decide`, the pure function from
//! (state, command) to new events or a refusal.

use std::collections::BTreeSet;

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

use crate::Role;
use crate::validation::{self, MAX_TAGS_PER_TICKET, Violations};

use super::commands::{AddInteraction, AssignTicket, ChangeTags, OpenTicket, TicketCommand};
use super::errors::TicketError;
use super::events::*;
use super::values::{Author, AuthorKind, Priority, Requester, Status, Visibility};

/// What the ticket needs to remember to decide on the next command.
///
/// `Default` is the state before `TicketOpened`: a ticket that does not exist.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    opened: Option<OpenState>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct OpenState {
    status: Status,
    priority: Priority,
    requester_id: String,
    assignee: Option<String>,
    group: Option<String>,
    tags: BTreeSet<String>,
}

impl Ticket {
    /// Whether the ticket has been opened.
    pub fn exists(&self) -> bool {
        self.opened.is_some()
    }

    /// Current status, if the ticket exists.
    pub fn status(&self) -> Option<Status> {
        self.opened.as_ref().map(|s| s.status)
    }

    /// Current priority, if the ticket exists.
    pub fn priority(&self) -> Option<Priority> {
        self.opened.as_ref().map(|s| s.priority)
    }

    /// Current assignee, if any.
    pub fn assignee(&self) -> Option<&str> {
        self.opened.as_ref().and_then(|s| s.assignee.as_deref())
    }

    /// Current group, if any.
    pub fn group(&self) -> Option<&str> {
        self.opened.as_ref().and_then(|s| s.group.as_deref())
    }

    /// Current tags, sorted.
    pub fn tags(&self) -> Vec<String> {
        self.opened
            .as_ref()
            .map(|s| s.tags.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Id of the customer who asked.
    pub fn requester_id(&self) -> Option<&str> {
        self.opened.as_ref().map(|s| s.requester_id.as_str())
    }

    /// Decides which events `command` produces, or why it is refused. Pure: the same state and
    /// command always give the same answer.
    pub fn decide(&self, command: TicketCommand) -> Result<Vec<TicketEvent>, TicketError> {
        let TicketCommand::Open(open) = command else {
            return self.decide_on_existing(command);
        };
        if self.opened.is_some() {
            return Err(TicketError::AlreadyOpened);
        }
        Ok(vec![TicketEvent::TicketOpened(validate_open(open)?)])
    }

    fn decide_on_existing(&self, command: TicketCommand) -> Result<Vec<TicketEvent>, TicketError> {
        let state = self.opened.as_ref().ok_or(TicketError::NotFound)?;
        match state.status {
            Status::Closed => return Err(TicketError::Closed),
            Status::Solved if !matches!(command, TicketCommand::ChangeStatus { .. }) => {
                return Err(TicketError::Solved);
            }
            _ => {}
        }
        let event = match command {
            TicketCommand::Open(_) => return Err(TicketError::AlreadyOpened),
            TicketCommand::ChangeStatus { to } => state.change_status(to)?,
            TicketCommand::ChangePriority { to } => state.change_priority(to)?,
            TicketCommand::Assign(assign) => state.assign(assign)?,
            TicketCommand::ChangeTags(tags) => state.change_tags(tags)?,
            TicketCommand::AddInteraction(interaction) => add_interaction(interaction)?,
        };
        Ok(vec![event])
    }
}

impl OpenState {
    fn change_status(&self, to: Status) -> Result<TicketEvent, TicketError> {
        if to == self.status {
            return Err(TicketError::NoChange("ticket already has this status"));
        }
        if !self.status.can_become(to) {
            return Err(TicketError::invalid_transition(self.status, to));
        }
        Ok(TicketEvent::TicketStatusChanged(TicketStatusChanged {
            from: self.status,
            to,
        }))
    }

    fn change_priority(&self, to: Priority) -> Result<TicketEvent, TicketError> {
        if to == self.priority {
            return Err(TicketError::NoChange("ticket already has this priority"));
        }
        Ok(TicketEvent::TicketPriorityChanged(TicketPriorityChanged {
            from: self.priority,
            to,
        }))
    }

    fn assign(&self, command: AssignTicket) -> Result<TicketEvent, TicketError> {
        let mut errors = Violations::default();
        for (value, pointer) in [(&command.assignee, "/assignee"), (&command.group, "/group")] {
            if let Some(Some(id)) = value {
                validation::id(id, pointer, &mut errors);
            }
        }
        errors.into_result(()).map_err(TicketError::Invalid)?;
        let assignee = command.assignee.unwrap_or_else(|| self.assignee.clone());
        let group = command.group.unwrap_or_else(|| self.group.clone());
        if assignee == self.assignee && group == self.group {
            return Err(TicketError::NoChange(
                "ticket already has this assignee and group",
            ));
        }
        Ok(TicketEvent::TicketAssigned(TicketAssigned {
            assignee,
            group,
            previous_assignee: self.assignee.clone(),
            previous_group: self.group.clone(),
        }))
    }

    fn change_tags(&self, command: ChangeTags) -> Result<TicketEvent, TicketError> {
        let mut errors = Violations::default();
        check_tag_list(&command.add, "/add", &mut errors);
        check_tag_list(&command.remove, "/remove", &mut errors);
        for (i, tag) in command.add.iter().enumerate() {
            if command.remove.contains(tag) {
                errors.add(
                    format!("/add/{i}"),
                    "add_and_remove",
                    format!("tag {tag:?} is both added and removed"),
                );
            }
        }
        errors.into_result(()).map_err(TicketError::Invalid)?;

        let added: Vec<String> = dedup(command.add)
            .into_iter()
            .filter(|tag| !self.tags.contains(tag))
            .collect();
        let removed: Vec<String> = dedup(command.remove)
            .into_iter()
            .filter(|tag| self.tags.contains(tag))
            .collect();
        if added.is_empty() && removed.is_empty() {
            return Err(TicketError::NoChange("ticket already has these tags"));
        }
        let count = self.tags.len() + added.len() - removed.len();
        if count > MAX_TAGS_PER_TICKET {
            let mut errors = Violations::default();
            errors.add(
                "/add",
                "too_many_tags",
                format!("a ticket may have at most {MAX_TAGS_PER_TICKET} tags; this makes {count}"),
            );
            return Err(TicketError::Invalid(errors));
        }
        Ok(TicketEvent::TagsChanged(TagsChanged { added, removed }))
    }
}

fn validate_open(command: OpenTicket) -> Result<TicketOpened, TicketError> {
    let mut errors = Violations::default();
    let subject = validation::subject(&command.subject, "/subject", &mut errors);
    let description =
        validation::long_text(&command.description, "/description", false, &mut errors);
    let requester = validate_requester(command.requester, &mut errors);
    check_tag_list(&command.tags, "/tags", &mut errors);
    // `check_tag_list` caps the list at the per-ticket limit, so the deduplicated list fits.
    let tags = dedup(command.tags);
    if let Some(group) = &command.group {
        validation::id(group, "/group", &mut errors);
    }
    validation::id(&command.ticket_id, "/ticket_id", &mut errors);
    let opened = TicketOpened {
        ticket_id: command.ticket_id,
        subject,
        description,
        priority: command.priority,
        channel: command.channel,
        requester,
        tags,
        group: command.group,
    };
    errors.into_result(opened).map_err(TicketError::Invalid)
}

fn validate_requester(requester: Requester, errors: &mut Violations) -> Requester {
    validation::id(&requester.customer_id, "/requester/customer_id", errors);
    Requester {
        customer_id: requester.customer_id,
        name: requester
            .name
            .map(|name| validation::name(&name, "/requester/name", errors))
            .filter(|name| !name.is_empty()),
        email: requester
            .email
            .map(|email| validation::email(&email, "/requester/email", errors)),
    }
}

fn add_interaction(command: AddInteraction) -> Result<TicketEvent, TicketError> {
    let kind = AuthorKind::for_role(command.author.role);
    // Internal notes are written by people who work tickets; auditors only read.
    let works_tickets = matches!(
        command.author.role,
        Role::Agent | Role::Manager | Role::Admin
    );
    if command.visibility == Visibility::Internal && !works_tickets {
        return Err(TicketError::InternalNoteNotAllowed);
    }
    let mut errors = Violations::default();
    let body = validation::long_text(&command.body, "/body", true, &mut errors);
    validation::id(&command.interaction_id, "/interaction_id", &mut errors);
    errors.into_result(()).map_err(TicketError::Invalid)?;
    Ok(TicketEvent::ReplyAdded(ReplyAdded {
        interaction_id: command.interaction_id,
        author: Author {
            id: command.author.id,
            kind,
        },
        visibility: command.visibility,
        body,
        attachments: Vec::new(),
    }))
}

fn check_tag_list(tags: &[String], pointer: &str, errors: &mut Violations) {
    if tags.len() > MAX_TAGS_PER_TICKET {
        errors.add(
            pointer,
            "too_many_tags",
            format!("at most {MAX_TAGS_PER_TICKET} tags per request"),
        );
        return;
    }
    for (i, tag) in tags.iter().enumerate() {
        validation::tag(tag, &format!("{pointer}/{i}"), errors);
    }
}

/// Removes repeated entries, keeping the first occurrence and the order.
fn dedup(items: Vec<String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    items
        .into_iter()
        .filter(|item| seen.insert(item.clone()))
        .collect()
}

impl Aggregate for Ticket {
    const TYPE: &'static str = "Ticket";
    type Command = TicketCommand;
    type Event = TicketEvent;
    type Error = TicketError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        if let TicketEvent::TicketOpened(opened) = &event {
            self.opened = Some(OpenState {
                status: Status::New,
                priority: opened.priority,
                requester_id: opened.requester.customer_id.clone(),
                assignee: None,
                group: opened.group.clone(),
                tags: opened.tags.iter().cloned().collect(),
            });
            return;
        }
        // Events other than `TicketOpened` only ever follow it; `apply` must not fail, so an
        // (impossible) event for a ticket that does not exist is ignored.
        let Some(state) = self.opened.as_mut() else {
            return;
        };
        match event {
            TicketEvent::TicketOpened(_) => {}
            TicketEvent::TicketStatusChanged(e) => state.status = e.to,
            TicketEvent::TicketPriorityChanged(e) => state.priority = e.to,
            TicketEvent::TicketAssigned(e) => {
                state.assignee = e.assignee;
                state.group = e.group;
            }
            TicketEvent::ReplyAdded(_) => {}
            TicketEvent::TagsChanged(e) => {
                for tag in e.removed {
                    state.tags.remove(&tag);
                }
                state.tags.extend(e.added);
            }
        }
    }
}

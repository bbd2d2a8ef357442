//! Given/when/then specifications of the ticket aggregate: given these past events, when this
//! command arrives, then these events follow (or this error).

use cqrs_es::Aggregate;

use super::*;
use crate::validation::MAX_TEXT_BYTES;
use crate::{Actor, Role};

fn given(events: Vec<TicketEvent>) -> Ticket {
    let mut ticket = Ticket::default();
    for event in events {
        ticket.apply(event);
    }
    ticket
}

fn open_command() -> OpenTicket {
    OpenTicket {
        ticket_id: "t-1".into(),
        subject: "  Printer on fire  ".into(),
        description: "It is on fire.\r\nPlease help.".into(),
        priority: Priority::High,
        channel: Channel::Email,
        requester: Requester {
            customer_id: "cust-1".into(),
            name: Some("Ada".into()),
            email: Some("ada@example.org".into()),
        },
        tags: vec!["hardware".into(), "fire".into(), "hardware".into()],
        group: Some("facilities".into()),
    }
}

fn opened() -> TicketEvent {
    match Ticket::default().decide(TicketCommand::Open(open_command())) {
        Ok(mut events) => events.remove(0),
        Err(error) => panic!("the sample ticket must open: {error}"),
    }
}

fn status_changed(from: Status, to: Status) -> TicketEvent {
    TicketEvent::TicketStatusChanged(TicketStatusChanged { from, to })
}

fn solved_ticket() -> Ticket {
    given(vec![
        opened(),
        status_changed(Status::New, Status::Open),
        status_changed(Status::Open, Status::Solved),
    ])
}

fn closed_ticket() -> Ticket {
    let mut ticket = solved_ticket();
    ticket.apply(status_changed(Status::Solved, Status::Closed));
    ticket
}

fn reply(role: Role, visibility: Visibility, body: &str) -> TicketCommand {
    TicketCommand::AddInteraction(AddInteraction {
        interaction_id: "i-1".into(),
        author: Actor::new("someone", role),
        visibility,
        body: body.into(),
    })
}

fn every_non_open_command() -> Vec<TicketCommand> {
    vec![
        TicketCommand::ChangeStatus { to: Status::Open },
        TicketCommand::ChangePriority { to: Priority::Low },
        TicketCommand::Assign(AssignTicket {
            assignee: Some(Some("agent-1".into())),
            group: None,
        }),
        TicketCommand::ChangeTags(ChangeTags {
            add: vec!["new-tag".into()],
            remove: vec![],
        }),
        reply(Role::Agent, Visibility::Public, "hello"),
    ]
}

fn violation_codes(result: Result<Vec<TicketEvent>, TicketError>) -> Vec<(String, String)> {
    match result {
        Err(TicketError::Invalid(violations)) => violations
            .0
            .into_iter()
            .map(|v| (v.pointer, v.code))
            .collect(),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

fn pair(pointer: &str, code: &str) -> (String, String) {
    (pointer.to_owned(), code.to_owned())
}

#[test]
fn it_opens_a_ticket_with_a_trimmed_subject_normalised_text_and_unique_tags() {
    let TicketEvent::TicketOpened(event) = opened() else {
        panic!("expected TicketOpened");
    };
    assert_eq!(event.subject, "Printer on fire");
    assert_eq!(event.description, "It is on fire.\nPlease help.");
    assert_eq!(event.tags, vec!["hardware", "fire"]);
    let ticket = given(vec![TicketEvent::TicketOpened(event)]);
    assert_eq!(ticket.status(), Some(Status::New));
    assert_eq!(ticket.group(), Some("facilities"));
}

#[test]
fn it_rejects_opening_a_ticket_twice() {
    let result = given(vec![opened()]).decide(TicketCommand::Open(open_command()));
    assert_eq!(result, Err(TicketError::AlreadyOpened));
}

#[test]
fn it_reports_every_invalid_field_of_an_open_command_at_once() {
    let mut command = open_command();
    command.subject = "   ".into();
    command.description = "nul\0byte".into();
    command.requester.customer_id = String::new();
    command.requester.email = Some("not-an-email".into());
    command.tags = vec!["Upper".into()];
    let codes = violation_codes(Ticket::default().decide(TicketCommand::Open(command)));
    assert_eq!(
        codes,
        vec![
            pair("/subject", "required"),
            pair("/description", "control_character"),
            pair("/requester/customer_id", "required"),
            pair("/requester/email", "invalid_email"),
            pair("/tags/0", "invalid_tag"),
        ]
    );
}

#[test]
fn it_rejects_a_subject_over_200_characters_or_with_a_newline() {
    let mut command = open_command();
    command.subject = "x".repeat(201);
    let codes = violation_codes(Ticket::default().decide(TicketCommand::Open(command)));
    assert_eq!(codes, vec![pair("/subject", "too_long")]);

    let mut command = open_command();
    command.subject = "two\nlines".into();
    let codes = violation_codes(Ticket::default().decide(TicketCommand::Open(command)));
    assert_eq!(codes, vec![pair("/subject", "control_character")]);
}

#[test]
fn it_accepts_a_description_of_exactly_64_kib_and_rejects_one_byte_more() {
    let mut command = open_command();
    command.description = "a".repeat(MAX_TEXT_BYTES);
    assert!(
        Ticket::default()
            .decide(TicketCommand::Open(command.clone()))
            .is_ok()
    );
    command.description.push('a');
    let codes = violation_codes(Ticket::default().decide(TicketCommand::Open(command)));
    assert_eq!(codes, vec![pair("/description", "too_long")]);
}

#[test]
fn it_rejects_more_than_50_tags_on_open() {
    let mut command = open_command();
    command.tags = (0..51).map(|i| format!("tag-{i}")).collect();
    let codes = violation_codes(Ticket::default().decide(TicketCommand::Open(command)));
    assert_eq!(codes, vec![pair("/tags", "too_many_tags")]);
}

#[test]
fn it_refuses_every_command_for_a_ticket_that_was_never_opened() {
    for command in every_non_open_command() {
        assert_eq!(
            Ticket::default().decide(command),
            Err(TicketError::NotFound)
        );
    }
}

#[test]
fn it_moves_a_new_ticket_to_open() {
    let events = given(vec![opened()]).decide(TicketCommand::ChangeStatus { to: Status::Open });
    assert_eq!(events, Ok(vec![status_changed(Status::New, Status::Open)]));
}

#[test]
fn it_rejects_a_status_change_to_the_current_status() {
    let result = given(vec![opened()]).decide(TicketCommand::ChangeStatus { to: Status::New });
    assert!(matches!(result, Err(TicketError::NoChange(_))));
}

#[test]
fn it_rejects_closing_a_ticket_that_is_not_solved() {
    let result = given(vec![opened()]).decide(TicketCommand::ChangeStatus { to: Status::Closed });
    assert_eq!(
        result,
        Err(TicketError::InvalidTransition {
            from: "new",
            to: "closed"
        })
    );
}

#[test]
fn it_lets_agents_move_between_open_pending_and_on_hold() {
    let ticket = given(vec![
        opened(),
        status_changed(Status::New, Status::Open),
        status_changed(Status::Open, Status::Pending),
    ]);
    let events = ticket.decide(TicketCommand::ChangeStatus { to: Status::OnHold });
    assert_eq!(
        events,
        Ok(vec![status_changed(Status::Pending, Status::OnHold)])
    );
}

#[test]
fn it_reopens_a_solved_ticket() {
    let events = solved_ticket().decide(TicketCommand::ChangeStatus { to: Status::Open });
    assert_eq!(
        events,
        Ok(vec![status_changed(Status::Solved, Status::Open)])
    );
}

#[test]
fn it_closes_a_solved_ticket() {
    let events = solved_ticket().decide(TicketCommand::ChangeStatus { to: Status::Closed });
    assert_eq!(
        events,
        Ok(vec![status_changed(Status::Solved, Status::Closed)])
    );
}

#[test]
fn it_rejects_moving_a_solved_ticket_anywhere_but_open_or_closed() {
    let result = solved_ticket().decide(TicketCommand::ChangeStatus {
        to: Status::Pending,
    });
    assert_eq!(
        result,
        Err(TicketError::InvalidTransition {
            from: "solved",
            to: "pending"
        })
    );
}

#[test]
fn it_rejects_every_change_but_reopening_on_a_solved_ticket() {
    for command in every_non_open_command().into_iter().skip(1) {
        assert_eq!(solved_ticket().decide(command), Err(TicketError::Solved));
    }
}

#[test]
fn it_rejects_every_command_on_a_closed_ticket() {
    for command in every_non_open_command() {
        assert_eq!(closed_ticket().decide(command), Err(TicketError::Closed));
    }
}

#[test]
fn it_changes_the_priority() {
    let events = given(vec![opened()]).decide(TicketCommand::ChangePriority {
        to: Priority::Urgent,
    });
    assert_eq!(
        events,
        Ok(vec![TicketEvent::TicketPriorityChanged(
            TicketPriorityChanged {
                from: Priority::High,
                to: Priority::Urgent
            }
        )])
    );
}

#[test]
fn it_rejects_setting_the_same_priority() {
    let result = given(vec![opened()]).decide(TicketCommand::ChangePriority { to: Priority::High });
    assert!(matches!(result, Err(TicketError::NoChange(_))));
}

#[test]
fn it_assigns_an_agent_and_keeps_the_group() {
    let events = given(vec![opened()]).decide(TicketCommand::Assign(AssignTicket {
        assignee: Some(Some("agent-7".into())),
        group: None,
    }));
    assert_eq!(
        events,
        Ok(vec![TicketEvent::TicketAssigned(TicketAssigned {
            assignee: Some("agent-7".into()),
            group: Some("facilities".into()),
            previous_assignee: None,
            previous_group: Some("facilities".into()),
        })])
    );
}

#[test]
fn it_unassigns_the_group() {
    let ticket = given(vec![opened()]);
    let events = ticket.decide(TicketCommand::Assign(AssignTicket {
        assignee: None,
        group: Some(None),
    }));
    let Ok(events) = events else {
        panic!("unassigning must succeed")
    };
    let mut ticket = ticket;
    for event in events {
        ticket.apply(event);
    }
    assert_eq!(ticket.group(), None);
}

#[test]
fn it_rejects_an_assignment_that_changes_nothing() {
    let ticket = given(vec![opened()]);
    for command in [
        AssignTicket::default(),
        AssignTicket {
            assignee: Some(None),
            group: Some(Some("facilities".into())),
        },
    ] {
        let result = ticket.decide(TicketCommand::Assign(command));
        assert!(matches!(result, Err(TicketError::NoChange(_))));
    }
}

#[test]
fn it_rejects_an_invalid_assignee_id() {
    let result = given(vec![opened()]).decide(TicketCommand::Assign(AssignTicket {
        assignee: Some(Some(" padded ".into())),
        group: None,
    }));
    assert_eq!(
        violation_codes(result),
        vec![pair("/assignee", "surrounding_whitespace")]
    );
}

#[test]
fn it_records_only_the_tags_that_really_change() {
    let events = given(vec![opened()]).decide(TicketCommand::ChangeTags(ChangeTags {
        add: vec!["vip".into(), "fire".into()],
        remove: vec!["hardware".into(), "absent".into()],
    }));
    assert_eq!(
        events,
        Ok(vec![TicketEvent::TagsChanged(TagsChanged {
            added: vec!["vip".into()],
            removed: vec!["hardware".into()],
        })])
    );
}

#[test]
fn it_rejects_a_tag_change_that_changes_nothing() {
    let result = given(vec![opened()]).decide(TicketCommand::ChangeTags(ChangeTags {
        add: vec!["fire".into()],
        remove: vec!["absent".into()],
    }));
    assert!(matches!(result, Err(TicketError::NoChange(_))));
}

#[test]
fn it_rejects_a_tag_that_is_both_added_and_removed() {
    let result = given(vec![opened()]).decide(TicketCommand::ChangeTags(ChangeTags {
        add: vec!["vip".into()],
        remove: vec!["vip".into()],
    }));
    assert_eq!(
        violation_codes(result),
        vec![pair("/add/0", "add_and_remove")]
    );
}

#[test]
fn it_rejects_a_tag_change_that_would_exceed_50_tags() {
    let ticket = given(vec![opened()]);
    let add: Vec<String> = (0..49).map(|i| format!("t{i}")).collect();
    let result = ticket.decide(TicketCommand::ChangeTags(ChangeTags {
        add,
        remove: vec![],
    }));
    assert_eq!(violation_codes(result), vec![pair("/add", "too_many_tags")]);
}

#[test]
fn it_adds_a_public_reply_from_an_agent() {
    let events = given(vec![opened()]).decide(reply(Role::Agent, Visibility::Public, "On it."));
    assert_eq!(
        events,
        Ok(vec![TicketEvent::ReplyAdded(ReplyAdded {
            interaction_id: "i-1".into(),
            author: Author {
                id: "someone".into(),
                kind: AuthorKind::Agent
            },
            visibility: Visibility::Public,
            body: "On it.".into(),
            attachments: vec![],
        })])
    );
}

#[test]
fn it_lets_staff_roles_add_internal_notes_as_agents() {
    for role in [Role::Agent, Role::Manager, Role::Admin] {
        let events = given(vec![opened()]).decide(reply(role, Visibility::Internal, "note"));
        let Ok(events) = events else {
            panic!("{role:?} must be allowed an internal note")
        };
        let TicketEvent::ReplyAdded(added) = &events[0] else {
            panic!("expected ReplyAdded")
        };
        assert_eq!(added.author.kind, AuthorKind::Agent);
    }
}

#[test]
fn it_rejects_an_internal_note_from_a_customer_an_auditor_or_the_system() {
    for role in [Role::Customer, Role::Auditor, Role::System] {
        let result = given(vec![opened()]).decide(reply(role, Visibility::Internal, "psst"));
        assert_eq!(result, Err(TicketError::InternalNoteNotAllowed));
    }
}

#[test]
fn it_rejects_an_empty_or_oversized_reply_body() {
    let ticket = given(vec![opened()]);
    let result = ticket.decide(reply(Role::Customer, Visibility::Public, " \n\t"));
    assert_eq!(violation_codes(result), vec![pair("/body", "required")]);
    let huge = "é".repeat(MAX_TEXT_BYTES / 2 + 1);
    let result = ticket.decide(reply(Role::Customer, Visibility::Public, &huge));
    assert_eq!(violation_codes(result), vec![pair("/body", "too_long")]);
}

#[test]
fn it_rebuilds_the_same_state_from_the_events_it_decided() {
    let mut ticket = Ticket::default();
    let commands = vec![
        TicketCommand::Open(open_command()),
        TicketCommand::ChangeStatus { to: Status::Open },
        TicketCommand::ChangeTags(ChangeTags {
            add: vec!["vip".into()],
            remove: vec!["fire".into()],
        }),
        TicketCommand::ChangePriority { to: Priority::Low },
    ];
    let mut history = Vec::new();
    for command in commands {
        let events = ticket.decide(command).expect("every command is valid");
        for event in events {
            ticket.apply(event.clone());
            history.push(event);
        }
    }
    assert_eq!(given(history), ticket);
    assert_eq!(ticket.tags(), vec!["hardware", "vip"]);
    assert_eq!(ticket.priority(), Some(Priority::Low));
}

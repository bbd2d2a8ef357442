//! Next reply: from a public customer reply, once the first reply was given, to the next public
//! agent reply.

use serde_json::json;

use super::*;
use crate::sla::SlaMetric::{FirstReply, NextReply};

/// Mon–Fri 09:00–18:00 Berlin; normal tickets: first reply within 60 minutes, next reply
/// within 30.
fn replies() -> (PolicyRef, SlaPolicyDefinition) {
    policy(
        "replies",
        json!({
            "name": "Replies",
            "position": 1,
            "targets": { "normal": { "first_reply": 60, "next_reply": 30 } },
            "calendar": office_hours(&[]),
        }),
    )
}

#[test]
fn customer_replies_start_nothing_while_the_first_reply_is_awaited() {
    let mut desk = Desk::new(vec![replies()]);
    desk.open(berlin("2026-06-08 09:00"));
    assert!(desk.customer_replies(berlin("2026-06-08 09:10")).is_empty());
    // The agent's first reply answers both messages: only first reply is fulfilled.
    let events = desk.agent_replies(berlin("2026-06-08 09:20"));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].metric(), FirstReply);
    assert!(desk.sla.clocks().get(NextReply).is_none());
}

#[test]
fn each_customer_reply_after_an_answer_starts_a_new_activation() {
    let mut desk = Desk::new(vec![replies()]);
    desk.open(berlin("2026-06-08 09:00"));
    desk.agent_replies(berlin("2026-06-08 09:20"));

    // Given an answered ticket, when the customer writes back at 17:50,
    let asked = berlin("2026-06-08 17:50");
    let events = desk.customer_replies(asked);
    // then next reply 1 is due 10 minutes on Monday plus 20 on Tuesday.
    assert_eq!(
        events,
        vec![activated(
            NextReply,
            1,
            &reference("replies", 1),
            asked,
            asked,
            berlin("2026-06-09 09:20"),
            30,
        )]
    );
    // A second message while waiting starts nothing more.
    assert!(desk.customer_replies(berlin("2026-06-08 17:55")).is_empty());
    // The next public agent reply fulfils it.
    assert_eq!(
        desk.agent_replies(berlin("2026-06-09 09:05")),
        vec![SlaEvent::Fulfilled {
            metric: NextReply,
            activation: 1,
            at: berlin("2026-06-09 09:05"),
            business_minutes: 15,
        }]
    );
    // The customer answers again: activation 2.
    let again = berlin("2026-06-09 11:00");
    assert_eq!(
        desk.customer_replies(again),
        vec![activated(
            NextReply,
            2,
            &reference("replies", 1),
            again,
            again,
            berlin("2026-06-09 11:30"),
            30,
        )]
    );
}

#[test]
fn an_internal_note_does_not_answer_the_customer() {
    let mut desk = Desk::new(vec![replies()]);
    desk.open(berlin("2026-06-08 09:00"));
    desk.agent_replies(berlin("2026-06-08 09:20"));
    desk.customer_replies(berlin("2026-06-08 10:00"));
    assert!(desk.agent_adds_note(berlin("2026-06-08 10:10")).is_empty());
    assert!(desk.sla.clocks().get(NextReply).unwrap().is_running());
}

#[test]
fn a_customer_reply_to_a_pending_ticket_waits_until_the_ticket_is_opened_again() {
    let mut desk = Desk::new(vec![replies()]);
    desk.open(berlin("2026-06-08 09:00"));
    desk.agent_replies(berlin("2026-06-08 09:20"));
    desk.status(Status::Pending, berlin("2026-06-08 09:21"));

    // The ticket is pending, a pause status: the activation starts paused.
    let asked = berlin("2026-06-08 10:00");
    let events = desk.customer_replies(asked);
    assert_eq!(
        events,
        vec![
            activated(
                NextReply,
                1,
                &reference("replies", 1),
                asked,
                asked,
                berlin("2026-06-08 10:30"),
                30,
            ),
            SlaEvent::Paused {
                metric: NextReply,
                activation: 1,
                at: asked,
            },
        ]
    );
    // An agent picks the ticket up at 11:00: the full 30 minutes run from there.
    assert_eq!(
        desk.status(Status::Open, berlin("2026-06-08 11:00")),
        vec![SlaEvent::Resumed {
            metric: NextReply,
            activation: 1,
            at: berlin("2026-06-08 11:00"),
            due_at: berlin("2026-06-08 11:30"),
        }]
    );
}

//! First reply: from the opening to the first public agent reply.

use serde_json::json;

use super::*;
use crate::sla::SlaMetric::FirstReply;
use crate::ticket::AuthorKind;

/// "Office": Mon–Fri 09:00–18:00 Berlin, first reply within 30 minutes for normal tickets.
fn office(holidays: &[&str]) -> (PolicyRef, SlaPolicyDefinition) {
    policy(
        "office",
        json!({
            "name": "Office",
            "position": 1,
            "targets": { "normal": { "first_reply": 30 } },
            "calendar": office_hours(holidays),
        }),
    )
}

#[test]
fn a_ticket_opened_friday_evening_is_due_monday_morning() {
    // Given office hours Mon–Fri 09:00–18:00 and a 30-minute first-reply target,
    let mut desk = Desk::new(vec![office(&[])]);
    // when a ticket is opened on Friday at 17:55,
    let opened = berlin("2026-06-05 17:55");
    let events = desk.open(opened);
    // then 5 minutes run on Friday and 25 on Monday.
    assert_eq!(
        events,
        vec![activated(
            FirstReply,
            1,
            &reference("office", 1),
            opened,
            opened,
            berlin("2026-06-08 09:25"),
            30,
        )]
    );
}

#[test]
fn a_holiday_monday_makes_it_due_tuesday_morning() {
    let mut desk = Desk::new(vec![office(&["2026-06-08"])]);
    let events = desk.open(berlin("2026-06-05 17:55"));
    let SlaEvent::Activated { due_at, .. } = &events[0] else {
        panic!("expected an activation, got {events:?}");
    };
    assert_eq!(*due_at, berlin("2026-06-09 09:25"));
}

#[test]
fn the_first_public_agent_reply_fulfils_it_in_business_minutes() {
    let mut desk = Desk::new(vec![office(&[])]);
    desk.open(berlin("2026-06-05 17:55"));
    // Five minutes on Friday, ten on Monday; the weekend does not count.
    let events = desk.agent_replies(berlin("2026-06-08 09:10"));
    assert_eq!(
        events,
        vec![SlaEvent::Fulfilled {
            metric: FirstReply,
            activation: 1,
            at: berlin("2026-06-08 09:10"),
            business_minutes: 15,
        }]
    );
}

#[test]
fn internal_notes_customer_replies_and_system_replies_do_not_fulfil_it() {
    let mut desk = Desk::new(vec![office(&[])]);
    desk.open(berlin("2026-06-08 09:00"));
    assert!(desk.agent_adds_note(berlin("2026-06-08 09:05")).is_empty());
    assert!(desk.customer_replies(berlin("2026-06-08 09:10")).is_empty());
    assert!(
        desk.reply(
            AuthorKind::System,
            Visibility::Public,
            berlin("2026-06-08 09:15")
        )
        .is_empty()
    );
    let first_reply = desk.sla.clocks().get(FirstReply).unwrap();
    assert!(first_reply.is_running());
}

#[test]
fn a_missed_target_is_breached_once_and_its_fulfilment_still_recorded() {
    let mut desk = Desk::new(vec![office(&[])]);
    desk.open(berlin("2026-06-08 09:00"));
    // Nothing is due before 09:30.
    assert!(desk.breaches(berlin("2026-06-08 09:29")).is_empty());
    let breach = SlaEvent::Breached {
        metric: FirstReply,
        activation: 1,
        at: berlin("2026-06-08 09:30"),
    };
    // The scheduler runs late; the breach is dated at the due instant.
    assert_eq!(desk.breaches(berlin("2026-06-08 09:31")), vec![breach]);
    assert!(desk.breaches(berlin("2026-06-08 10:00")).is_empty());
    assert_eq!(
        desk.agent_replies(berlin("2026-06-08 10:00")),
        vec![SlaEvent::Fulfilled {
            metric: FirstReply,
            activation: 1,
            at: berlin("2026-06-08 10:00"),
            business_minutes: 60,
        }]
    );
}

#[test]
fn a_breach_the_scheduler_has_not_seen_yet_is_recorded_before_the_reply() {
    let mut desk = Desk::new(vec![office(&[])]);
    desk.open(berlin("2026-06-08 09:00"));
    let events = desk.agent_replies(berlin("2026-06-08 09:45"));
    assert_eq!(
        events,
        vec![
            SlaEvent::Breached {
                metric: FirstReply,
                activation: 1,
                at: berlin("2026-06-08 09:30"),
            },
            SlaEvent::Fulfilled {
                metric: FirstReply,
                activation: 1,
                at: berlin("2026-06-08 09:45"),
                business_minutes: 45,
            },
        ]
    );
}

#[test]
fn a_reply_at_the_due_instant_is_late() {
    let mut desk = Desk::new(vec![office(&[])]);
    desk.open(berlin("2026-06-08 09:00"));
    let events = desk.agent_replies(berlin("2026-06-08 09:30"));
    assert_eq!(
        events.iter().map(SlaEvent::name).collect::<Vec<_>>(),
        ["breached", "fulfilled"]
    );
}

#[test]
fn a_ticket_no_policy_applies_to_gets_no_clock() {
    // The only policy covers email; this ticket came through chat.
    let email_only = policy(
        "email",
        json!({
            "name": "Email",
            "position": 1,
            "applies_to": { "channels": ["email"] },
            "targets": { "normal": { "first_reply": 30, "resolution": 600 } },
            "calendar": { "kind": "always" },
        }),
    );
    let mut desk = Desk::new(vec![email_only]);
    let opened = berlin("2026-06-08 09:00");
    assert!(
        desk.open_with(Priority::Normal, Channel::Chat, None, opened)
            .is_empty()
    );
    assert!(desk.agent_replies(berlin("2026-06-08 09:10")).is_empty());
    assert!(desk.breaches(berlin("2026-07-01 00:00")).is_empty());
}

#[test]
fn a_priority_without_a_target_gets_no_clock() {
    // Only urgent tickets have targets.
    let urgent_only = policy(
        "urgent",
        json!({
            "name": "Urgent",
            "position": 1,
            "targets": { "urgent": { "first_reply": 15 } },
            "calendar": { "kind": "always" },
        }),
    );
    let mut desk = Desk::new(vec![urgent_only]);
    assert!(desk.open(berlin("2026-06-08 09:00")).is_empty());
    assert!(desk.sla.clocks().get(FirstReply).is_none());
}

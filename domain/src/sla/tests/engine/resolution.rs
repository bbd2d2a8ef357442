//! Resolution: from the opening, or a reopening, until the ticket is solved.

use serde_json::json;

use super::*;
use crate::sla::SlaMetric::{FirstReply, Resolution};

/// Mon–Fri 09:00–18:00 Berlin; normal tickets: first reply within 60 minutes, resolution
/// within 8 business hours.
fn support() -> (PolicyRef, SlaPolicyDefinition) {
    policy(
        "support",
        json!({
            "name": "Support",
            "position": 1,
            "targets": { "normal": { "first_reply": 60, "resolution": 480 } },
            "calendar": office_hours(&[]),
        }),
    )
}

#[test]
fn solving_the_ticket_fulfils_resolution() {
    let mut desk = Desk::new(vec![support()]);
    let opened = berlin("2026-06-08 09:00");
    let events = desk.open(opened);
    assert_eq!(
        only(Resolution, &events),
        vec![activated(
            Resolution,
            1,
            &reference("support", 1),
            opened,
            opened,
            berlin("2026-06-08 17:00"),
            480,
        )]
    );
    desk.agent_replies(berlin("2026-06-08 09:30"));
    desk.status(Status::Open, berlin("2026-06-08 09:30"));
    assert_eq!(
        desk.status(Status::Solved, berlin("2026-06-08 15:15")),
        vec![SlaEvent::Fulfilled {
            metric: Resolution,
            activation: 1,
            at: berlin("2026-06-08 15:15"),
            business_minutes: 375,
        }]
    );
}

#[test]
fn reopening_a_solved_ticket_starts_a_new_activation_from_the_reopening() {
    let mut desk = Desk::new(vec![support()]);
    desk.open(berlin("2026-06-08 09:00"));
    desk.agent_replies(berlin("2026-06-08 09:30"));
    desk.status(Status::Solved, berlin("2026-06-08 10:00"));

    // Reopened on Wednesday afternoon: a fresh 8 hours from now, not from Monday.
    let reopened = berlin("2026-06-10 14:00");
    assert_eq!(
        desk.status(Status::Open, reopened),
        vec![activated(
            Resolution,
            2,
            &reference("support", 1),
            reopened,
            reopened,
            berlin("2026-06-11 13:00"),
            480,
        )]
    );
    assert_eq!(
        desk.status(Status::Solved, berlin("2026-06-11 10:00")),
        vec![SlaEvent::Fulfilled {
            metric: Resolution,
            activation: 2,
            at: berlin("2026-06-11 10:00"),
            business_minutes: 300,
        }]
    );
}

#[test]
fn a_solved_ticket_stops_its_reply_clocks_until_it_is_reopened() {
    let mut desk = Desk::new(vec![support()]);
    desk.open(berlin("2026-06-08 09:00"));
    // Solved on first touch without a reply: first reply is not fulfilled, only stopped.
    let solved = desk.status(Status::Solved, berlin("2026-06-08 09:20"));
    assert_eq!(
        only(FirstReply, &solved),
        vec![SlaEvent::Paused {
            metric: FirstReply,
            activation: 1,
            at: berlin("2026-06-08 09:20"),
        }]
    );
    assert!(desk.breaches(berlin("2026-06-09 09:00")).is_empty());
    // Reopened the next morning: 40 minutes of the hour remain.
    let reopened = desk.status(Status::Open, berlin("2026-06-09 09:00"));
    assert_eq!(
        only(FirstReply, &reopened),
        vec![SlaEvent::Resumed {
            metric: FirstReply,
            activation: 1,
            at: berlin("2026-06-09 09:00"),
            due_at: berlin("2026-06-09 09:40"),
        }]
    );
}

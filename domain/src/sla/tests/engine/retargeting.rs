//! Retargeting: a priority, group or policy change mid-measurement recomputes the due time
//! from the original start.

use serde_json::json;

use super::*;
use crate::sla::SlaMetric::{FirstReply, Resolution};

/// Mon–Fri 09:00–18:00 Berlin. First reply: 4 hours for normal, 1 hour for urgent, none for
/// low. Resolution: 8 hours for normal, 4 for urgent.
fn tiered() -> (PolicyRef, SlaPolicyDefinition) {
    policy(
        "tiered",
        json!({
            "name": "Tiered",
            "position": 10,
            "targets": {
                "low": { "resolution": 2400 },
                "normal": { "first_reply": 240, "resolution": 480 },
                "urgent": { "first_reply": 60, "resolution": 240 },
            },
            "calendar": office_hours(&[]),
        }),
    )
}

fn retargeted(
    metric: SlaMetric,
    at: DateTime<Utc>,
    policy: &PolicyRef,
    due_at: DateTime<Utc>,
    target_minutes: u32,
) -> SlaEvent {
    SlaEvent::Retargeted {
        metric,
        activation: 1,
        at,
        policy: policy.clone(),
        due_at,
        target_minutes,
    }
}

#[test]
fn raising_the_priority_recomputes_the_due_time_from_the_original_start() {
    let mut desk = Desk::new(vec![tiered()]);
    desk.open(berlin("2026-06-08 09:00"));
    let changed = berlin("2026-06-08 09:30");
    let events = desk.priority(Priority::Urgent, changed);
    let tiered = reference("tiered", 1);
    assert_eq!(
        events,
        vec![
            retargeted(FirstReply, changed, &tiered, berlin("2026-06-08 10:00"), 60),
            retargeted(
                Resolution,
                changed,
                &tiered,
                berlin("2026-06-08 13:00"),
                240
            ),
        ]
    );
}

#[test]
fn a_new_target_already_exceeded_is_breached_at_once_at_its_due_time() {
    let mut desk = Desk::new(vec![tiered()]);
    desk.open(berlin("2026-06-08 09:00"));
    let changed = berlin("2026-06-08 11:00");
    let events = desk.priority(Priority::Urgent, changed);
    assert_eq!(
        only(FirstReply, &events),
        vec![
            retargeted(
                FirstReply,
                changed,
                &reference("tiered", 1),
                berlin("2026-06-08 10:00"),
                60
            ),
            SlaEvent::Breached {
                metric: FirstReply,
                activation: 1,
                at: berlin("2026-06-08 10:00"),
            },
        ]
    );
    assert!(desk.breaches(changed).is_empty());
}

#[test]
fn the_recomputed_due_time_leaves_out_the_time_paused() {
    let mut desk = Desk::new(vec![tiered()]);
    desk.open(berlin("2026-06-08 09:00"));
    desk.agent_replies(berlin("2026-06-08 09:10"));
    desk.status(Status::Pending, berlin("2026-06-08 10:00"));
    desk.status(Status::Open, berlin("2026-06-08 12:00"));
    let events = desk.priority(Priority::Urgent, berlin("2026-06-08 13:00"));
    // 4 hours on the clock from 09:00, with 10:00–12:00 paused: 15:00.
    assert_eq!(
        events,
        vec![retargeted(
            Resolution,
            berlin("2026-06-08 13:00"),
            &reference("tiered", 1),
            berlin("2026-06-08 15:00"),
            240,
        )]
    );
}

#[test]
fn a_target_that_appears_mid_measurement_counts_from_the_original_start() {
    let mut desk = Desk::new(vec![tiered()]);
    let opened = berlin("2026-06-08 09:00");
    // Low tickets have no first-reply target.
    let events = desk.open_with(Priority::Low, Channel::Web, None, opened);
    assert_eq!(only(FirstReply, &events), vec![]);
    let raised = berlin("2026-06-08 09:20");
    let events = desk.priority(Priority::Urgent, raised);
    assert_eq!(
        only(FirstReply, &events),
        vec![activated(
            FirstReply,
            1,
            &reference("tiered", 1),
            raised,
            opened,
            berlin("2026-06-08 10:00"),
            60,
        )]
    );
}

#[test]
fn a_target_that_disappears_withdraws_the_activation_and_its_breach_stays_recorded_once() {
    let mut desk = Desk::new(vec![tiered()]);
    desk.open_with(
        Priority::Urgent,
        Channel::Web,
        None,
        berlin("2026-06-08 09:00"),
    );
    desk.breaches(berlin("2026-06-08 10:05"));
    let lowered = desk.priority(Priority::Low, berlin("2026-06-08 10:10"));
    assert_eq!(
        only(FirstReply, &lowered),
        vec![SlaEvent::Withdrawn {
            metric: FirstReply,
            activation: 1,
            at: berlin("2026-06-08 10:10"),
        }]
    );
    // Raised again: the same activation is measured again, and not breached a second time.
    let raised = desk.priority(Priority::Urgent, berlin("2026-06-08 10:20"));
    assert_eq!(
        raised
            .iter()
            .filter(|e| e.metric() == FirstReply)
            .map(SlaEvent::name)
            .collect::<Vec<_>>(),
        ["activated"]
    );
    let first_reply = desk.sla.clocks().get(FirstReply).unwrap();
    assert_eq!(first_reply.breached_at, Some(berlin("2026-06-08 10:00")));
    assert!(desk.breaches(berlin("2026-06-08 11:00")).is_empty());
}

#[test]
fn moving_the_ticket_to_another_group_applies_that_groups_policy() {
    let vip = policy(
        "vip",
        json!({
            "name": "VIP",
            "position": 1,
            "applies_to": { "groups": ["vip"] },
            "targets": { "normal": { "first_reply": 15 } },
            "calendar": { "kind": "always" },
        }),
    );
    let mut desk = Desk::new(vec![tiered(), vip]);
    desk.open(berlin("2026-06-08 09:00"));
    let moved = berlin("2026-06-08 09:05");
    let events = desk.group(Some("vip"), moved);
    assert_eq!(
        events,
        vec![
            retargeted(
                FirstReply,
                moved,
                &reference("vip", 1),
                berlin("2026-06-08 09:15"),
                15
            ),
            // The VIP policy has no resolution target.
            SlaEvent::Withdrawn {
                metric: Resolution,
                activation: 1,
                at: moved,
            },
        ]
    );
}

#[test]
fn a_policy_update_retargets_running_clocks_under_the_new_version() {
    let mut desk = Desk::new(vec![tiered()]);
    desk.open(berlin("2026-06-08 09:00"));
    let (_, mut faster) = tiered();
    faster.targets.normal.as_mut().unwrap().first_reply = Some(120);
    let updated = berlin("2026-06-08 09:30");
    let events = desk.policies_change(vec![(reference("tiered", 2), faster)], updated);
    let version_2 = reference("tiered", 2);
    assert_eq!(
        events,
        vec![
            retargeted(
                FirstReply,
                updated,
                &version_2,
                berlin("2026-06-08 11:00"),
                120
            ),
            retargeted(
                Resolution,
                updated,
                &version_2,
                berlin("2026-06-08 17:00"),
                480
            ),
        ]
    );
}

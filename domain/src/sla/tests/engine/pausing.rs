//! Pausing: clocks stand still while the ticket waits on the customer or a third party.

use serde_json::json;

use super::*;
use crate::sla::SlaMetric::Resolution;
use crate::sla::add_business_minutes;

/// Mon–Fri 09:00–18:00 Berlin; normal tickets: resolution within 8 business hours; pause
/// statuses as given (`None`: the default, pending and on hold).
fn resolution_policy(
    pause_statuses: Option<serde_json::Value>,
) -> (PolicyRef, SlaPolicyDefinition) {
    let mut json = json!({
        "name": "Resolution",
        "position": 1,
        "targets": { "normal": { "resolution": 480 } },
        "calendar": office_hours(&[]),
    });
    if let Some(statuses) = pause_statuses {
        json["pause_statuses"] = statuses;
    }
    policy("resolution", json)
}

fn due_of(desk: &Desk) -> DateTime<Utc> {
    desk.sla.clocks().get(Resolution).unwrap().due_at
}

#[test]
fn two_business_hours_in_pending_move_the_due_time_by_exactly_two_business_hours() {
    // Given a ticket opened Monday 09:00 with 8 business hours to resolve: due Monday 17:00.
    let mut desk = Desk::new(vec![resolution_policy(None)]);
    desk.open(berlin("2026-06-08 09:00"));
    let original_due = due_of(&desk);
    assert_eq!(original_due, berlin("2026-06-08 17:00"));

    // When it waits on the customer from 10:00 to 12:00,
    assert_eq!(
        desk.status(Status::Pending, berlin("2026-06-08 10:00")),
        vec![SlaEvent::Paused {
            metric: Resolution,
            activation: 1,
            at: berlin("2026-06-08 10:00"),
        }]
    );
    let resumed = desk.status(Status::Open, berlin("2026-06-08 12:00"));

    // then the due time moves two business hours: past closing, to Tuesday 10:00.
    let moved = berlin("2026-06-09 10:00");
    assert_eq!(
        add_business_minutes(&desk.policies[0].1.calendar, original_due, 120),
        Ok(moved)
    );
    assert_eq!(
        resumed,
        vec![SlaEvent::Resumed {
            metric: Resolution,
            activation: 1,
            at: berlin("2026-06-08 12:00"),
            due_at: moved,
        }]
    );
    // and the fulfilment counts only the time on the clock: 9 + 0.5 − 2 hours.
    assert_eq!(
        desk.status(Status::Solved, berlin("2026-06-09 09:30")),
        vec![SlaEvent::Fulfilled {
            metric: Resolution,
            activation: 1,
            at: berlin("2026-06-09 09:30"),
            business_minutes: 450,
        }]
    );
}

#[test]
fn a_pause_over_the_night_counts_only_its_business_hours() {
    let mut desk = Desk::new(vec![resolution_policy(None)]);
    desk.open(berlin("2026-06-08 09:00"));
    // Pending from Monday 16:00 to Tuesday 10:00: two business hours on Monday, one on
    // Tuesday, none in the night.
    desk.status(Status::Pending, berlin("2026-06-08 16:00"));
    desk.status(Status::Open, berlin("2026-06-09 10:00"));
    // 7 of the 8 hours ran before the pause; the last one runs from Tuesday 10:00. That is the
    // original due time, Monday 17:00, plus the three paused business hours.
    assert_eq!(due_of(&desk), berlin("2026-06-09 11:00"));
}

#[test]
fn moving_between_pause_statuses_keeps_the_clock_paused() {
    let mut desk = Desk::new(vec![resolution_policy(None)]);
    desk.open(berlin("2026-06-08 09:00"));
    desk.status(Status::Pending, berlin("2026-06-08 10:00"));
    assert!(
        desk.status(Status::OnHold, berlin("2026-06-08 11:00"))
            .is_empty()
    );
    let resumed = desk.status(Status::Open, berlin("2026-06-08 13:00"));
    assert!(matches!(
        resumed.as_slice(),
        [SlaEvent::Resumed { due_at, .. }] if *due_at == berlin("2026-06-09 11:00")
    ));
}

#[test]
fn a_paused_clock_never_breaches() {
    let mut desk = Desk::new(vec![resolution_policy(None)]);
    desk.open(berlin("2026-06-08 09:00"));
    desk.status(Status::OnHold, berlin("2026-06-08 10:00"));
    assert!(desk.breaches(berlin("2026-07-01 09:00")).is_empty());
}

#[test]
fn only_the_policys_pause_statuses_pause() {
    // This policy pauses on hold only: waiting on the customer still counts.
    let mut desk = Desk::new(vec![resolution_policy(Some(json!(["on_hold"])))]);
    desk.open(berlin("2026-06-08 09:00"));
    assert!(
        desk.status(Status::Pending, berlin("2026-06-08 10:00"))
            .is_empty()
    );
    assert_eq!(
        desk.breaches(berlin("2026-06-08 17:00")),
        vec![SlaEvent::Breached {
            metric: Resolution,
            activation: 1,
            at: berlin("2026-06-08 17:00"),
        }]
    );
}

#[test]
fn a_breach_due_before_a_pause_is_recorded_before_the_pause() {
    let mut desk = Desk::new(vec![resolution_policy(None)]);
    desk.open(berlin("2026-06-08 09:00"));
    let events = desk.status(Status::Pending, berlin("2026-06-08 17:30"));
    assert_eq!(
        events,
        vec![
            SlaEvent::Breached {
                metric: Resolution,
                activation: 1,
                at: berlin("2026-06-08 17:00"),
            },
            SlaEvent::Paused {
                metric: Resolution,
                activation: 1,
                at: berlin("2026-06-08 17:30"),
            },
        ]
    );
    // Breached once: resuming with the due time long past reports nothing new.
    let resumed = desk.status(Status::Open, berlin("2026-06-09 09:00"));
    assert!(matches!(
        resumed.as_slice(),
        [SlaEvent::Resumed { due_at, .. }] if *due_at == berlin("2026-06-08 17:00")
    ));
}

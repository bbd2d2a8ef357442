//! The wire shape of SLA events and of the engine's snapshot.

use serde_json::json;

use super::*;

#[test]
fn sla_events_are_tagged_by_type_in_snake_case() {
    let event = SlaEvent::Activated {
        metric: SlaMetric::FirstReply,
        activation: 1,
        policy: reference("office", 3),
        at: berlin("2026-06-05 17:55"),
        started_at: berlin("2026-06-05 17:55"),
        due_at: berlin("2026-06-08 09:25"),
        target_minutes: 30,
    };
    let wire = serde_json::to_value(&event).unwrap();
    assert_eq!(
        wire,
        json!({
            "type": "activated",
            "metric": "first_reply",
            "activation": 1,
            "policy": { "id": "office", "version": 3 },
            "at": "2026-06-05T15:55:00Z",
            "started_at": "2026-06-05T15:55:00Z",
            "due_at": "2026-06-08T07:25:00Z",
            "target_minutes": 30,
        })
    );
    assert_eq!(serde_json::from_value::<SlaEvent>(wire).unwrap(), event);
    let breached: SlaEvent = serde_json::from_value(json!({
        "type": "breached",
        "metric": "next_reply",
        "activation": 2,
        "at": "2026-06-08T07:25:00Z",
    }))
    .unwrap();
    assert_eq!(breached.name(), "breached");
    assert_eq!(breached.metric(), SlaMetric::NextReply);
}

#[test]
fn the_engine_state_survives_a_snapshot() {
    let policy = policy(
        "office",
        json!({
            "name": "Office",
            "position": 1,
            "targets": { "normal": { "first_reply": 30, "next_reply": 30, "resolution": 480 } },
            "calendar": office_hours(&[]),
        }),
    );
    let mut desk = Desk::new(vec![policy]);
    desk.open(berlin("2026-06-08 09:00"));
    desk.agent_replies(berlin("2026-06-08 09:10"));
    desk.status(Status::Pending, berlin("2026-06-08 09:11"));
    let snapshot = serde_json::to_string(&desk.sla).unwrap();
    let restored: TicketSla = serde_json::from_str(&snapshot).unwrap();
    assert_eq!(restored, desk.sla);
}

//! Specifications of SLA policies: the wire shape, validation, the aggregate's versions, and
//! which policy applies to a ticket.

use cqrs_es::Aggregate;
use cqrs_es::test::TestFramework;
use serde_json::json;

use crate::sla::policy::{SlaPolicyCreated, SlaPolicyUpdated};
use crate::sla::{
    PolicyRef, SlaPolicy, SlaPolicyCommand, SlaPolicyDefinition, SlaPolicyError, SlaPolicyEvent,
    select_policy,
};
use crate::ticket::{Channel, Priority, Status};

/// Mon–Fri 09:00–18:00 in Berlin.
fn office_hours() -> serde_json::Value {
    let day = json!([{ "start": "09:00", "end": "18:00" }]);
    json!({
        "kind": "business_hours",
        "time_zone": "Europe/Berlin",
        "hours": { "mon": day, "tue": day, "wed": day, "thu": day, "fri": day },
    })
}

fn definition(json: serde_json::Value) -> SlaPolicyDefinition {
    serde_json::from_value(json).unwrap()
}

fn standard() -> SlaPolicyDefinition {
    definition(json!({
        "name": "  Standard  ",
        "position": 10,
        "targets": { "normal": { "first_reply": 240, "resolution": 2400 } },
        "calendar": office_hours(),
    }))
}

fn pointers_and_codes(result: Result<(), crate::validation::Violations>) -> Vec<(String, String)> {
    result
        .unwrap_err()
        .0
        .into_iter()
        .map(|v| (v.pointer, v.code))
        .collect()
}

fn pair(pointer: &str, code: &str) -> (String, String) {
    (pointer.to_owned(), code.to_owned())
}

#[test]
fn an_omitted_scope_covers_every_ticket_and_pending_and_on_hold_pause_by_default() {
    let policy = standard();
    assert!(policy.applies_to.priorities.is_empty());
    assert!(policy.applies_to.groups.is_empty());
    assert!(policy.applies_to.channels.is_empty());
    assert_eq!(policy.pause_statuses, vec![Status::Pending, Status::OnHold]);
    assert!(policy.applies(Priority::Low, None, Channel::Chat));
}

#[test]
fn a_misspelt_target_is_rejected_rather_than_ignored() {
    let result = serde_json::from_value::<SlaPolicyDefinition>(json!({
        "name": "Typo",
        "position": 1,
        "targets": { "normal": { "frist_reply": 30 } },
        "calendar": { "kind": "always" },
    }));
    assert!(result.unwrap_err().to_string().contains("frist_reply"));
}

#[test]
fn it_reports_every_broken_rule_of_a_definition_at_once() {
    let policy = definition(json!({
        "name": " ",
        "position": 1,
        "applies_to": { "groups": ["ok", " padded"] },
        "targets": {
            "low": { "first_reply": 0 },
            "urgent": { "resolution": 525_601 },
        },
        "calendar": {
            "kind": "business_hours",
            "time_zone": "Europe/Berlin",
            "hours": { "mon": [
                { "start": "13:00", "end": "18:00" },
                { "start": "09:00", "end": "12:00" },
            ] },
        },
        "pause_statuses": ["pending", "open", "pending"],
    }));
    assert_eq!(
        pointers_and_codes(policy.validate()),
        vec![
            pair("/name", "required"),
            pair("/applies_to/groups/1", "surrounding_whitespace"),
            pair("/targets/low/first_reply", "too_small"),
            pair("/targets/urgent/resolution", "too_large"),
            pair("/calendar/hours/mon/1", "out_of_order"),
            pair("/pause_statuses/1", "not_pausable"),
            pair("/pause_statuses/2", "duplicate"),
        ]
    );
}

#[test]
fn a_policy_needs_at_least_one_target() {
    let policy = definition(json!({
        "name": "Empty",
        "position": 1,
        "targets": { "normal": {} },
        "calendar": { "kind": "always" },
    }));
    assert_eq!(
        pointers_and_codes(policy.validate()),
        vec![pair("/targets", "required")]
    );
}

#[test]
fn a_target_may_span_at_most_52_weeks_of_opening_hours() {
    // One business hour a week: 52 weeks hold 3,120 minutes.
    let target = |minutes: u32| {
        definition(json!({
            "name": "Sparse",
            "position": 1,
            "targets": { "high": { "resolution": minutes } },
            "calendar": {
                "kind": "business_hours",
                "time_zone": "UTC",
                "hours": { "wed": [{ "start": "10:00", "end": "11:00" }] },
            },
        }))
    };
    assert!(target(3_120).validate().is_ok());
    assert_eq!(
        pointers_and_codes(target(3_121).validate()),
        vec![pair("/targets/high/resolution", "too_large")]
    );
}

#[test]
fn creating_a_policy_records_version_1_with_a_trimmed_name() {
    let mut trimmed = standard();
    trimmed.name = "Standard".into();
    TestFramework::<SlaPolicy>::with(())
        .given_no_previous_events()
        .when(SlaPolicyCommand::Create {
            policy_id: "standard".into(),
            definition: standard(),
        })
        .then_expect_events(vec![SlaPolicyEvent::SlaPolicyCreated(SlaPolicyCreated {
            policy_id: "standard".into(),
            definition: trimmed,
        })]);
}

#[test]
fn it_rejects_an_invalid_definition_and_id_together() {
    let mut policy = standard();
    policy.name = String::new();
    let result = SlaPolicy::default().decide(SlaPolicyCommand::Create {
        policy_id: String::new(),
        definition: policy,
    });
    let Err(SlaPolicyError::Invalid(violations)) = result else {
        panic!("expected a validation error, got {result:?}");
    };
    let pointers: Vec<&str> = violations.0.iter().map(|v| v.pointer.as_str()).collect();
    assert_eq!(pointers, vec!["/policy_id", "/name"]);
}

#[test]
fn it_rejects_creating_a_policy_twice_and_updating_one_that_does_not_exist() {
    let created = created_event();
    TestFramework::<SlaPolicy>::with(())
        .given(vec![created])
        .when(SlaPolicyCommand::Create {
            policy_id: "standard".into(),
            definition: standard(),
        })
        .then_expect_error(SlaPolicyError::AlreadyExists);
    TestFramework::<SlaPolicy>::with(())
        .given_no_previous_events()
        .when(SlaPolicyCommand::Update {
            definition: standard(),
        })
        .then_expect_error(SlaPolicyError::NotFound);
}

#[test]
fn every_update_is_a_new_version() {
    let mut policy = SlaPolicy::default();
    assert_eq!(policy.version(), 0);
    assert!(policy.current().is_none());
    policy.apply(created_event());
    let mut faster = standard();
    faster.name = "Standard".into();
    faster.targets.normal.as_mut().unwrap().first_reply = Some(120);
    let events = policy
        .decide(SlaPolicyCommand::Update {
            definition: faster.clone(),
        })
        .unwrap();
    assert_eq!(
        events,
        vec![SlaPolicyEvent::SlaPolicyUpdated(SlaPolicyUpdated {
            definition: faster.clone(),
        })]
    );
    for event in events {
        policy.apply(event);
    }
    let (reference, current) = policy.current().unwrap();
    assert_eq!(
        reference,
        PolicyRef {
            id: "standard".into(),
            version: 2,
        }
    );
    assert_eq!(current, &faster);
}

#[test]
fn an_update_that_changes_nothing_is_refused() {
    // The untrimmed name trims to the stored one, so nothing changes.
    TestFramework::<SlaPolicy>::with(())
        .given(vec![created_event()])
        .when(SlaPolicyCommand::Update {
            definition: standard(),
        })
        .then_expect_error(SlaPolicyError::NoChange);
}

#[test]
fn policy_events_are_stored_externally_tagged_with_a_stable_name() {
    let event = created_event();
    assert_eq!(event.name(), "SlaPolicyCreated");
    assert_eq!(event.version(), "1");
    let json = serde_json::to_value(&event).unwrap();
    assert_eq!(json["SlaPolicyCreated"]["policy_id"], "standard");
    assert_eq!(
        json["SlaPolicyCreated"]["definition"]["calendar"]["kind"],
        "business_hours"
    );
}

fn created_event() -> SlaPolicyEvent {
    let mut trimmed = standard();
    trimmed.name = "Standard".into();
    SlaPolicyEvent::SlaPolicyCreated(SlaPolicyCreated {
        policy_id: "standard".into(),
        definition: trimmed,
    })
}

/// A policy at `position` with an optional scope, version 1.
fn scoped(id: &str, position: u32, scope: serde_json::Value) -> (PolicyRef, SlaPolicyDefinition) {
    let policy = definition(json!({
        "name": id,
        "position": position,
        "applies_to": scope,
        "targets": { "normal": { "first_reply": 60 } },
        "calendar": { "kind": "always" },
    }));
    let reference = PolicyRef {
        id: id.into(),
        version: 1,
    };
    (reference, policy)
}

fn selected(
    policies: &[(PolicyRef, SlaPolicyDefinition)],
    priority: Priority,
    group: Option<&str>,
    channel: Channel,
) -> Option<String> {
    select_policy(policies, priority, group, channel).map(|(reference, _)| reference.id.clone())
}

#[test]
fn the_matching_policy_with_the_lowest_position_applies() {
    let policies = vec![
        scoped("catch-all", 100, json!({})),
        scoped(
            "vip-email",
            1,
            json!({ "groups": ["vip"], "channels": ["email"] }),
        ),
        scoped("urgent", 5, json!({ "priorities": ["urgent"] })),
    ];
    let pick = |priority, group, channel| selected(&policies, priority, group, channel);
    assert_eq!(
        pick(Priority::Urgent, Some("vip"), Channel::Email).as_deref(),
        Some("vip-email")
    );
    assert_eq!(
        pick(Priority::Urgent, Some("vip"), Channel::Web).as_deref(),
        Some("urgent")
    );
    assert_eq!(
        pick(Priority::Low, Some("vip"), Channel::Web).as_deref(),
        Some("catch-all")
    );
}

#[test]
fn a_ticket_without_a_group_never_matches_a_policy_that_lists_groups() {
    let policies = vec![scoped("vip", 1, json!({ "groups": ["vip"] }))];
    assert_eq!(
        selected(&policies, Priority::Normal, None, Channel::Web),
        None
    );
    assert_eq!(
        selected(&policies, Priority::Normal, Some("vip"), Channel::Web).as_deref(),
        Some("vip")
    );
}

#[test]
fn equal_positions_are_ordered_by_policy_id_whatever_the_list_order() {
    let b = scoped("b", 7, json!({}));
    let a = scoped("a", 7, json!({}));
    for policies in [vec![a.clone(), b.clone()], vec![b, a]] {
        assert_eq!(
            selected(&policies, Priority::Normal, None, Channel::Api).as_deref(),
            Some("a")
        );
    }
}

#[test]
fn no_policy_applies_when_none_matches() {
    let policies = vec![scoped("phone", 1, json!({ "channels": ["phone"] }))];
    assert_eq!(
        selected(&policies, Priority::Normal, None, Channel::Chat),
        None
    );
    assert_eq!(selected(&[], Priority::Normal, None, Channel::Chat), None);
}

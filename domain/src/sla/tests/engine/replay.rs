//! Properties over random ticket histories: the stored SLA events rebuild the state exactly,
//! and the bookkeeping rules hold whatever happens.

use std::collections::{BTreeMap, BTreeSet};

use chrono::TimeDelta;
use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::ticket::AuthorKind;

/// Something that can happen to a ticket (or to the policies) after it is opened.
#[derive(Debug, Clone)]
enum Step {
    Reply(AuthorKind, Visibility),
    Status(Status),
    Priority(Priority),
    Group(Option<&'static str>),
    /// The breach scheduler runs.
    Scheduler,
    /// The office policy gets a new version with this first-reply target for normal tickets.
    PolicyEdit(u32),
}

fn step() -> impl Strategy<Value = Step> {
    let kind = prop::sample::select(vec![
        AuthorKind::Agent,
        AuthorKind::Customer,
        AuthorKind::System,
    ]);
    let visibility = prop::sample::select(vec![Visibility::Public, Visibility::Internal]);
    let status = prop::sample::select(vec![
        Status::Open,
        Status::Pending,
        Status::OnHold,
        Status::Solved,
        Status::Closed,
    ]);
    let priority = prop::sample::select(vec![
        Priority::Low,
        Priority::Normal,
        Priority::High,
        Priority::Urgent,
    ]);
    prop_oneof![
        4 => (kind, visibility).prop_map(|(kind, visibility)| Step::Reply(kind, visibility)),
        3 => status.prop_map(Step::Status),
        1 => priority.prop_map(Step::Priority),
        1 => prop::sample::select(vec![None, Some("vip"), Some("other")]).prop_map(Step::Group),
        1 => Just(Step::Scheduler),
        1 => prop::sample::select(vec![15u32, 30, 60, 240]).prop_map(Step::PolicyEdit),
    ]
}

/// Office hours in Berlin, position 10; low tickets have no targets.
fn office(version: u64, normal_first_reply: u32) -> (PolicyRef, SlaPolicyDefinition) {
    let (_, definition) = policy(
        "office",
        json!({
            "name": "Office",
            "position": 10,
            "targets": {
                "normal": { "first_reply": normal_first_reply, "next_reply": 60, "resolution": 960 },
                "high": { "first_reply": 60, "resolution": 480 },
                "urgent": { "first_reply": 15, "next_reply": 15, "resolution": 240 },
            },
            "calendar": office_hours(&["2026-06-10"]),
        }),
    );
    (reference("office", version), definition)
}

/// 24×7 for the `vip` group, pausing on hold only.
fn vip() -> (PolicyRef, SlaPolicyDefinition) {
    policy(
        "vip",
        json!({
            "name": "VIP",
            "position": 1,
            "applies_to": { "groups": ["vip"] },
            "targets": { "normal": { "first_reply": 30, "next_reply": 30, "resolution": 600 } },
            "calendar": { "kind": "always" },
            "pause_statuses": ["on_hold"],
        }),
    )
}

/// Runs the history through a desk, as the ticket aggregate would allow it, checking after
/// every step that nothing due is left unreported.
fn run(start_minutes: i64, steps: &[(i64, Step)]) -> Desk {
    let mut desk = Desk::new(vec![office(1, 240), vip()]);
    let mut now = berlin("2026-06-08 08:00") + TimeDelta::minutes(start_minutes);
    desk.open(now);
    let mut version = 1;
    for (gap_seconds, step) in steps {
        now += TimeDelta::seconds(*gap_seconds);
        let status = desk.status;
        let workable = !matches!(status, Status::Solved | Status::Closed);
        match step {
            Step::Reply(kind, visibility) if workable => {
                desk.reply(*kind, *visibility, now);
            }
            Step::Status(to) if status.can_become(*to) => {
                desk.status(*to, now);
            }
            Step::Priority(to) if workable && *to != desk.priority => {
                desk.priority(*to, now);
            }
            Step::Group(to) if workable && to.map(str::to_owned) != desk.group => {
                desk.group(*to, now);
            }
            Step::Scheduler => {
                desk.breaches(now);
            }
            Step::PolicyEdit(target) => {
                version += 1;
                desk.policies_change(vec![office(version, *target), vip()], now);
            }
            _ => continue,
        }
        assert!(
            desk.sla.due_breaches(now).is_empty(),
            "breach left due at {now}"
        );
    }
    desk
}

fn history() -> impl Strategy<Value = (i64, Vec<(i64, Step)>)> {
    // Gaps of up to ten hours, in seconds, so instants fall off whole minutes too.
    let gap = prop_oneof![0i64..=120, 0i64..=36_000];
    (
        0i64..=7 * 24 * 60,
        prop::collection::vec((gap, step()), 0..40),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn the_stored_sla_events_rebuild_the_clocks_exactly((start, steps) in history()) {
        let desk = run(start, &steps);
        let mut clocks = crate::sla::engine::SlaClocks::default();
        for event in &desk.log {
            clocks.apply(event);
        }
        prop_assert_eq!(&clocks, desk.sla.clocks());
    }

    #[test]
    fn ticket_events_and_stored_sla_events_rebuild_the_whole_state((start, steps) in history()) {
        let desk = run(start, &steps);
        let mut rebuilt = TicketSla::default();
        for (event, at) in &desk.history {
            rebuilt.observe(event, *at);
        }
        for event in &desk.log {
            rebuilt.apply(event);
        }
        prop_assert_eq!(rebuilt, desk.sla);
    }

    #[test]
    fn every_event_follows_its_activation_and_each_is_breached_at_most_once(
        (start, steps) in history()
    ) {
        let desk = run(start, &steps);
        let mut activated = BTreeSet::new();
        let mut breaches = BTreeMap::new();
        let mut last_at = None;
        for event in &desk.log {
            let key = (event.metric(), event.activation());
            match event {
                SlaEvent::Activated { .. } => {
                    activated.insert(key);
                }
                SlaEvent::Breached { .. } => {
                    *breaches.entry(key).or_insert(0) += 1;
                }
                _ => {}
            }
            prop_assert!(activated.contains(&key), "{event:?} before its activation");
            if !matches!(event, SlaEvent::Breached { .. }) {
                prop_assert!(last_at <= Some(event.at()), "{event:?} goes back in time");
                last_at = Some(event.at());
            }
        }
        prop_assert!(breaches.values().all(|count| *count == 1), "{breaches:?}");
    }

    #[test]
    fn a_running_clock_fulfilled_at_or_after_its_due_time_was_breached(
        (start, steps) in history()
    ) {
        let desk = run(start, &steps);
        let mut clocks = crate::sla::engine::SlaClocks::default();
        for event in &desk.log {
            if let SlaEvent::Fulfilled { metric, activation, at, .. } = event {
                let current = clocks.get(*metric).unwrap();
                prop_assert_eq!(current.activation, *activation);
                // (Not the converse: a breach stands when a retarget later moves the due time.)
                if !current.paused && current.due_at <= *at {
                    prop_assert!(current.breached_at.is_some(), "{event:?} hides a breach");
                }
            }
            clocks.apply(event);
        }
    }
}

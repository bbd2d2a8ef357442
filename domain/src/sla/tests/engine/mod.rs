//! Specifications of the SLA engine as worked examples. Each test spells out its calendar and
//! targets; instants are Berlin wall-clock times. In June 2026 Friday is the 5th and Monday
//! the 8th.

mod first_reply;
mod next_reply;
mod pausing;
mod replay;
mod resolution;
mod retargeting;
mod wire;

use chrono::{DateTime, Utc};
use chrono_tz::Europe::Berlin;
use serde_json::json;

use super::at;
use crate::sla::{PolicyRef, SlaEvent, SlaMetric, SlaPolicyDefinition, TicketSla};
use crate::ticket::{
    Author, AuthorKind, Channel, Priority, ReplyAdded, Requester, Status, TicketAssigned,
    TicketEvent, TicketOpened, TicketPriorityChanged, TicketStatusChanged, Visibility,
};

/// A Berlin wall-clock instant, `YYYY-MM-DD HH:MM`.
fn berlin(local: &str) -> DateTime<Utc> {
    at(Berlin, local)
}

/// Mon–Fri 09:00–18:00 in Berlin, with the given holidays.
fn office_hours(holidays: &[&str]) -> serde_json::Value {
    let day = json!([{ "start": "09:00", "end": "18:00" }]);
    json!({
        "kind": "business_hours",
        "time_zone": "Europe/Berlin",
        "hours": { "mon": day, "tue": day, "wed": day, "thu": day, "fri": day },
        "holidays": holidays,
    })
}

/// A policy from its JSON form, which must pass validation, as version 1 of `id`.
fn policy(id: &str, json: serde_json::Value) -> (PolicyRef, SlaPolicyDefinition) {
    let definition: SlaPolicyDefinition = serde_json::from_value(json).unwrap();
    definition.validate().unwrap();
    (reference(id, 1), definition)
}

fn reference(id: &str, version: u64) -> PolicyRef {
    PolicyRef {
        id: id.into(),
        version,
    }
}

/// One ticket and the SLA events it caused, with the ticket's history kept for replays.
struct Desk {
    policies: Vec<(PolicyRef, SlaPolicyDefinition)>,
    sla: TicketSla,
    history: Vec<(TicketEvent, DateTime<Utc>)>,
    log: Vec<SlaEvent>,
    priority: Priority,
    status: Status,
    group: Option<String>,
}

impl Desk {
    fn new(policies: Vec<(PolicyRef, SlaPolicyDefinition)>) -> Desk {
        Desk {
            policies,
            sla: TicketSla::default(),
            history: Vec::new(),
            log: Vec::new(),
            priority: Priority::Normal,
            status: Status::New,
            group: None,
        }
    }

    /// Feeds a ticket event to the engine; returns the SLA events it caused.
    fn on(&mut self, event: TicketEvent, at: DateTime<Utc>) -> Vec<SlaEvent> {
        let events = self
            .sla
            .on_ticket_event(&event, at, &self.policies)
            .unwrap();
        self.history.push((event, at));
        self.log.extend(events.clone());
        events
    }

    fn open(&mut self, at: DateTime<Utc>) -> Vec<SlaEvent> {
        self.open_with(Priority::Normal, Channel::Email, None, at)
    }

    fn open_with(
        &mut self,
        priority: Priority,
        channel: Channel,
        group: Option<&str>,
        at: DateTime<Utc>,
    ) -> Vec<SlaEvent> {
        self.priority = priority;
        self.group = group.map(str::to_owned);
        self.on(
            TicketEvent::TicketOpened(TicketOpened {
                ticket_id: "t-1".into(),
                subject: "Printer on fire".into(),
                description: "It is on fire.".into(),
                priority,
                channel,
                requester: Requester {
                    customer_id: "cust-1".into(),
                    name: None,
                    email: None,
                },
                tags: Vec::new(),
                group: group.map(str::to_owned),
            }),
            at,
        )
    }

    fn reply(
        &mut self,
        kind: AuthorKind,
        visibility: Visibility,
        at: DateTime<Utc>,
    ) -> Vec<SlaEvent> {
        self.on(
            TicketEvent::ReplyAdded(ReplyAdded {
                interaction_id: format!("i-{}", self.history.len()),
                author: Author {
                    id: "someone".into(),
                    kind,
                },
                visibility,
                body: "…".into(),
                attachments: Vec::new(),
            }),
            at,
        )
    }

    fn agent_replies(&mut self, at: DateTime<Utc>) -> Vec<SlaEvent> {
        self.reply(AuthorKind::Agent, Visibility::Public, at)
    }

    fn customer_replies(&mut self, at: DateTime<Utc>) -> Vec<SlaEvent> {
        self.reply(AuthorKind::Customer, Visibility::Public, at)
    }

    fn agent_adds_note(&mut self, at: DateTime<Utc>) -> Vec<SlaEvent> {
        self.reply(AuthorKind::Agent, Visibility::Internal, at)
    }

    fn status(&mut self, to: Status, at: DateTime<Utc>) -> Vec<SlaEvent> {
        let from = std::mem::replace(&mut self.status, to);
        self.on(
            TicketEvent::TicketStatusChanged(TicketStatusChanged { from, to }),
            at,
        )
    }

    fn priority(&mut self, to: Priority, at: DateTime<Utc>) -> Vec<SlaEvent> {
        let from = std::mem::replace(&mut self.priority, to);
        self.on(
            TicketEvent::TicketPriorityChanged(TicketPriorityChanged { from, to }),
            at,
        )
    }

    fn group(&mut self, to: Option<&str>, at: DateTime<Utc>) -> Vec<SlaEvent> {
        let previous_group = std::mem::replace(&mut self.group, to.map(str::to_owned));
        self.on(
            TicketEvent::TicketAssigned(TicketAssigned {
                assignee: None,
                group: to.map(str::to_owned),
                previous_assignee: None,
                previous_group,
            }),
            at,
        )
    }

    /// What the breach scheduler would do at `now`: ask, store, apply.
    fn breaches(&mut self, now: DateTime<Utc>) -> Vec<SlaEvent> {
        let events = self.sla.due_breaches(now);
        for event in &events {
            self.sla.apply(event);
        }
        self.log.extend(events.clone());
        events
    }

    /// Replaces the policies, as a policy update would, and re-applies them at `at`.
    fn policies_change(
        &mut self,
        policies: Vec<(PolicyRef, SlaPolicyDefinition)>,
        at: DateTime<Utc>,
    ) -> Vec<SlaEvent> {
        self.policies = policies;
        let events = self.sla.reapply_policies(at, &self.policies).unwrap();
        self.log.extend(events.clone());
        events
    }
}

/// The events of one metric, in order.
fn only(metric: SlaMetric, events: &[SlaEvent]) -> Vec<SlaEvent> {
    events
        .iter()
        .filter(|event| event.metric() == metric)
        .cloned()
        .collect()
}

fn activated(
    metric: SlaMetric,
    activation: u32,
    policy: &PolicyRef,
    at: DateTime<Utc>,
    started_at: DateTime<Utc>,
    due_at: DateTime<Utc>,
    target_minutes: u32,
) -> SlaEvent {
    SlaEvent::Activated {
        metric,
        activation,
        policy: policy.clone(),
        at,
        started_at,
        due_at,
        target_minutes,
    }
}

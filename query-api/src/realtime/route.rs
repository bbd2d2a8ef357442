//! Which messages one push means for one client: the subscriptions it touches, and what the
//! client may learn of it. Pure: the session ([`super::session`]) feeds it live pushes and
//! replayed ones alike, so a replay decides exactly as the live feed did.

use helpdesk_domain::Principal;
use helpdesk_domain::access::{self, AgentScope};

use super::protocol::ServerMessage;
use super::summary::{Push, SlaUpdate, Target, Update};

/// One subscription of a session.
pub(super) struct Subscription {
    pub target: Target,
    /// Pushes at or before this cursor were already delivered (a resume point ahead of this
    /// instance).
    pub delivered_through: u64,
}

/// The messages `push` means for the given subscriptions of `principal` (at most one
/// `update`, `left` or `sla` message of each kind, naming every subscription concerned).
pub(super) fn route<'a>(
    principal: &Principal,
    scope: AgentScope,
    push: &Push,
    subscriptions: impl Iterator<Item = (&'a String, &'a Subscription)>,
) -> Vec<ServerMessage> {
    match push {
        Push::Ticket(update) => route_update(principal, scope, update, subscriptions),
        Push::Sla(sla) => route_sla(principal, scope, sla, subscriptions),
    }
}

/// Whether `principal` receives SLA events: targets, due times and breaches are staff
/// information (those who may read internal notes: agents, managers, admins, auditors);
/// customers never receive them, not even for their own tickets.
fn sees_sla(principal: &Principal) -> bool {
    access::sees_internal_notes(principal)
}

/// The messages `update` means for the given subscriptions of `principal`: an `update` naming
/// the subscriptions the ticket is in after the event, and a `left` naming those it was in
/// before and is not any more. Internal notes reach only those who may read them.
fn route_update<'a>(
    principal: &Principal,
    scope: AgentScope,
    update: &Update,
    subscriptions: impl Iterator<Item = (&'a String, &'a Subscription)>,
) -> Vec<ServerMessage> {
    if update.internal && !access::sees_internal_notes(principal) {
        return Vec::new();
    }
    let mut touched = Vec::new();
    let mut left = Vec::new();
    for (id, subscription) in subscriptions {
        if update.cursor <= subscription.delivered_through {
            continue;
        }
        if subscription
            .target
            .includes(&update.after, principal, scope)
        {
            touched.push(id.clone());
        } else if update
            .before
            .as_ref()
            .is_some_and(|before| subscription.target.includes(before, principal, scope))
        {
            left.push(id.clone());
        }
    }
    let mut messages = Vec::new();
    if !touched.is_empty() {
        messages.push(ServerMessage::Update {
            cursor: update.cursor,
            position: update.position,
            event_type: update.event_type.clone(),
            subscriptions: touched,
            ticket: update.encoded_after(),
        });
    }
    if !left.is_empty() {
        messages.push(ServerMessage::Left {
            cursor: update.cursor,
            position: update.position,
            ticket_id: update.after.id.clone(),
            subscriptions: left,
        });
    }
    messages
}

/// The `sla` message `sla` means for the given subscriptions of `principal`: it names every
/// subscription that would receive an update of the ticket now (the ticket subscription, the
/// queues the ticket is in), under the same access rules. An SLA event does not change the
/// ticket, so it never makes a ticket enter or leave a subscription.
fn route_sla<'a>(
    principal: &Principal,
    scope: AgentScope,
    sla: &SlaUpdate,
    subscriptions: impl Iterator<Item = (&'a String, &'a Subscription)>,
) -> Vec<ServerMessage> {
    if !sees_sla(principal) {
        return Vec::new();
    }
    let touched: Vec<String> = subscriptions
        .filter(|(_, subscription)| {
            sla.cursor > subscription.delivered_through
                && subscription.target.includes(&sla.ticket, principal, scope)
        })
        .map(|(id, _)| id.clone())
        .collect();
    if touched.is_empty() {
        return Vec::new();
    }
    vec![ServerMessage::Sla {
        cursor: sla.cursor,
        position: sla.position,
        event_type: sla.event_type.clone(),
        subscriptions: touched,
        ticket_id: sla.ticket.id.clone(),
        sla: Box::new(sla.event.clone()),
    }]
}

#[cfg(test)]
pub(super) mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use chrono::Utc;
    use helpdesk_domain::actor::Role;
    use helpdesk_domain::sla::{PolicyRef, SlaEvent, SlaMetric};
    use helpdesk_domain::ticket::{Channel, Priority, Requester, Status};

    use super::*;
    use crate::realtime::summary::{QueueFilter, TicketSummary};

    fn principal(id: &str, role: Role, groups: &[&str]) -> Principal {
        Principal {
            id: id.into(),
            role,
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            customer_id: (role == Role::Customer).then(|| id.to_owned()),
        }
    }

    /// Ticket `id` at `version`, in `group` (none: ungrouped) and `status`; the replay's tests
    /// use it too.
    pub(in crate::realtime) fn summary(
        id: &str,
        version: u64,
        group: Option<&str>,
        status: Status,
    ) -> TicketSummary {
        TicketSummary {
            id: id.into(),
            version,
            subject: "Printer".into(),
            status,
            priority: Priority::Normal,
            channel: Channel::Web,
            requester: Requester {
                customer_id: "alice".into(),
                name: None,
                email: None,
            },
            assignee: None,
            group: group.map(str::to_owned),
            tags: Vec::new(),
            reply_count: 0,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    /// Subscriptions to every ticket (`all`), to new and open ones (`open`), to ticket t-1
    /// (`this`) and to ticket t-2 (`other`).
    fn all_open_this_and_other() -> BTreeMap<String, Subscription> {
        let open = QueueFilter {
            statuses: vec![Status::New, Status::Open],
            ..QueueFilter::default()
        };
        subscriptions(&[
            ("all", Target::Queue(QueueFilter::default())),
            ("open", Target::Queue(open)),
            ("this", Target::Ticket("t-1".into())),
            ("other", Target::Ticket("t-2".into())),
        ])
    }

    fn ticket(group: Option<&str>, status: Status) -> TicketSummary {
        summary("t-1", 1, group, status)
    }

    fn update(before: TicketSummary, after: TicketSummary, internal: bool) -> Push {
        Push::Ticket(Update {
            cursor: 10,
            position: 10,
            event_type: "Something".into(),
            internal,
            before: Some(before),
            after,
            encoded: Default::default(),
        })
    }

    /// A breach of the first reply of the ticket summarised by `ticket`, at cursor 10.
    fn breach(ticket: TicketSummary) -> Push {
        Push::Sla(SlaUpdate {
            cursor: 10,
            position: 10,
            event_type: "SlaBreached".into(),
            event: SlaEvent::Breached {
                metric: SlaMetric::FirstReply,
                activation: 1,
                at: Utc::now(),
            },
            ticket,
        })
    }

    fn subscriptions(targets: &[(&str, Target)]) -> BTreeMap<String, Subscription> {
        targets
            .iter()
            .map(|(id, target)| {
                let subscription = Subscription {
                    target: target.clone(),
                    delivered_through: 0,
                };
                ((*id).to_owned(), subscription)
            })
            .collect()
    }

    fn kinds(messages: &[ServerMessage]) -> Vec<(&'static str, Vec<String>)> {
        messages
            .iter()
            .map(|message| match message {
                ServerMessage::Update { subscriptions, .. } => ("update", subscriptions.clone()),
                ServerMessage::Left { subscriptions, .. } => ("left", subscriptions.clone()),
                ServerMessage::Sla { subscriptions, .. } => ("sla", subscriptions.clone()),
                _ => ("other", Vec::new()),
            })
            .collect()
    }

    fn names(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|id| (*id).to_owned()).collect()
    }

    #[test]
    fn one_update_names_every_matching_subscription_and_a_left_names_the_ones_it_dropped_out_of() {
        let agent = principal("agent-7", Role::Agent, &[]);
        let subs = all_open_this_and_other();
        let pending = update(
            ticket(None, Status::Open),
            ticket(None, Status::Pending),
            false,
        );
        let messages = route(&agent, AgentScope::All, &pending, subs.iter());
        assert_eq!(
            kinds(&messages),
            [
                ("update", names(&["all", "this"])),
                ("left", names(&["open"])),
            ]
        );
    }

    #[test]
    fn every_session_sends_the_summary_encoded_once_and_it_reads_as_the_ticket_after() {
        let subs = all_open_this_and_other();
        let pending = update(
            ticket(None, Status::Open),
            ticket(None, Status::Pending),
            false,
        );
        let encoded = |principal: &Principal| {
            let messages = route(principal, AgentScope::All, &pending, subs.iter());
            let Some(ServerMessage::Update { ticket, .. }) = messages.into_iter().next() else {
                panic!("no update for {}", principal.id)
            };
            ticket
        };
        let first = encoded(&principal("agent-7", Role::Agent, &[]));
        let second = encoded(&principal("manager-1", Role::Manager, &[]));
        assert!(first.shares_text_with(&second));
        let Push::Ticket(update) = &pending else {
            unreachable!()
        };
        assert_eq!(first.decode().unwrap(), update.after);
        // On the wire the ticket is the summary's own JSON object, as before it was shared.
        let message = route(
            &principal("agent-7", Role::Agent, &[]),
            AgentScope::All,
            &pending,
            subs.iter(),
        )
        .remove(0);
        let wire: serde_json::Value = serde_json::from_str(&message.to_json()).unwrap();
        assert_eq!(wire["ticket"], serde_json::to_value(&update.after).unwrap());
        assert_eq!(
            serde_json::from_str::<ServerMessage>(&message.to_json()).unwrap(),
            message
        );
    }

    #[test]
    fn internal_notes_reach_staff_only_and_customers_only_their_own_tickets() {
        let subs = subscriptions(&[("all", Target::Queue(QueueFilter::default()))]);
        let note = update(ticket(None, Status::Open), ticket(None, Status::Open), true);
        let alice = principal("alice", Role::Customer, &[]);
        let bob = principal("bob", Role::Customer, &[]);
        let auditor = principal("audit-1", Role::Auditor, &[]);
        assert!(route(&alice, AgentScope::All, &note, subs.iter()).is_empty());
        assert_eq!(
            route(&auditor, AgentScope::All, &note, subs.iter()).len(),
            1
        );
        let public = update(
            ticket(None, Status::Open),
            ticket(None, Status::Pending),
            false,
        );
        assert_eq!(
            route(&alice, AgentScope::All, &public, subs.iter()).len(),
            1
        );
        assert!(route(&bob, AgentScope::All, &public, subs.iter()).is_empty());
    }

    #[test]
    fn a_group_scoped_agent_sees_a_ticket_leave_when_it_moves_to_another_group() {
        let agent = principal("agent-7", Role::Agent, &["billing"]);
        let subs = subscriptions(&[("mine", Target::Ticket("t-1".into()))]);
        let moved = update(
            ticket(Some("billing"), Status::Open),
            ticket(Some("legal"), Status::Open),
            false,
        );
        let messages = route(&agent, AgentScope::Groups, &moved, subs.iter());
        assert_eq!(kinds(&messages), [("left", names(&["mine"]))]);
        assert_eq!(
            kinds(&route(&agent, AgentScope::All, &moved, subs.iter())),
            [("update", names(&["mine"]))]
        );
    }

    #[test]
    fn updates_at_or_before_a_resume_point_ahead_of_the_instance_are_not_repeated() {
        let agent = principal("agent-7", Role::Agent, &[]);
        let mut subs = subscriptions(&[("all", Target::Queue(QueueFilter::default()))]);
        if let Some(subscription) = subs.get_mut("all") {
            subscription.delivered_through = 10;
        }
        let seen = update(
            ticket(None, Status::Open),
            ticket(None, Status::Open),
            false,
        );
        assert!(route(&agent, AgentScope::All, &seen, subs.iter()).is_empty());
        let next = seen.at(11);
        assert_eq!(route(&agent, AgentScope::All, &next, subs.iter()).len(), 1);
    }

    #[test]
    fn an_sla_event_reaches_staff_following_the_ticket_and_the_queues_it_is_in_now() {
        let subs = all_open_this_and_other();
        let breached = breach(ticket(None, Status::Open));
        for staff in [
            principal("agent-7", Role::Agent, &[]),
            principal("manager-1", Role::Manager, &[]),
            principal("admin-1", Role::Admin, &[]),
            principal("audit-1", Role::Auditor, &[]),
        ] {
            let messages = route(&staff, AgentScope::All, &breached, subs.iter());
            assert_eq!(kinds(&messages), [("sla", names(&["all", "open", "this"]))]);
            let ServerMessage::Sla {
                cursor,
                event_type,
                ticket_id,
                sla,
                ..
            } = &messages[0]
            else {
                unreachable!()
            };
            assert_eq!((*cursor, event_type.as_str()), (10, "SlaBreached"));
            assert_eq!(ticket_id, "t-1");
            assert_eq!(sla.metric(), SlaMetric::FirstReply);
        }
    }

    #[test]
    fn a_customer_never_receives_an_sla_event_not_even_for_their_own_ticket() {
        let alice = principal("alice", Role::Customer, &[]);
        let subs = subscriptions(&[
            ("all", Target::Queue(QueueFilter::default())),
            ("this", Target::Ticket("t-1".into())),
        ]);
        let breached = breach(ticket(None, Status::Open));
        assert!(route(&alice, AgentScope::All, &breached, subs.iter()).is_empty());
        let answered = update(
            ticket(None, Status::Open),
            ticket(None, Status::Open),
            false,
        );
        assert_eq!(
            kinds(&route(&alice, AgentScope::All, &answered, subs.iter())),
            [("update", names(&["all", "this"]))],
            "while the ticket's updates reach them"
        );
    }

    #[test]
    fn a_queue_gets_an_sla_event_only_while_the_ticket_matches_it_and_never_a_left() {
        let agent = principal("agent-7", Role::Agent, &[]);
        let urgent = QueueFilter {
            priorities: vec![Priority::Urgent],
            ..QueueFilter::default()
        };
        let mine = QueueFilter {
            assignee: Some("me".into()),
            statuses: vec![Status::Open],
            ..QueueFilter::default()
        };
        let subs = subscriptions(&[
            ("urgent", Target::Queue(urgent)),
            ("mine", Target::Queue(mine)),
        ]);
        let mut assigned = ticket(None, Status::Open);
        assigned.assignee = Some("agent-7".into());
        assert_eq!(
            kinds(&route(
                &agent,
                AgentScope::All,
                &breach(assigned.clone()),
                subs.iter()
            )),
            [("sla", names(&["mine"]))]
        );
        assigned.status = Status::Pending;
        assert!(
            route(&agent, AgentScope::All, &breach(assigned), subs.iter()).is_empty(),
            "a ticket in no followed queue: nothing, and no `left`"
        );
    }

    #[test]
    fn an_sla_event_follows_the_access_rules_of_updates() {
        let subs = subscriptions(&[
            ("all", Target::Queue(QueueFilter::default())),
            ("this", Target::Ticket("t-1".into())),
        ]);
        let in_legal = breach(ticket(Some("legal"), Status::Open));
        let billing = principal("agent-7", Role::Agent, &["billing"]);
        let legal = principal("agent-9", Role::Agent, &["legal"]);
        assert!(route(&billing, AgentScope::Groups, &in_legal, subs.iter()).is_empty());
        assert_eq!(
            kinds(&route(&legal, AgentScope::Groups, &in_legal, subs.iter())),
            [("sla", names(&["all", "this"]))]
        );
        assert_eq!(
            route(&billing, AgentScope::All, &in_legal, subs.iter()).len(),
            1
        );
    }

    #[test]
    fn sla_events_at_or_before_a_resume_point_are_not_repeated() {
        let agent = principal("agent-7", Role::Agent, &[]);
        let mut subs = subscriptions(&[("this", Target::Ticket("t-1".into()))]);
        if let Some(subscription) = subs.get_mut("this") {
            subscription.delivered_through = 10;
        }
        let breached = breach(ticket(None, Status::Open));
        assert!(route(&agent, AgentScope::All, &breached, subs.iter()).is_empty());
        let next = breached.at(11);
        assert_eq!(route(&agent, AgentScope::All, &next, subs.iter()).len(), 1);
    }

    #[test]
    fn an_sla_message_carries_the_sla_event_as_its_sla_field() {
        let activated = SlaEvent::Activated {
            metric: SlaMetric::Resolution,
            activation: 1,
            policy: PolicyRef {
                id: "standard".into(),
                version: 2,
            },
            at: Utc::now(),
            started_at: Utc::now(),
            due_at: Utc::now(),
            target_minutes: 240,
        };
        let push = Push::Sla(SlaUpdate {
            cursor: 12,
            position: 40,
            event_type: "SlaMetricActivated".into(),
            event: activated.clone(),
            ticket: ticket(None, Status::New),
        });
        let subs = subscriptions(&[("this", Target::Ticket("t-1".into()))]);
        let agent = principal("agent-7", Role::Agent, &[]);
        let message = route(&agent, AgentScope::All, &push, subs.iter()).remove(0);
        assert_eq!(message.sse_name(), ("sla", Some(12)));
        let json: serde_json::Value = serde_json::from_str(&message.to_json()).unwrap();
        assert_eq!(json["type"], "sla");
        assert_eq!(json["cursor"], 12);
        assert_eq!(json["position"], 40);
        assert_eq!(json["event_type"], "SlaMetricActivated");
        assert_eq!(json["subscriptions"], serde_json::json!(["this"]));
        assert_eq!(json["ticket_id"], "t-1");
        assert_eq!(json["sla"], serde_json::to_value(&activated).unwrap());
        assert_eq!(json["sla"]["type"], "activated");
        assert_eq!(json["sla"]["target_minutes"], 240);
        let back: ServerMessage = serde_json::from_value(json).unwrap();
        assert_eq!(back, message);
    }
}

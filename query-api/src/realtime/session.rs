//! One client's view of the feed: its subscriptions, what it may see, and its resume point.
//! The transports ([`super::ws`], [`super::sse`]) move its messages; this decides them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use helpdesk_domain::Principal;
use helpdesk_domain::access::{self, AgentScope};
use helpdesk_domain::actor::Role;
use tokio::sync::broadcast::{self, error::RecvError};

use super::Inner;
use super::presence::{PresenceChange, PresenceState};
use super::protocol::{ClientMessage, ServerMessage};
use super::summary::{Target, TicketSummary, Update, updates_of};
use crate::error::QueryError;
use crate::tickets::events;

/// Subscriptions one connection may hold.
const MAX_SUBSCRIPTIONS: usize = 100;
/// The longest subscription id.
const MAX_ID_CHARS: usize = 100;

/// What the feed has for the client next.
pub(super) enum Next {
    /// Messages to send (possibly none).
    Send(Vec<ServerMessage>),
    /// The session fell behind the feed: updates are lost, the client must resync.
    Behind,
}

/// Why a subscription was refused.
#[derive(Debug)]
pub(super) enum Refusal {
    /// The request is malformed (400 for SSE; an `error` message on a WebSocket).
    Invalid(String),
    /// No such ticket, or not one the caller may see (404).
    NotFound,
    /// The store failed.
    Store(QueryError),
}

struct Subscription {
    target: Target,
    /// Updates at or before this cursor were already delivered (a resume point ahead of this
    /// instance).
    delivered_through: u64,
}

/// A connected client.
pub(super) struct Session {
    inner: Arc<Inner>,
    principal: Principal,
    scope: AgentScope,
    connection: u64,
    subscriptions: BTreeMap<String, Subscription>,
    /// The cursor of the last live update this session has taken from the feed.
    cursor: u64,
    updates: broadcast::Receiver<Arc<Update>>,
    presence: broadcast::Receiver<Arc<PresenceChange>>,
    /// Followed tickets the caller lost sight of (moved to a group it is not in): no presence.
    hidden: std::collections::HashSet<String>,
}

impl Session {
    /// Joins the feed: live updates start after the current position.
    pub(super) fn open(inner: Arc<Inner>, principal: Principal, scope: AgentScope) -> Session {
        let (cursor, updates) = inner.join();
        let presence = inner.presence.changes();
        inner.open_sessions.fetch_add(1, Ordering::Relaxed);
        Session {
            connection: inner.next_connection(),
            inner,
            principal,
            scope,
            subscriptions: BTreeMap::new(),
            cursor,
            updates,
            presence,
            hidden: std::collections::HashSet::new(),
        }
    }

    /// Waits for the next update or presence change.
    pub(super) async fn next(&mut self) -> Next {
        tokio::select! {
            update = self.updates.recv() => match update {
                Ok(update) => {
                    self.cursor = update.cursor;
                    self.track_sight(&update);
                    let subscriptions = self.subscriptions.iter();
                    Next::Send(route(&self.principal, self.scope, &update, subscriptions))
                }
                Err(RecvError::Lagged(_) | RecvError::Closed) => Next::Behind,
            },
            change = self.presence.recv() => match change {
                Ok(change) => Next::Send(self.presence_message(&change).into_iter().collect()),
                // Missed presence changes: send the current lists again.
                Err(RecvError::Lagged(_)) => Next::Send(self.all_presence()),
                Err(RecvError::Closed) => Next::Send(Vec::new()),
            },
        }
    }

    /// Handles one WebSocket text frame; returns what to answer.
    pub(super) async fn handle(&mut self, text: &str) -> Vec<ServerMessage> {
        let message = match serde_json::from_str::<ClientMessage>(text) {
            Ok(message) => message,
            Err(error) => {
                return vec![ServerMessage::Error {
                    id: None,
                    detail: format!("unreadable message: {error}"),
                }];
            }
        };
        match message {
            ClientMessage::Subscribe {
                id,
                ticket,
                queue,
                since,
            } => {
                let target = match (ticket, queue) {
                    (Some(ticket), None) => Target::Ticket(ticket),
                    (None, Some(queue)) => Target::Queue(queue),
                    _ => {
                        return vec![ServerMessage::Error {
                            id: Some(id),
                            detail: "give exactly one of `ticket` and `queue`".into(),
                        }];
                    }
                };
                match self.subscribe(id.clone(), target, since).await {
                    Ok(messages) => messages,
                    Err(refusal) => vec![refusal.into_message(id)],
                }
            }
            ClientMessage::Unsubscribe { id } => {
                if self.subscriptions.remove(&id).is_some() {
                    Vec::new()
                } else {
                    vec![ServerMessage::Error {
                        id: Some(id),
                        detail: "no such subscription".into(),
                    }]
                }
            }
            ClientMessage::Presence { ticket, state } => {
                match self.announce(&ticket, state).await {
                    Ok(()) => Vec::new(),
                    Err(detail) => vec![ServerMessage::Error { id: None, detail }],
                }
            }
        }
    }

    /// Adds a subscription. With `since`, every matching update after it up to the session's
    /// position is returned first (then the `subscribed` acknowledgement); live updates follow
    /// from [`Session::next`], so nothing is lost or repeated. When `since` is too far behind
    /// to replay, the subscription starts live and a `resync` precedes the acknowledgement.
    pub(super) async fn subscribe(
        &mut self,
        id: String,
        target: Target,
        since: Option<u64>,
    ) -> Result<Vec<ServerMessage>, Refusal> {
        if id.is_empty() || id.chars().count() > MAX_ID_CHARS {
            return Err(Refusal::Invalid(format!(
                "a subscription id has 1 to {MAX_ID_CHARS} characters"
            )));
        }
        if !self.subscriptions.contains_key(&id) && self.subscriptions.len() >= MAX_SUBSCRIPTIONS {
            return Err(Refusal::Invalid(format!(
                "at most {MAX_SUBSCRIPTIONS} subscriptions per connection"
            )));
        }
        let target = match target {
            Target::Ticket(raw) => {
                let ticket = self.visible_ticket(&raw).await?;
                self.hidden.remove(&ticket.id);
                Target::Ticket(ticket.id)
            }
            queue @ Target::Queue(_) => queue,
        };
        let mut messages = Vec::new();
        let mut delivered_through = 0;
        if let Some(since) = since {
            delivered_through = since;
            match self
                .inner
                .replay(&target, since, self.cursor)
                .await
                .map_err(Refusal::Store)?
            {
                Some(updates) => {
                    let only = Subscription {
                        target: target.clone(),
                        delivered_through: since,
                    };
                    for update in &updates {
                        let one = std::iter::once((&id, &only));
                        messages.extend(route(&self.principal, self.scope, update, one));
                    }
                }
                None => {
                    delivered_through = self.cursor;
                    messages.push(ServerMessage::Resync {
                        id: Some(id.clone()),
                        reason: format!(
                            "more than {} events since cursor {since}: read the current state \
                             again",
                            self.inner.settings.replay_limit
                        ),
                    });
                }
            }
        }
        let ticket = match &target {
            Target::Ticket(ticket) => Some(ticket.clone()),
            Target::Queue(_) => None,
        };
        self.subscriptions.insert(
            id.clone(),
            Subscription {
                target,
                delivered_through,
            },
        );
        messages.push(ServerMessage::Subscribed {
            id,
            cursor: self.cursor,
        });
        if let Some(ticket) = ticket
            && self.sees_presence()
        {
            messages.push(ServerMessage::Presence {
                viewers: self.inner.presence.viewers(&ticket),
                ticket,
            });
        }
        Ok(messages)
    }

    /// Announces the caller's presence on a ticket it may work.
    async fn announce(&self, ticket: &str, state: PresenceState) -> Result<(), String> {
        if !matches!(
            self.principal.role,
            Role::Agent | Role::Manager | Role::Admin
        ) {
            return Err("only agents, managers and admins announce presence".into());
        }
        let ticket = match self.visible_ticket(ticket).await {
            Ok(ticket) => ticket,
            Err(Refusal::NotFound) => return Err("no such ticket".into()),
            Err(refusal) => return Err(refusal.detail()),
        };
        self.inner
            .presence
            .announce(self.connection, &self.principal.id, &ticket.id, state)
            .await;
        Ok(())
    }

    /// The current summary of ticket `raw`, if the caller may see it.
    async fn visible_ticket(&self, raw: &str) -> Result<TicketSummary, Refusal> {
        let id = uuid::Uuid::try_parse(raw)
            .map_err(|_| Refusal::NotFound)?
            .hyphenated()
            .to_string();
        let history = events::load(&self.inner.pool, &id)
            .await
            .map_err(Refusal::Store)?;
        let ticket = updates_of(&history)
            .pop()
            .map(|update| update.after)
            .ok_or(Refusal::NotFound)?;
        if access::can_see(&self.principal, self.scope, ticket.facts()) {
            Ok(ticket)
        } else {
            Err(Refusal::NotFound)
        }
    }

    /// Remembers whether the caller may still see a ticket it follows.
    fn track_sight(&mut self, update: &Update) {
        let ticket = &update.after.id;
        if !self.follows(ticket) {
            return;
        }
        if access::can_see(&self.principal, self.scope, update.after.facts()) {
            self.hidden.remove(ticket);
        } else {
            self.hidden.insert(ticket.clone());
        }
    }

    /// Whether a ticket subscription follows `ticket`.
    fn follows(&self, ticket: &str) -> bool {
        self.subscriptions
            .values()
            .any(|subscription| matches!(&subscription.target, Target::Ticket(id) if id == ticket))
    }

    fn sees_presence(&self) -> bool {
        access::sees_internal_notes(&self.principal)
    }

    fn presence_message(&self, change: &PresenceChange) -> Option<ServerMessage> {
        let followed = self.follows(&change.ticket) && !self.hidden.contains(&change.ticket);
        (followed && self.sees_presence()).then(|| ServerMessage::Presence {
            ticket: change.ticket.clone(),
            viewers: change.viewers.clone(),
        })
    }

    fn all_presence(&self) -> Vec<ServerMessage> {
        if !self.sees_presence() {
            return Vec::new();
        }
        self.subscriptions
            .values()
            .filter_map(|subscription| match &subscription.target {
                Target::Ticket(ticket) if self.hidden.contains(ticket) => None,
                Target::Ticket(ticket) => Some(ServerMessage::Presence {
                    ticket: ticket.clone(),
                    viewers: self.inner.presence.viewers(ticket),
                }),
                Target::Queue(_) => None,
            })
            .collect()
    }

    /// Leaves: withdraws the connection's presence.
    pub(super) async fn close(self) {
        self.inner.presence.forget(self.connection).await;
        self.inner.open_sessions.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Refusal {
    fn detail(&self) -> String {
        match self {
            Refusal::Invalid(detail) => detail.clone(),
            Refusal::NotFound => "no such ticket".into(),
            Refusal::Store(_) => "the event store could not be read; try again".into(),
        }
    }

    fn into_message(self, id: String) -> ServerMessage {
        if let Refusal::Store(error) = &self {
            tracing::warn!(%error, "real-time subscription failed");
        }
        ServerMessage::Error {
            id: Some(id),
            detail: self.detail(),
        }
    }
}

/// The messages `update` means for the given subscriptions of `principal`: an `update` naming
/// the subscriptions the ticket is in after the event, and a `left` naming those it was in
/// before and is not any more. Internal notes reach only those who may read them.
fn route<'a>(
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
            ticket: Box::new(update.after.clone()),
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::Utc;
    use helpdesk_domain::ticket::{Channel, Priority, Requester, Status};

    use super::*;
    use crate::realtime::summary::QueueFilter;

    fn principal(id: &str, role: Role, groups: &[&str]) -> Principal {
        Principal {
            id: id.into(),
            role,
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            customer_id: (role == Role::Customer).then(|| id.to_owned()),
        }
    }

    fn ticket(group: Option<&str>, status: Status) -> TicketSummary {
        TicketSummary {
            id: "t-1".into(),
            version: 1,
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

    fn update(before: TicketSummary, after: TicketSummary, internal: bool) -> Update {
        Update {
            cursor: 10,
            position: 10,
            event_type: "Something".into(),
            internal,
            before: Some(before),
            after,
        }
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
                _ => ("other", Vec::new()),
            })
            .collect()
    }

    #[test]
    fn one_update_names_every_matching_subscription_and_a_left_names_the_ones_it_dropped_out_of() {
        let agent = principal("agent-7", Role::Agent, &[]);
        let open = QueueFilter {
            statuses: vec![Status::New, Status::Open],
            ..QueueFilter::default()
        };
        let subs = subscriptions(&[
            ("all", Target::Queue(QueueFilter::default())),
            ("open", Target::Queue(open)),
            ("this", Target::Ticket("t-1".into())),
            ("other", Target::Ticket("t-2".into())),
        ]);
        let pending = update(
            ticket(None, Status::Open),
            ticket(None, Status::Pending),
            false,
        );
        let messages = route(&agent, AgentScope::All, &pending, subs.iter());
        assert_eq!(
            kinds(&messages),
            [
                ("update", vec!["all".to_owned(), "this".to_owned()]),
                ("left", vec!["open".to_owned()]),
            ]
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
        assert_eq!(kinds(&messages), [("left", vec!["mine".to_owned()])]);
        assert_eq!(
            kinds(&route(&agent, AgentScope::All, &moved, subs.iter())),
            [("update", vec!["mine".to_owned()])]
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
        let next = Update { cursor: 11, ..seen };
        assert_eq!(route(&agent, AgentScope::All, &next, subs.iter()).len(), 1);
    }
}

//! One client's view of the feed: its subscriptions, what it may see, and its resume point.
//! The transports ([`super::ws`], [`super::sse`]) move its messages; this decides them, with
//! [`super::route`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use helpdesk_domain::Principal;
use helpdesk_domain::access::{self, AgentScope};
use helpdesk_domain::actor::Role;
use tokio::sync::broadcast::{
    self,
    error::{RecvError, TryRecvError},
};

use super::Inner;
use super::presence::{PresenceChange, PresenceState};
use super::protocol::{ClientMessage, ServerMessage};
use super::route::{Subscription, route};
use super::summary::{Push, Target, TicketSummary, Update, updates_of};
use crate::error::QueryError;
use crate::tickets::events;

/// Subscriptions one connection may hold.
const MAX_SUBSCRIPTIONS: usize = 100;
/// The longest subscription id.
const MAX_ID_CHARS: usize = 100;
/// Most pushes taken from the feed at one wake-up.
const PUSHES_PER_WAKE: usize = 64;

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

/// A connected client.
pub(super) struct Session {
    inner: Arc<Inner>,
    principal: Principal,
    scope: AgentScope,
    connection: u64,
    subscriptions: BTreeMap<String, Subscription>,
    /// The cursor of the last live push this session has taken from the feed.
    cursor: u64,
    pushes: broadcast::Receiver<Arc<Push>>,
    presence: broadcast::Receiver<Arc<PresenceChange>>,
    /// Followed tickets the caller lost sight of (moved to a group it is not in): no presence.
    hidden: std::collections::HashSet<String>,
}

impl Session {
    /// Joins the feed: live updates start after the current position.
    pub(super) fn open(inner: Arc<Inner>, principal: Principal, scope: AgentScope) -> Session {
        let (cursor, pushes) = inner.join();
        let presence = inner.presence.changes();
        inner.open_sessions.fetch_add(1, Ordering::Relaxed);
        Session {
            connection: inner.next_connection(),
            inner,
            principal,
            scope,
            subscriptions: BTreeMap::new(),
            cursor,
            pushes,
            presence,
            hidden: std::collections::HashSet::new(),
        }
    }

    /// Waits for the next push or presence change.
    pub(super) async fn next(&mut self) -> Next {
        tokio::select! {
            push = self.pushes.recv() => match push {
                Ok(push) => {
                    let mut messages = self.take(&push);
                    // The feed broadcasts a burst as fast as it reads it: take what else is
                    // there now, so that the burst costs one wake-up and one write.
                    for _ in 1..PUSHES_PER_WAKE {
                        match self.pushes.try_recv() {
                            Ok(push) => messages.extend(self.take(&push)),
                            Err(TryRecvError::Empty | TryRecvError::Closed) => break,
                            Err(TryRecvError::Lagged(_)) => return Next::Behind,
                        }
                    }
                    Next::Send(messages)
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

    /// The messages of one live push, moving the session's position past it.
    fn take(&mut self, push: &Push) -> Vec<ServerMessage> {
        self.cursor = push.cursor();
        if let Push::Ticket(update) = push {
            self.track_sight(update);
        }
        route(&self.principal, self.scope, push, self.subscriptions.iter())
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

    /// Adds a subscription. With `since`, every matching push (`update`, `left`, `sla`) after it
    /// up to the session's position is returned first (then the `subscribed` acknowledgement);
    /// live ones follow from [`Session::next`], so nothing is lost or repeated. When `since` is
    /// too far behind to replay, the subscription starts live and a `resync` precedes the
    /// acknowledgement.
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
                Some(pushes) => {
                    let only = Subscription {
                        target: target.clone(),
                        delivered_through: since,
                    };
                    for push in &pushes {
                        let one = std::iter::once((&id, &only));
                        messages.extend(route(&self.principal, self.scope, push, one));
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

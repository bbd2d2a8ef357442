//! What a push carries: the ticket's summary after a ticket event, an SLA event with the
//! ticket it concerns, and the filters that decide which subscriptions a push touches.

use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use helpdesk_domain::Principal;
use helpdesk_domain::access::{self, AgentScope, TicketFacts};
use helpdesk_domain::sla::SlaEvent;
use helpdesk_domain::ticket::{Channel, Priority, Requester, Status, TicketEvent, Visibility};
use helpdesk_schemas::EventEnvelope;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use crate::tickets::events::StoredEvent;

/// A ticket without its conversation: what queues and ticket screens show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TicketSummary {
    pub id: String,
    /// The ticket's version (its `ETag`).
    pub version: u64,
    pub subject: String,
    pub status: Status,
    pub priority: Priority,
    pub channel: Channel,
    pub requester: Requester,
    pub assignee: Option<String>,
    pub group: Option<String>,
    /// Sorted.
    pub tags: Vec<String>,
    /// Public replies (internal notes are not counted).
    pub reply_count: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TicketSummary {
    /// The summary after `event`, given the one before it (`None` only for `TicketOpened`).
    /// `None` when the event cannot follow `before` (a non-opening first event).
    pub fn next(
        before: Option<&TicketSummary>,
        sequence: u64,
        at: DateTime<Utc>,
        event: &TicketEvent,
    ) -> Option<TicketSummary> {
        if let TicketEvent::TicketOpened(opened) = event {
            let mut tags = opened.tags.clone();
            tags.sort();
            return Some(TicketSummary {
                id: opened.ticket_id.clone(),
                version: sequence,
                subject: opened.subject.clone(),
                status: Status::New,
                priority: opened.priority,
                channel: opened.channel,
                requester: opened.requester.clone(),
                assignee: None,
                group: opened.group.clone(),
                tags,
                reply_count: 0,
                created_at: at,
                updated_at: at,
            });
        }
        let mut after = before?.clone();
        after.version = sequence;
        after.updated_at = at;
        match event {
            TicketEvent::TicketOpened(_) => {}
            TicketEvent::TicketStatusChanged(e) => after.status = e.to,
            TicketEvent::TicketPriorityChanged(e) => after.priority = e.to,
            TicketEvent::TicketAssigned(e) => {
                after.assignee.clone_from(&e.assignee);
                after.group.clone_from(&e.group);
            }
            TicketEvent::TagsChanged(e) => {
                after.tags.retain(|tag| !e.removed.contains(tag));
                after.tags.extend(e.added.iter().cloned());
                after.tags.sort();
                after.tags.dedup();
            }
            TicketEvent::ReplyAdded(e) => {
                if e.visibility == Visibility::Public {
                    after.reply_count += 1;
                }
            }
        }
        Some(after)
    }

    /// The ownership facts access decisions need.
    pub fn facts(&self) -> TicketFacts<'_> {
        TicketFacts {
            requester_id: &self.requester.customer_id,
            group: self.group.as_deref(),
        }
    }
}

/// A ticket summary as JSON text, encoded once and shared: one push reaches every session
/// with the same summary, so the feed serializes it once rather than once per client.
#[derive(Clone)]
pub struct EncodedSummary(Arc<Box<RawValue>>);

impl EncodedSummary {
    /// `summary` as JSON.
    pub fn of(summary: &TicketSummary) -> EncodedSummary {
        // A summary has only string keys and plain values: it always serializes.
        let json = serde_json::value::to_raw_value(summary).unwrap_or_default();
        EncodedSummary(Arc::new(json))
    }

    /// The JSON text.
    pub fn json(&self) -> &str {
        self.0.get()
    }

    /// The summary it encodes.
    #[cfg(test)]
    pub fn decode(&self) -> serde_json::Result<TicketSummary> {
        serde_json::from_str(self.json())
    }

    /// Whether both are the same encoding (not merely equal text).
    #[cfg(test)]
    pub fn shares_text_with(&self, other: &EncodedSummary) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl std::fmt::Debug for EncodedSummary {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.json())
    }
}

impl PartialEq for EncodedSummary {
    fn eq(&self, other: &Self) -> bool {
        self.json() == other.json()
    }
}

impl Serialize for EncodedSummary {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for EncodedSummary {
    /// Reads a summary and encodes it again (a raw value cannot be taken from inside a tagged
    /// message, which serde buffers first).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        TicketSummary::deserialize(deserializer).map(|summary| EncodedSummary::of(&summary))
    }
}

/// One event as the real-time feed delivers it: the ticket before and after.
#[derive(Debug, Clone)]
pub struct Update {
    /// The event's sequence in the events stream: the feed's order and the resume point
    /// (0 until the event is matched with its stream message).
    pub cursor: u64,
    /// The event's global position (what a command's response names).
    pub position: i64,
    pub event_type: String,
    /// An internal note: only those who may read internal notes learn of it.
    pub internal: bool,
    /// The ticket before the event (`None` for `TicketOpened`).
    pub before: Option<TicketSummary>,
    pub after: TicketSummary,
    /// `after` as JSON, once some session needed it (see [`Update::encoded_after`]); `after`
    /// must not change once it is set.
    pub(super) encoded: OnceLock<EncodedSummary>,
}

impl Update {
    /// The update `event` makes to the ticket summarised by `before`.
    pub fn of(before: Option<TicketSummary>, event: &StoredEvent) -> Option<Update> {
        let after = TicketSummary::next(
            before.as_ref(),
            event.sequence,
            event.recorded_at,
            &event.event,
        )?;
        Some(Update {
            cursor: 0,
            position: event.global_position,
            event_type: event.event_type.clone(),
            internal: matches!(
                &event.event,
                TicketEvent::ReplyAdded(reply) if reply.visibility == Visibility::Internal
            ),
            before,
            after,
            encoded: OnceLock::new(),
        })
    }

    /// The summary after the event, as JSON: encoded by the first session that sends it, and
    /// shared by the rest.
    pub fn encoded_after(&self) -> EncodedSummary {
        self.encoded
            .get_or_init(|| EncodedSummary::of(&self.after))
            .clone()
    }
}

/// Every update of one ticket's events (oldest first, the first being `TicketOpened`).
pub fn updates_of(events: &[StoredEvent]) -> Vec<Update> {
    let mut updates: Vec<Update> = Vec::with_capacity(events.len());
    for event in events {
        let before = updates.last().map(|update| update.after.clone());
        if let Some(update) = Update::of(before, event) {
            updates.push(update);
        }
    }
    updates
}

/// The aggregate type of ticket events on the stream.
pub const TICKET_AGGREGATE: &str = "Ticket";
/// The aggregate type SLA events are stored and published under, one aggregate per ticket
/// with the ticket's id (written by the `sla` projection).
pub const SLA_AGGREGATE: &str = "TicketSla";

/// One SLA event of a ticket as the real-time feed delivers it. An SLA event does not change
/// the ticket: `ticket` is the summary after the ticket's last event before this one in the
/// feed, and decides which subscriptions the event reaches, as an update would.
#[derive(Debug, Clone)]
pub struct SlaUpdate {
    /// The event's sequence in the events stream (0 until matched with its stream message).
    pub cursor: u64,
    /// The event's global position.
    pub position: i64,
    /// The stored event type: `SlaMetricActivated`, `SlaMetricPaused`, `SlaMetricResumed`,
    /// `SlaMetricRetargeted`, `SlaMetricFulfilled`, `SlaBreached` or `SlaMetricWithdrawn`.
    pub event_type: String,
    pub event: SlaEvent,
    pub ticket: TicketSummary,
}

impl SlaUpdate {
    /// The SLA event `envelope` carries (a `TicketSla` event), about the ticket summarised by
    /// `ticket`. An error when the payload is not an SLA event this version knows.
    pub fn of(envelope: &EventEnvelope, ticket: TicketSummary) -> Result<SlaUpdate, String> {
        if envelope.aggregate_type != SLA_AGGREGATE || envelope.aggregate_id != ticket.id {
            return Err(format!(
                "{} {} is not an SLA event of ticket {}",
                envelope.aggregate_type, envelope.aggregate_id, ticket.id
            ));
        }
        let event = SlaEvent::deserialize(&envelope.payload).map_err(|e| e.to_string())?;
        Ok(SlaUpdate {
            cursor: 0,
            position: envelope.global_position,
            event_type: envelope.event_type.clone(),
            event,
            ticket,
        })
    }
}

/// The ticket as it stood just before global position `position`, from its updates (oldest
/// first): what an SLA event at `position` is routed by when the feed has not folded the
/// ticket itself.
pub fn summary_before(updates: &[Update], position: i64) -> Option<TicketSummary> {
    updates
        .iter()
        .rev()
        .find(|update| update.position < position)
        .map(|update| update.after.clone())
}

/// What the feed broadcasts to sessions, one per pushed stream message, in stream order.
#[derive(Debug, Clone)]
pub enum Push {
    /// A ticket event.
    Ticket(Update),
    /// An SLA event (staff only).
    Sla(SlaUpdate),
}

impl Push {
    /// Its place in the feed.
    pub fn cursor(&self) -> u64 {
        match self {
            Push::Ticket(update) => update.cursor,
            Push::Sla(sla) => sla.cursor,
        }
    }

    /// The push placed at `cursor`.
    pub fn at(mut self, cursor: u64) -> Push {
        match &mut self {
            Push::Ticket(update) => update.cursor = cursor,
            Push::Sla(sla) => sla.cursor = cursor,
        }
        self
    }
}

/// A queue: the tickets matching every given condition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueFilter {
    /// `me` (the caller), `none` (unassigned) or an agent id.
    pub assignee: Option<String>,
    /// A group, or `none` (no group).
    pub group: Option<String>,
    /// Any of these statuses.
    #[serde(default)]
    pub statuses: Vec<Status>,
    /// Any of these priorities.
    #[serde(default)]
    pub priorities: Vec<Priority>,
    /// All of these tags.
    #[serde(default)]
    pub tags: Vec<String>,
}

impl QueueFilter {
    /// Whether `ticket` is in the queue of `principal`.
    pub fn matches(&self, ticket: &TicketSummary, principal: &Principal) -> bool {
        let assignee_ok = match self.assignee.as_deref() {
            None => true,
            Some("none") => ticket.assignee.is_none(),
            Some("me") => ticket.assignee.as_deref() == Some(principal.id.as_str()),
            Some(id) => ticket.assignee.as_deref() == Some(id),
        };
        let group_ok = match self.group.as_deref() {
            None => true,
            Some("none") => ticket.group.is_none(),
            Some(group) => ticket.group.as_deref() == Some(group),
        };
        assignee_ok
            && group_ok
            && (self.statuses.is_empty() || self.statuses.contains(&ticket.status))
            && (self.priorities.is_empty() || self.priorities.contains(&ticket.priority))
            && self.tags.iter().all(|tag| ticket.tags.contains(tag))
    }
}

/// What a subscription follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One ticket.
    Ticket(String),
    /// A queue.
    Queue(QueueFilter),
}

impl Target {
    /// Whether `ticket` belongs to the target, as `principal` sees it under `scope`.
    pub fn includes(
        &self,
        ticket: &TicketSummary,
        principal: &Principal,
        scope: AgentScope,
    ) -> bool {
        access::can_see(principal, scope, ticket.facts())
            && match self {
                Target::Ticket(id) => ticket.id == *id,
                Target::Queue(filter) => filter.matches(ticket, principal),
            }
    }
}

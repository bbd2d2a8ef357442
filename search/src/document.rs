//! The search document: one per ticket, folded from the ticket's events (and, for its SLA
//! state, from the ticket's `TicketSla` events: see [`crate::sla`]).
//!
//! Both backends store the whole document (as `_source` in Elasticsearch, as a stored JSON
//! field in tantivy), so the projector can fold the next event onto the stored state without
//! another read model.

use chrono::{DateTime, Utc};
use helpdesk_domain::sla::engine::SlaClocks;
use helpdesk_domain::ticket::{Channel, Priority, Status, TicketEvent, Visibility};
use serde::{Deserialize, Serialize};

/// One ticket as search sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketDocument {
    /// The ticket id (UUID).
    pub id: String,
    pub subject: String,
    pub description: String,
    /// The bodies of public replies, in order, separated by blank lines.
    pub public_text: String,
    /// The bodies of internal notes: searchable by staff only.
    pub internal_text: String,
    pub status: Status,
    pub priority: Priority,
    pub channel: Channel,
    pub requester_id: String,
    pub requester_name: Option<String>,
    /// Lower-cased.
    pub requester_email: Option<String>,
    pub assignee: Option<String>,
    pub group: Option<String>,
    /// Sorted, without duplicates.
    pub tags: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the ticket last became solved; cleared when it is reopened.
    pub solved_at: Option<DateTime<Utc>>,
    /// Public replies and internal notes.
    pub reply_count: u64,
    /// Public replies only (what a customer may count).
    #[serde(default)]
    pub public_reply_count: u64,
    /// The sequence of the last applied `Ticket` event: the ticket's version.
    pub last_sequence: i64,
    /// The global position of the last applied `Ticket` event.
    pub last_position: i64,
    /// The global position of the ticket's first event: unique per ticket, never changes, and
    /// used as the sort tie-breaker.
    pub opened_position: i64,
    /// The sequence of the last applied `TicketSla` event: the SLA part's own version, apart
    /// from `last_sequence` (the two aggregates are numbered independently).
    #[serde(default)]
    pub sla_sequence: i64,
    /// The ticket's SLA clocks, folded from its `TicketSla` events alone (staff information:
    /// what `sla:` searches; see [`TicketDocument::sla_state`]).
    #[serde(default)]
    pub sla_clocks: SlaClocks,
}

/// An event with the envelope facts the document needs.
#[derive(Debug, Clone)]
pub struct Change {
    pub ticket_id: String,
    pub sequence: i64,
    pub global_position: i64,
    pub recorded_at: DateTime<Utc>,
    pub event: TicketEvent,
}

/// What folding one event onto a document did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Folded {
    /// The document changed (or was created).
    Changed(Box<TicketDocument>),
    /// The event was applied before: the document is unchanged.
    Duplicate,
    /// The document has not seen the event before this one yet.
    Gap { expected: i64, got: i64 },
    /// The event belongs to a ticket the index does not hold yet (an SLA event ahead of the
    /// ticket's first event): retry once the ticket is indexed.
    TicketNotIndexed,
}

impl TicketDocument {
    /// The version a write is ordered by: the number of events folded in, ticket and SLA
    /// events together. Each part only grows, so a later state of a ticket always has a
    /// higher version, and a backend keeps whichever write carries the highest.
    pub fn version(&self) -> i64 {
        self.last_sequence + self.sla_sequence
    }

    /// Roughly the memory the document holds: its own size and the text it owns (SLA clocks
    /// are counted by their inline size). What a replay adds up to bound what it holds.
    pub fn approximate_bytes(&self) -> usize {
        let optional = |text: &Option<String>| text.as_ref().map_or(0, String::capacity);
        std::mem::size_of::<TicketDocument>()
            + self.id.capacity()
            + self.subject.capacity()
            + self.description.capacity()
            + self.public_text.capacity()
            + self.internal_text.capacity()
            + self.requester_id.capacity()
            + optional(&self.requester_name)
            + optional(&self.requester_email)
            + optional(&self.assignee)
            + optional(&self.group)
            + self.tags.capacity() * std::mem::size_of::<String>()
            + self.tags.iter().map(String::capacity).sum::<usize>()
    }

    /// Folds `change` onto a copy of `current` (the stored document, `None` when there is none
    /// yet): [`TicketDocument::advance`] for a document that exists, and the one way to create
    /// one.
    pub fn fold(current: Option<&TicketDocument>, change: Change) -> Folded {
        if let Some(current) = current {
            let mut document = current.clone();
            return document
                .advance(change)
                .unwrap_or_else(|| Folded::Changed(Box::new(document)));
        }
        if let Some(out_of_line) = out_of_line(0, change.sequence) {
            return out_of_line;
        }
        match change.event {
            TicketEvent::TicketOpened(opened) => {
                let mut tags = opened.tags;
                tags.sort();
                tags.dedup();
                Folded::Changed(Box::new(TicketDocument {
                    id: change.ticket_id,
                    subject: opened.subject,
                    description: opened.description,
                    public_text: String::new(),
                    internal_text: String::new(),
                    status: Status::New,
                    priority: opened.priority,
                    channel: opened.channel,
                    requester_id: opened.requester.customer_id,
                    requester_name: opened.requester.name,
                    requester_email: opened.requester.email.map(|e| e.to_lowercase()),
                    assignee: None,
                    group: opened.group,
                    tags,
                    created_at: change.recorded_at,
                    updated_at: change.recorded_at,
                    solved_at: None,
                    reply_count: 0,
                    public_reply_count: 0,
                    last_sequence: change.sequence,
                    last_position: change.global_position,
                    opened_position: change.global_position,
                    sla_sequence: 0,
                    sla_clocks: SlaClocks::default(),
                }))
            }
            // Sequence 1 is always `TicketOpened`; anything else first is a store we cannot
            // read, reported as a gap that never closes (and so, eventually, dead-lettered).
            _ => Folded::Gap {
                expected: 1,
                got: change.sequence,
            },
        }
    }

    /// Folds `change` onto this document in place: `None` when it was folded in, else why
    /// not ([`Folded::Duplicate`] or [`Folded::Gap`]). What the projection and replays use, so
    /// they do not copy the document for every event.
    pub fn advance(&mut self, change: Change) -> Option<Folded> {
        if let Some(out_of_line) = out_of_line(self.last_sequence, change.sequence) {
            return Some(out_of_line);
        }
        self.apply(change.event, change.recorded_at);
        self.updated_at = change.recorded_at;
        self.last_sequence = change.sequence;
        self.last_position = change.global_position;
        None
    }

    fn apply(&mut self, event: TicketEvent, at: DateTime<Utc>) {
        match event {
            TicketEvent::TicketOpened(_) => {}
            TicketEvent::TicketStatusChanged(e) => {
                self.status = e.to;
                match e.to {
                    Status::Solved => self.solved_at = Some(at),
                    Status::Closed => {}
                    _ => self.solved_at = None,
                }
            }
            TicketEvent::TicketPriorityChanged(e) => self.priority = e.to,
            TicketEvent::TicketAssigned(e) => {
                self.assignee = e.assignee;
                self.group = e.group;
            }
            TicketEvent::TagsChanged(e) => {
                self.tags.retain(|tag| !e.removed.contains(tag));
                self.tags.extend(e.added);
                self.tags.sort();
                self.tags.dedup();
            }
            TicketEvent::ReplyAdded(e) => {
                let text = match e.visibility {
                    Visibility::Public => &mut self.public_text,
                    Visibility::Internal => &mut self.internal_text,
                };
                if !text.is_empty() {
                    text.push_str("\n\n");
                }
                text.push_str(&e.body);
                self.reply_count += 1;
                if e.visibility == Visibility::Public {
                    self.public_reply_count += 1;
                }
            }
        }
    }
}

/// Whether an event at `sequence` is out of line for a document whose last applied event is
/// at `last` (0: none): a [`Folded::Duplicate`] at or below it, a [`Folded::Gap`] beyond the
/// next; `None` when it is the next.
pub(crate) fn out_of_line(last: i64, sequence: i64) -> Option<Folded> {
    if sequence <= last {
        Some(Folded::Duplicate)
    } else if sequence != last + 1 {
        Some(Folded::Gap {
            expected: last + 1,
            got: sequence,
        })
    } else {
        None
    }
}

/// The rank of a status in the order `new < open < pending < on_hold < solved < closed` that
/// `status<solved` compares by.
pub fn status_rank(status: Status) -> u64 {
    match status {
        Status::New => 0,
        Status::Open => 1,
        Status::Pending => 2,
        Status::OnHold => 3,
        Status::Solved => 4,
        Status::Closed => 5,
    }
}

/// The rank of a priority in the order `low < normal < high < urgent`.
pub fn priority_rank(priority: Priority) -> u64 {
    match priority {
        Priority::Low => 0,
        Priority::Normal => 1,
        Priority::High => 2,
        Priority::Urgent => 3,
    }
}

/// The snake_case wire name of a vocabulary value (`on_hold`, `email`, …).
pub fn wire_name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

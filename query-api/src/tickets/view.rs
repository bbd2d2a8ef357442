//! `TicketView`: a ticket as a reader sees it, folded from its events.

use chrono::{DateTime, Utc};
use helpdesk_domain::ticket::{
    Attachment, Author, Channel, Priority, Requester, Status, TicketEvent, Visibility,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One reply or internal note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InteractionView {
    pub id: String,
    pub author: Author,
    pub visibility: Visibility,
    pub body: String,
    pub attachments: Vec<Attachment>,
    pub created_at: DateTime<Utc>,
}

/// A ticket with its conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TicketView {
    pub id: String,
    /// The ticket's version; also its `ETag`.
    pub version: u64,
    pub subject: String,
    pub description: String,
    pub status: Status,
    pub priority: Priority,
    pub channel: Channel,
    pub requester: Requester,
    pub assignee: Option<String>,
    pub group: Option<String>,
    /// Sorted.
    pub tags: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Oldest first. Internal notes only for staff and auditors.
    pub interactions: Vec<InteractionView>,
}

impl TicketView {
    /// Folds a ticket's events, oldest first, each with its sequence and recording time.
    /// `None` when the first event is not `TicketOpened`.
    pub fn fold(
        events: impl IntoIterator<Item = (u64, DateTime<Utc>, TicketEvent)>,
    ) -> Option<Self> {
        let mut events = events.into_iter();
        let (version, at, TicketEvent::TicketOpened(opened)) = events.next()? else {
            return None;
        };
        let mut view = TicketView {
            id: opened.ticket_id,
            version,
            subject: opened.subject,
            description: opened.description,
            status: Status::New,
            priority: opened.priority,
            channel: opened.channel,
            requester: opened.requester,
            assignee: None,
            group: opened.group,
            tags: opened.tags,
            created_at: at,
            updated_at: at,
            interactions: Vec::new(),
        };
        for (sequence, at, event) in events {
            view.apply(sequence, at, event);
        }
        view.tags.sort();
        Some(view)
    }

    fn apply(&mut self, sequence: u64, at: DateTime<Utc>, event: TicketEvent) {
        self.version = sequence;
        self.updated_at = at;
        match event {
            TicketEvent::TicketOpened(_) => {}
            TicketEvent::TicketStatusChanged(e) => self.status = e.to,
            TicketEvent::TicketPriorityChanged(e) => self.priority = e.to,
            TicketEvent::TicketAssigned(e) => {
                self.assignee = e.assignee;
                self.group = e.group;
            }
            TicketEvent::TagsChanged(e) => {
                self.tags.retain(|tag| !e.removed.contains(tag));
                self.tags.extend(e.added);
            }
            TicketEvent::ReplyAdded(e) => self.interactions.push(InteractionView {
                id: e.interaction_id,
                author: e.author,
                visibility: e.visibility,
                body: e.body,
                attachments: e.attachments,
                created_at: at,
            }),
        }
    }

    /// Removes internal notes (for readers who may not see them).
    pub fn without_internal_notes(mut self) -> Self {
        self.interactions
            .retain(|interaction| interaction.visibility == Visibility::Public);
        self
    }
}

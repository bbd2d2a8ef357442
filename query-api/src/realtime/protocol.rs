//! The messages of the real-time feed, as JSON text frames (WebSocket) or SSE `data`.

use helpdesk_domain::sla::SlaEvent;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::presence::{PresenceState, Viewer};
use super::summary::{EncodedSummary, QueueFilter, TicketSummary};

/// What a WebSocket client sends.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Follow one ticket (`ticket`) or a queue (`queue`), under a name of the client's choice.
    /// With `since` (the `cursor` of the last message the client handled), every matching
    /// `update`, `left` and `sla` after it is sent first, then live ones.
    Subscribe {
        id: String,
        ticket: Option<String>,
        queue: Option<QueueFilter>,
        since: Option<u64>,
    },
    /// Stop following subscription `id`.
    Unsubscribe { id: String },
    /// Tell the ticket's other viewers what you are doing (staff only); `idle` withdraws.
    Presence {
        ticket: String,
        state: PresenceState,
    },
}

/// What the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The subscription is live: messages after `cursor` follow (earlier ones were replayed,
    /// when `since` was given).
    Subscribed { id: String, cursor: u64 },
    /// An event touched these subscriptions; `ticket` is the summary after it. `cursor` is the
    /// event's place in the feed (resume with it); `position` its global position.
    Update {
        cursor: u64,
        position: i64,
        event_type: String,
        subscriptions: Vec<String>,
        #[schema(value_type = TicketSummary)]
        ticket: EncodedSummary,
    },
    /// The ticket no longer matches these subscriptions (or is no longer yours to see).
    Left {
        cursor: u64,
        position: i64,
        ticket_id: String,
        subscriptions: Vec<String>,
    },
    /// An SLA measurement of the ticket changed: a target applied, its clock paused, resumed
    /// or retargeted, the measurement fulfilled, breached or withdrawn. Sent to staff and
    /// auditors, never to customers, for every subscription that would receive an update of
    /// the ticket now (the ticket's own, and the queues it is in); the ticket itself did not
    /// change. `cursor` and `position` as for `update`.
    Sla {
        cursor: u64,
        position: i64,
        /// The stored event type: `SlaMetricActivated`, `SlaMetricPaused`,
        /// `SlaMetricResumed`, `SlaMetricRetargeted`, `SlaMetricFulfilled`, `SlaBreached` or
        /// `SlaMetricWithdrawn`.
        event_type: String,
        subscriptions: Vec<String>,
        ticket_id: String,
        /// The SLA event (its `type` is `activated`, `paused`, … `withdrawn`): `metric`,
        /// `activation`, `at`, and `due_at`, `policy`, `target_minutes` or
        /// `business_minutes` as the type has them.
        sla: Box<SlaEvent>,
    },
    /// Who is on the ticket now.
    Presence {
        ticket: String,
        viewers: Vec<Viewer>,
    },
    /// Updates were lost to this connection (too far behind to replay, or too slow a reader):
    /// read the current state again and subscribe without `since`. The server closes the
    /// connection after sending it when the cause is a slow reader.
    Resync {
        /// The subscription that could not be resumed; absent when the whole connection lost
        /// updates.
        id: Option<String>,
        reason: String,
    },
    /// A message could not be handled; the connection stays open.
    Error {
        /// The subscription the error is about, if any.
        id: Option<String>,
        detail: String,
    },
}

impl ServerMessage {
    /// The SSE event name and id (the cursor, for updates, departures and SLA events).
    pub fn sse_name(&self) -> (&'static str, Option<u64>) {
        match self {
            ServerMessage::Subscribed { .. } => ("subscribed", None),
            ServerMessage::Update { cursor, .. } => ("update", Some(*cursor)),
            ServerMessage::Left { cursor, .. } => ("left", Some(*cursor)),
            ServerMessage::Sla { cursor, .. } => ("sla", Some(*cursor)),
            ServerMessage::Presence { .. } => ("presence", None),
            ServerMessage::Resync { .. } => ("resync", None),
            ServerMessage::Error { .. } => ("error", None),
        }
    }

    /// Text of the message (it always serializes).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{\"type\":\"error\"}"))
    }
}

//! The wire envelope of every event on the JetStream stream: a public contract.
//!
//! An outside program subscribing to `<prefix>.events.>` receives one JSON object per event, in
//! this shape. `payload` is the event itself (the object described by
//! `schemas/events/<event_type>.v<event_version>.json`); `metadata` says who, when and why.
//! Messages carry `Nats-Msg-Id: <aggregate_type>:<aggregate_id>:<sequence>`, so a republished
//! event is dropped by the stream's duplicate window, and consumers can deduplicate on
//! `(aggregate_type, aggregate_id, sequence)` beyond it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One stored event, as published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EventEnvelope {
    /// Unique id of the event (UUID).
    pub event_id: String,
    /// Position in the store's total order. Gaps are normal; positions are not commit order.
    pub global_position: i64,
    /// `Ticket`, …
    pub aggregate_type: String,
    /// The ticket id, …
    pub aggregate_id: String,
    /// 1, 2, 3, … per aggregate, without gaps: the aggregate's version after this event.
    pub sequence: i64,
    /// Stable event name, e.g. `TicketOpened`.
    pub event_type: String,
    /// Version of the payload's shape.
    pub event_version: String,
    /// When the store recorded the event.
    pub recorded_at: DateTime<Utc>,
    /// actor_id, actor_role, occurred_at, correlation_id, causation_id, request_id, command.
    pub metadata: BTreeMap<String, String>,
    /// The event's fields.
    pub payload: serde_json::Value,
    /// The event's link in its aggregate's hash chain, lower-case hex:
    /// `SHA-256(previous event's hash ‖ canonical text of this event)` (docs/audit-hash-chain.md).
    /// Absent in envelopes published before the chain existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
}

impl EventEnvelope {
    /// The deterministic JetStream message id of the event.
    pub fn message_id(&self) -> String {
        format!(
            "{}:{}:{}",
            self.aggregate_type, self.aggregate_id, self.sequence
        )
    }

    /// The payload as a (current-version) ticket event, when it is one this code knows.
    pub fn ticket_event(&self) -> Result<helpdesk_domain::ticket::TicketEvent, serde_json::Error> {
        // Stored and typed events are externally tagged by their name; older versions are
        // upcast to the current shape first.
        let tagged = serde_json::json!({ self.event_type.as_str(): self.payload });
        let current =
            helpdesk_domain::ticket::upcast::upcast(&self.event_type, &self.event_version, tagged);
        serde_json::from_value(current)
    }

    /// The subject the event is published on: `<prefix>.events.<aggregate_type>.<aggregate_id>`.
    pub fn subject(&self, prefix: &str) -> String {
        format!(
            "{}.{}.{}",
            events_subject_root(prefix),
            subject_token(&self.aggregate_type),
            subject_token(&self.aggregate_id)
        )
    }
}

/// `<prefix>.events`: every event subject starts with it.
pub fn events_subject_root(prefix: &str) -> String {
    format!("{prefix}.events")
}

/// The stream holding every event: `<PREFIX>_EVENTS`, upper-cased.
pub fn events_stream_name(prefix: &str) -> String {
    format!("{}_EVENTS", prefix.to_uppercase())
}

/// A subject token may not contain `.`, `*`, `>` or whitespace; such characters become `_`.
/// (Ticket ids are UUIDs and never need it.)
fn subject_token(raw: &str) -> String {
    raw.chars()
        .map(|c| {
            if c == '.' || c == '*' || c == '>' || c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// The JSON Schema of the envelope.
pub fn envelope_schema() -> serde_json::Value {
    let mut value = schemars::schema_for!(EventEnvelope).to_value();
    if let Some(object) = value.as_object_mut() {
        object.insert("$id".into(), "helpdesk:event-envelope:v1".into());
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_prefix() {
        assert_eq!(events_stream_name("helpdesk"), "HELPDESK_EVENTS");
        let envelope = EventEnvelope {
            event_id: "e".into(),
            global_position: 7,
            aggregate_type: "Ticket".into(),
            aggregate_id: "a.b c".into(),
            sequence: 3,
            event_type: "TicketOpened".into(),
            event_version: "1".into(),
            recorded_at: DateTime::<Utc>::UNIX_EPOCH,
            metadata: BTreeMap::new(),
            payload: serde_json::Value::Null,
            hash: None,
        };
        assert_eq!(envelope.subject("hd"), "hd.events.Ticket.a_b_c");
        assert_eq!(envelope.message_id(), "Ticket:a.b c:3");
    }

    #[test]
    fn an_envelope_published_before_the_hash_chain_still_reads() {
        let older = serde_json::json!({
            "event_id": "e", "global_position": 1, "aggregate_type": "Ticket",
            "aggregate_id": "t", "sequence": 1, "event_type": "TicketOpened",
            "event_version": "1", "recorded_at": "2026-01-01T00:00:00Z",
            "metadata": {}, "payload": {}
        });
        let envelope: EventEnvelope = serde_json::from_value(older).unwrap();
        assert_eq!(envelope.hash, None);
    }
}

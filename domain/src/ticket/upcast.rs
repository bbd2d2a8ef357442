//! Reading old event versions as the current one.
//!
//! A stored event is never rewritten. When an event's shape changes, its version goes up and
//! a pure function here turns a stored payload of the older version into the current shape.
//! Every reader applies it: the aggregate (through cqrs-es upcasters), ticket reads, history
//! and projections.
//!
//! | event | from | to | change |
//! |-------|------|----|--------|
//! | `ReplyAdded` | 1 | 2 | `attachments: []` added (v1 had none) |

use cqrs_es::persist::{EventUpcaster, SemanticVersionEventUpcaster};
use serde_json::Value;

use super::TicketEvent;

/// Brings a stored payload (tagged with its event name, `{"ReplyAdded": {…}}`, as cqrs-es
/// stores it) of `event_type` at `event_version` up to the current version.
pub fn upcast(event_type: &str, event_version: &str, payload: Value) -> Value {
    match upcaster(event_type, event_version) {
        Some(upcast) => upcast(payload),
        None => payload,
    }
}

/// Reads a stored payload, as the text cqrs-es stored (tagged with its event name), as the
/// current [`TicketEvent`]. A payload already at the current version is parsed straight into
/// the event, without the intermediate [`Value`] that upcasting needs (what replays read
/// millions of times).
pub fn read(
    event_type: &str,
    event_version: &str,
    stored: &str,
) -> serde_json::Result<TicketEvent> {
    match upcaster(event_type, event_version) {
        Some(upcast) => serde_json::from_value(upcast(serde_json::from_str(stored)?)),
        None => serde_json::from_str(stored),
    }
}

/// The function that brings `event_type` at `event_version` to the current shape, if it is
/// not there already.
fn upcaster(event_type: &str, event_version: &str) -> Option<fn(Value) -> Value> {
    match (event_type, major(event_version)) {
        ("ReplyAdded", Some(1)) => Some(reply_added_v1_to_v2),
        _ => None,
    }
}

/// The cqrs-es upcasters, for the event store the aggregate loads through.
pub fn upcasters() -> Vec<Box<dyn EventUpcaster>> {
    vec![Box::new(SemanticVersionEventUpcaster::new(
        "ReplyAdded",
        "2",
        Box::new(reply_added_v1_to_v2),
    ))]
}

fn major(version: &str) -> Option<u32> {
    version.split('.').next()?.parse().ok()
}

fn reply_added_v1_to_v2(mut payload: Value) -> Value {
    if let Some(fields) = payload.get_mut("ReplyAdded").and_then(Value::as_object_mut) {
        fields
            .entry("attachments")
            .or_insert_with(|| Value::Array(Vec::new()));
    }
    payload
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v1_reply() -> Value {
        json!({"ReplyAdded": {
            "interaction_id": "i-1",
            "author": {"id": "agent-1", "kind": "agent"},
            "visibility": "public",
            "body": "hello"
        }})
    }

    #[test]
    fn a_version_1_reply_is_not_readable_without_upcasting() {
        assert!(serde_json::from_value::<TicketEvent>(v1_reply()).is_err());
    }

    #[test]
    fn a_version_1_reply_reads_as_version_2_without_attachments() {
        let event: TicketEvent =
            serde_json::from_value(upcast("ReplyAdded", "1", v1_reply())).unwrap();
        let TicketEvent::ReplyAdded(reply) = event else {
            panic!("expected ReplyAdded")
        };
        assert!(reply.attachments.is_empty());
        assert_eq!(reply.body, "hello");
    }

    #[test]
    fn stored_text_reads_as_the_upcast_value_does() {
        let v1 = v1_reply().to_string();
        let from_text = read("ReplyAdded", "1", &v1).unwrap();
        let from_value: TicketEvent =
            serde_json::from_value(upcast("ReplyAdded", "1", v1_reply())).unwrap();
        assert_eq!(from_text, from_value);
        let v2 = upcast("ReplyAdded", "1", v1_reply()).to_string();
        assert_eq!(read("ReplyAdded", "2", &v2).unwrap(), from_value);
        // A version 1 payload that claims to be version 2 is not silently accepted.
        assert!(read("ReplyAdded", "2", &v1).is_err());
    }

    #[test]
    fn current_versions_pass_through_unchanged() {
        let v2 = upcast("ReplyAdded", "1", v1_reply());
        assert_eq!(upcast("ReplyAdded", "2", v2.clone()), v2);
        assert_eq!(upcast("ReplyAdded", "2.0.0", v2.clone()), v2);
    }
}

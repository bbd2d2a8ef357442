//! Writing and reading documents: the indexed source, the `_bulk` body and outcome, the
//! `_mget` body and response.
//!
//! Pure: request bodies and response parsers, no HTTP.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::backend::BackendError;
use crate::document::{TicketDocument, priority_rank, status_rank, wire_name};

use super::{error_reason, error_type};

/// What Elasticsearch stores for a document: its JSON plus the keys searches sort and filter
/// on (microseconds since the epoch, the status and priority ranks, and the SLA state).
///
/// Reading `_source` back into a [`TicketDocument`] ignores the derived fields.
pub(crate) fn indexed_source(document: &TicketDocument) -> Result<Value, BackendError> {
    let mut source = serde_json::to_value(document).map_err(|e| {
        BackendError::Rejected(format!("document {} does not serialise: {e}", document.id))
    })?;
    let Some(fields) = source.as_object_mut() else {
        return Err(BackendError::Rejected(format!(
            "document {} does not serialise to an object",
            document.id
        )));
    };
    fields.insert(
        "created_us".into(),
        document.created_at.timestamp_micros().into(),
    );
    fields.insert(
        "updated_us".into(),
        document.updated_at.timestamp_micros().into(),
    );
    fields.insert(
        "solved_us".into(),
        document.solved_at.map(|at| at.timestamp_micros()).into(),
    );
    fields.insert("status_rank".into(), status_rank(document.status).into());
    fields.insert(
        "priority_rank".into(),
        priority_rank(document.priority).into(),
    );
    fields.insert(
        "sla".into(),
        document.sla_state().as_ref().map(wire_name).into(),
    );
    Ok(source)
}

/// The `_bulk` body, one JSON text per line: for each document an `index` action carrying its
/// id and [`TicketDocument::version`] (ticket and SLA events folded in) as an external
/// version, then its source.
///
/// External versioning stores a document only if its version is strictly higher than the
/// stored one, so a replayed or out-of-order write is refused (409) instead of moving the
/// document backwards.
pub(crate) fn bulk_lines(documents: &[TicketDocument]) -> Result<Vec<String>, BackendError> {
    let mut lines = Vec::with_capacity(documents.len() * 2);
    for document in documents {
        let action = json!({
            "index": {
                "_id": document.id,
                "version": document.version(),
                "version_type": "external",
            }
        });
        lines.push(action.to_string());
        lines.push(indexed_source(document)?.to_string());
    }
    Ok(lines)
}

/// Reads a `_bulk` response (HTTP 200 even when items failed) item by item.
///
/// A 409 item is a version conflict: the stored document is already at this version or newer,
/// which is what a redelivery looks like, so it counts as done. 429 and 5xx items make the
/// whole write [`BackendError::Unavailable`] (the caller retries the batch; the items that did
/// succeed then come back as 409s). Any other failed item is [`BackendError::Rejected`], but
/// only when nothing in the batch was retryable: retrying first lets the transient failures
/// through before the batch is given up.
pub(crate) fn bulk_outcome(response: &Value) -> Result<(), BackendError> {
    let items = response
        .get("items")
        .and_then(Value::as_array)
        .ok_or_else(|| BackendError::Rejected(format!("unexpected bulk response: {response}")))?;
    if response.get("errors") == Some(&Value::Bool(false)) {
        return Ok(());
    }
    let mut retryable = Vec::new();
    let mut refused = Vec::new();
    for item in items {
        // Each item is `{ "<action>": { "_id": …, "status": …, "error": … } }`.
        let Some(result) = item.as_object().and_then(|item| item.values().next()) else {
            return Err(BackendError::Rejected(format!(
                "unexpected bulk item: {item}"
            )));
        };
        let status = result.get("status").and_then(Value::as_u64).unwrap_or(0);
        if (200..300).contains(&status) || status == 409 {
            continue;
        }
        let id = result.get("_id").and_then(Value::as_str).unwrap_or("?");
        let error = result.get("error").cloned().unwrap_or(Value::Null);
        let kind = error_type(&error).unwrap_or("error");
        let failure = format!("document {id}: {status} {kind}: {}", error_reason(&error));
        if status == 429 || status >= 500 || kind == "index_not_found_exception" {
            retryable.push(failure);
        } else {
            refused.push(failure);
        }
    }
    if !retryable.is_empty() {
        return Err(BackendError::Unavailable(summary(&retryable)));
    }
    if !refused.is_empty() {
        return Err(BackendError::Rejected(summary(&refused)));
    }
    Ok(())
}

/// The first few failures of a batch, and how many there were.
fn summary(failures: &[String]) -> String {
    const SHOWN: usize = 3;
    let mut text = failures[..failures.len().min(SHOWN)].join("; ");
    if failures.len() > SHOWN {
        text.push_str(&format!(" (and {} more)", failures.len() - SHOWN));
    }
    text
}

/// The `_mget` body for these ids.
pub(crate) fn mget_body(ids: &[String]) -> Value {
    json!({ "ids": ids })
}

/// Reads an `_mget` response: the found documents by id; ids not found are left out.
pub(crate) fn parse_mget(
    response: &Value,
) -> Result<HashMap<String, TicketDocument>, BackendError> {
    let docs = response
        .get("docs")
        .and_then(Value::as_array)
        .ok_or_else(|| BackendError::Rejected(format!("unexpected mget response: {response}")))?;
    let mut found = HashMap::with_capacity(docs.len());
    for doc in docs {
        let id = doc.get("_id").and_then(Value::as_str).unwrap_or("?");
        if let Some(error) = doc.get("error") {
            // A per-document failure: typically a shard that is not available right now.
            return Err(BackendError::Unavailable(format!(
                "reading document {id}: {}",
                error_reason(error)
            )));
        }
        if doc.get("found").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        let source = doc.get("_source").cloned().unwrap_or(Value::Null);
        let document: TicketDocument = serde_json::from_value(source).map_err(|e| {
            BackendError::Rejected(format!("stored document {id} does not parse: {e}"))
        })?;
        found.insert(document.id.clone(), document);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::super::fixtures::{sample_document, with_breached_sla};
    use super::super::layout::mapping;
    use super::*;

    #[test]
    fn the_mapping_covers_every_indexed_field_and_nothing_else() {
        let mapping = mapping().unwrap();
        assert_eq!(mapping["dynamic"], "strict");
        let properties = mapping["properties"].as_object().unwrap();
        // A document with every optional field set, and one with none of them.
        let mut full = with_breached_sla(sample_document("t-1"));
        full.solved_at = Some(full.updated_at);
        let mut bare = sample_document("t-2");
        bare.requester_name = None;
        bare.requester_email = None;
        bare.assignee = None;
        bare.group = None;
        bare.tags.clear();
        for document in [&full, &bare] {
            let source = indexed_source(document).unwrap();
            let keys: BTreeSet<&str> = source
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            let mapped: BTreeSet<&str> = properties.keys().map(String::as_str).collect();
            assert_eq!(keys, mapped, "indexed fields and mapped fields differ");
            for (key, value) in source.as_object().unwrap() {
                // Nothing nested that `dynamic: strict` would have to map: an object only
                // where the mapping keeps it in `_source` without indexing it.
                let unindexed = properties[key]["enabled"] == false;
                assert!(!value.is_object() || unindexed, "{key} is an object");
            }
        }
        assert_eq!(properties["requester_email"]["type"], "keyword");
        assert_eq!(
            properties["requester_email"]["fields"]["text"]["type"],
            "text"
        );
        for text in [
            "subject",
            "description",
            "public_text",
            "internal_text",
            "requester_name",
        ] {
            assert_eq!(properties[text]["type"], "text", "{text}");
        }
        for keyword in [
            "id",
            "status",
            "priority",
            "channel",
            "requester_id",
            "assignee",
            "group",
            "tags",
            "sla",
        ] {
            assert_eq!(properties[keyword]["type"], "keyword", "{keyword}");
        }
        assert_eq!(
            properties["sla_clocks"],
            json!({ "type": "object", "enabled": false })
        );
        for long in [
            "created_us",
            "updated_us",
            "solved_us",
            "status_rank",
            "priority_rank",
            "reply_count",
            "public_reply_count",
            "last_sequence",
            "last_position",
            "opened_position",
            "sla_sequence",
        ] {
            assert_eq!(properties[long]["type"], "long", "{long}");
        }
        for date in ["created_at", "updated_at", "solved_at"] {
            assert_eq!(properties[date]["type"], "date", "{date}");
        }
    }

    #[test]
    fn the_source_carries_the_derived_keys() {
        let mut document = sample_document("t-1");
        let source = indexed_source(&document).unwrap();
        assert_eq!(source["created_us"], document.created_at.timestamp_micros());
        assert_eq!(source["updated_us"], document.updated_at.timestamp_micros());
        assert_eq!(source["solved_us"], Value::Null);
        assert_eq!(source["status_rank"], 1); // open
        assert_eq!(source["priority_rank"], 2); // high
        assert_eq!(source["status"], "open");
        document.solved_at = Some(document.updated_at);
        let source = indexed_source(&document).unwrap();
        assert_eq!(source["solved_us"], document.updated_at.timestamp_micros());
        assert_eq!(source["sla"], Value::Null);
        // Reading it back ignores the derived fields.
        let back: TicketDocument = serde_json::from_value(source).unwrap();
        assert_eq!(back, document);

        let breached = with_breached_sla(document);
        let source = indexed_source(&breached).unwrap();
        assert_eq!(source["sla"], "breached");
        assert_eq!(source["sla_sequence"], 2);
        assert!(source["sla_clocks"]["first_reply"].is_object());
        let back: TicketDocument = serde_json::from_value(source).unwrap();
        assert_eq!(back, breached);
    }

    #[test]
    fn bulk_lines_pair_a_versioned_action_with_the_source() {
        let first = sample_document("t-1");
        let mut second = sample_document("t-2");
        second.last_sequence = 9;
        let lines = bulk_lines(&[first.clone(), second]).unwrap();
        assert_eq!(lines.len(), 4);
        for line in &lines {
            assert!(!line.contains('\n'), "a line break inside an NDJSON line");
        }
        let action: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(
            action,
            json!({ "index": { "_id": "t-1", "version": 4, "version_type": "external" } })
        );
        let source: Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(source, indexed_source(&first).unwrap());
        let action: Value = serde_json::from_str(&lines[2]).unwrap();
        assert_eq!(action["index"]["_id"], "t-2");
        assert_eq!(action["index"]["version"], 9);
        assert!(bulk_lines(&[]).unwrap().is_empty());
    }

    #[test]
    fn the_external_version_counts_sla_events_too() {
        // Ticket version 4 plus two SLA events: a state after 6 events, above the 4 stored
        // before the SLA events arrived, so Elasticsearch takes it.
        let document = with_breached_sla(sample_document("t-1"));
        let lines = bulk_lines(&[document]).unwrap();
        let action: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(action["index"]["version"], 6);
    }

    fn ok_item(id: &str, status: u64) -> Value {
        json!({ "index": {
            "_index": "hd_tickets_v1", "_id": id, "_version": 4,
            "result": if status == 201 { "created" } else { "updated" },
            "_shards": { "total": 2, "successful": 1, "failed": 0 },
            "_seq_no": 7, "_primary_term": 1, "status": status
        }})
    }

    #[test]
    fn bulk_all_ok() {
        let response = json!({
            "errors": false, "took": 12,
            "items": [ok_item("t-1", 201), ok_item("t-2", 200)]
        });
        assert_eq!(bulk_outcome(&response), Ok(()));
    }

    #[test]
    fn bulk_version_conflict_counts_as_done() {
        let response = json!({
            "errors": true, "took": 3,
            "items": [
                ok_item("t-1", 201),
                { "index": {
                    "_index": "hd_tickets_v1", "_id": "t-2", "status": 409,
                    "error": {
                        "type": "version_conflict_engine_exception",
                        "reason": "[t-2]: version conflict, current version [7] is higher or equal to the one provided [5]",
                        "index_uuid": "Kq3vY0pTQ1GmDkqW3nV3xA", "shard": "0", "index": "hd_tickets_v1"
                    }
                }}
            ]
        });
        assert_eq!(bulk_outcome(&response), Ok(()));
    }

    #[test]
    fn bulk_partial_failure_is_rejected_naming_the_document() {
        let response = json!({
            "errors": true, "took": 5,
            "items": [
                ok_item("t-1", 201),
                { "index": {
                    "_index": "hd_tickets_v1", "_id": "t-3", "status": 400,
                    "error": {
                        "type": "mapper_parsing_exception",
                        "reason": "failed to parse field [created_at] of type [date] in document with id 't-3'",
                        "caused_by": { "type": "illegal_argument_exception", "reason": "failed to parse date field [yesterday]" }
                    }
                }}
            ]
        });
        let Err(BackendError::Rejected(message)) = bulk_outcome(&response) else {
            panic!("not rejected");
        };
        assert!(message.contains("t-3"), "{message}");
        assert!(message.contains("mapper_parsing_exception"), "{message}");
        assert!(message.contains("created_at"), "{message}");
    }

    #[test]
    fn bulk_overload_is_unavailable_even_beside_a_refusal() {
        let throttled = json!({ "index": {
            "_index": "hd_tickets_v1", "_id": "t-4", "status": 429,
            "error": {
                "type": "es_rejected_execution_exception",
                "reason": "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, coordinating_operation_bytes=1024, max_coordinating_and_primary_bytes=0]"
            }
        }});
        let refused = json!({ "index": {
            "_index": "hd_tickets_v1", "_id": "t-5", "status": 400,
            "error": {
                "type": "strict_dynamic_mapping_exception",
                "reason": "[1:2] mapping set to strict, dynamic introduction of [extra] within [_doc] is not allowed"
            }
        }});
        let response = json!({ "errors": true, "took": 1, "items": [throttled.clone()] });
        let Err(BackendError::Unavailable(message)) = bulk_outcome(&response) else {
            panic!("not unavailable");
        };
        assert!(message.contains("t-4"), "{message}");
        let response = json!({ "errors": true, "took": 1, "items": [refused, throttled] });
        assert!(matches!(
            bulk_outcome(&response),
            Err(BackendError::Unavailable(_))
        ));
        let server_error = json!({ "errors": true, "items": [{ "index": {
            "_id": "t-6", "status": 503,
            "error": { "type": "unavailable_shards_exception", "reason": "primary shard is not active" }
        }}]});
        assert!(matches!(
            bulk_outcome(&server_error),
            Err(BackendError::Unavailable(_))
        ));
    }

    #[test]
    fn bulk_response_without_items_is_rejected() {
        assert!(matches!(
            bulk_outcome(&json!({ "took": 1 })),
            Err(BackendError::Rejected(_))
        ));
    }

    #[test]
    fn many_failures_are_summarised() {
        let items: Vec<Value> = (0..5)
            .map(|n| {
                json!({ "index": {
                    "_id": format!("t-{n}"), "status": 400,
                    "error": { "type": "mapper_parsing_exception", "reason": "bad" }
                }})
            })
            .collect();
        let Err(BackendError::Rejected(message)) =
            bulk_outcome(&json!({ "errors": true, "items": items }))
        else {
            panic!("not rejected");
        };
        assert!(
            message.contains("t-0") && message.contains("t-2"),
            "{message}"
        );
        assert!(!message.contains("t-3"), "{message}");
        assert!(message.contains("and 2 more"), "{message}");
    }

    #[test]
    fn mget_keeps_found_documents() {
        let document = sample_document("t-1");
        let source = indexed_source(&document).unwrap();
        assert_eq!(
            mget_body(&["t-1".into(), "t-9".into()]),
            json!({ "ids": ["t-1", "t-9"] })
        );
        let response = json!({ "docs": [
            { "_index": "hd_tickets_v1", "_id": "t-1", "_version": 4, "_seq_no": 11,
              "_primary_term": 1, "found": true, "_source": source },
            { "_index": "hd_tickets_v1", "_id": "t-9", "found": false }
        ]});
        let found = parse_mget(&response).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found["t-1"], document);
    }

    #[test]
    fn mget_document_errors_are_unavailable() {
        let response = json!({ "docs": [
            { "_index": "hd_tickets_v1", "_id": "t-1",
              "error": { "type": "no_shard_available_action_exception", "reason": "No shard available for [get [hd_tickets_v1][t-1]]" } }
        ]});
        assert!(matches!(
            parse_mget(&response),
            Err(BackendError::Unavailable(_))
        ));
        let garbled = json!({ "docs": [
            { "_index": "hd_tickets_v1", "_id": "t-1", "found": true, "_source": { "id": "t-1" } }
        ]});
        assert!(matches!(
            parse_mget(&garbled),
            Err(BackendError::Rejected(_))
        ));
    }
}

//! The committed event schemas are exactly what the domain types generate.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::PathBuf;

use helpdesk_schemas::{UPDATE_SNAPSHOTS, event_schemas};

fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("events")
}

#[test]
fn every_current_event_version_has_an_up_to_date_committed_schema() {
    let update = std::env::var(UPDATE_SNAPSHOTS).is_ok_and(|v| v == "1");
    let mut stale = Vec::new();
    for generated in event_schemas() {
        let path = events_dir().join(generated.file_name());
        let mut expected = serde_json::to_string_pretty(&generated.schema).unwrap();
        expected.push('\n');
        if update {
            std::fs::write(&path, &expected).unwrap();
            continue;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed != expected {
            stale.push(generated.file_name());
        }
    }
    assert!(
        stale.is_empty(),
        "stale or missing event schemas {stale:?}: a stored event must never change shape. If \
         this is a new event or version, regenerate with {UPDATE_SNAPSHOTS}=1 cargo test -p \
         helpdesk-schemas"
    );
}

#[test]
fn every_schema_requires_the_fields_the_domain_always_writes() {
    let opened = event_schemas()
        .into_iter()
        .find(|s| s.event_type == "TicketOpened")
        .unwrap();
    let required = opened.schema["required"].as_array().unwrap();
    for field in ["ticket_id", "subject", "priority", "channel", "requester"] {
        assert!(
            required.iter().any(|r| r == field),
            "TicketOpened must require {field}"
        );
    }
}

#[test]
fn the_committed_envelope_schema_is_up_to_date() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("envelope.json");
    let mut expected = serde_json::to_string_pretty(&helpdesk_schemas::envelope_schema()).unwrap();
    expected.push('\n');
    if std::env::var(UPDATE_SNAPSHOTS).is_ok_and(|v| v == "1") {
        std::fs::write(&path, &expected).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == expected,
        "schemas/envelope.json is stale: the envelope is a public contract; regenerate with \
         {UPDATE_SNAPSHOTS}=1 cargo test -p helpdesk-schemas if the change is intended"
    );
}

#[test]
fn schemas_of_older_event_versions_stay_published() {
    // Stored events keep their shape forever; consumers of the stream may still meet them.
    let frozen = "ReplyAdded.v1.json";
    let text = std::fs::read_to_string(events_dir().join(frozen)).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(schema["properties"].is_object(), "{frozen} is a schema");
    assert!(schema["properties"].get("attachments").is_none());
}

#[test]
fn each_sla_event_type_has_the_schema_of_its_own_variant() {
    let schemas = event_schemas();
    let find = |name: &str| {
        schemas
            .iter()
            .find(|s| s.event_type == name)
            .unwrap_or_else(|| panic!("no schema for {name}"))
            .schema
            .clone()
    };
    let breached = find("SlaBreached");
    assert_eq!(breached["properties"]["type"]["const"], "breached");
    let required = breached["required"].as_array().unwrap();
    for field in ["type", "metric", "activation", "at"] {
        assert!(
            required.iter().any(|r| r == field),
            "SlaBreached requires {field}"
        );
    }
    let activated = find("SlaMetricActivated");
    assert_eq!(activated["properties"]["type"]["const"], "activated");
    for field in ["policy", "due_at", "started_at", "target_minutes"] {
        assert!(
            activated["required"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r == field),
            "SlaMetricActivated requires {field}"
        );
    }
    assert!(find("SlaPolicyCreated")["properties"]["definition"].is_object());
}

//! `schemas/openapi.json` is exactly the document the API serves.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::PathBuf;

#[test]
fn the_committed_openapi_document_is_up_to_date() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schemas/openapi.json");
    let generated = helpdesk::openapi_json().unwrap();
    if std::env::var("HELPDESK_UPDATE_SNAPSHOTS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "schemas/openapi.json is stale; regenerate it with \
         HELPDESK_UPDATE_SNAPSHOTS=1 cargo test -p helpdesk --test openapi_snapshot"
    );
}

#[test]
fn every_command_endpoint_is_in_the_document() {
    let api: serde_json::Value = serde_json::from_str(&helpdesk::openapi_json().unwrap()).unwrap();
    let paths = api["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/v1/tickets", "post"),
        ("/api/v1/tickets/{id}/status", "put"),
        ("/api/v1/tickets/{id}/priority", "put"),
        ("/api/v1/tickets/{id}/assign", "put"),
        ("/api/v1/tickets/{id}/tags", "put"),
        ("/api/v1/tickets/{id}/interactions", "post"),
        ("/healthz", "get"),
        ("/readyz", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is missing from the OpenAPI document"
        );
    }
}

#[test]
fn every_api_operation_documents_the_overload_answer() {
    let api: serde_json::Value = serde_json::from_str(&helpdesk::openapi_json().unwrap()).unwrap();
    let paths = api["paths"].as_object().unwrap();
    let mut checked = 0;
    for (path, item) in paths.iter().filter(|(path, _)| path.starts_with("/api/")) {
        for (method, operation) in item.as_object().unwrap() {
            let busy = &operation["responses"]["503"];
            assert!(
                busy["description"]
                    .as_str()
                    .is_some_and(|d| d.contains("`overloaded`")),
                "{method} {path} does not document 503 overloaded"
            );
            assert!(
                busy["headers"]["Retry-After"].is_object(),
                "{method} {path}: 503 without Retry-After"
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} operations under /api/");
    let probe = &paths["/readyz"]["get"]["responses"]["503"]["description"];
    assert!(
        !probe.as_str().unwrap().contains("overloaded"),
        "probes are never turned away"
    );
}

//! SLA policies over HTTP: versions, If-Match, validation, access.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{TestApp, expect_problem};

fn definition(first_reply: u32) -> Value {
    json!({
        "name": "  Business hours  ",
        "position": 10,
        "applies_to": {"priorities": ["urgent", "high"]},
        "targets": {"urgent": {"first_reply": first_reply, "resolution": 480}},
        "calendar": {"kind": "business_hours", "time_zone": "Europe/Berlin",
                     "hours": {"mon": [{"start": "09:00", "end": "18:00"}]},
                     "holidays": ["2026-12-25"]}
    })
}

#[tokio::test]
async fn a_manager_creates_and_versions_a_policy_that_everyone_allowed_can_list() {
    let app = TestApp::spawn().await;
    let response = app
        .as_actor(Method::POST, "/api/v1/sla-policies", "manager-1", "manager")
        .json(&definition(30))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["etag"], "\"1\"");
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = response.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/api/v1/sla-policies/{id}"));
    assert_eq!(created["version"], 1);
    assert_eq!(created["name"], "Business hours", "the name is trimmed");
    assert_eq!(created["pause_statuses"], json!(["pending", "on_hold"]));

    let update = |if_match: &'static str, body: Value| {
        app.as_actor(Method::PUT, &location, "admin-1", "admin")
            .header("if-match", if_match)
            .json(&body)
    };
    let response = update("\"1\"", definition(45)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["etag"], "\"2\"");
    let stale = update("\"1\"", definition(60)).send().await.unwrap();
    let problem = expect_problem(
        stale,
        StatusCode::PRECONDITION_FAILED,
        "precondition-failed",
    )
    .await;
    assert_eq!(problem["current_version"], 2);
    let same = update("\"2\"", definition(45)).send().await.unwrap();
    expect_problem(same, StatusCode::UNPROCESSABLE_ENTITY, "no-change").await;

    let listed: Value = app
        .as_actor(Method::GET, "/api/v1/sla-policies", "auditor-1", "auditor")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["version"], 2);
    assert_eq!(listed[0]["targets"]["urgent"]["first_reply"], 45);
    let versions: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_type = 'SlaPolicy' AND aggregate_id = $1",
    )
    .bind(&id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        versions, 2,
        "every change is a new version in the event store"
    );
}

#[tokio::test]
async fn an_invalid_policy_is_422_with_pointers_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let mut bad = definition(0);
    bad["calendar"]["hours"]["mon"] = json!([{"start": "18:00", "end": "09:00"}]);
    let response = app
        .as_actor(Method::POST, "/api/v1/sla-policies", "manager-1", "manager")
        .json(&bad)
        .send()
        .await
        .unwrap();
    let problem = expect_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    )
    .await;
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert!(
        fields.iter().any(|f| f.contains("first_reply")),
        "{problem}"
    );
    assert!(fields.iter().any(|f| f.contains("calendar")), "{problem}");

    let mut unknown = definition(30);
    unknown["targets"]["urgent"]["first_respone"] = json!(10);
    let response = app
        .as_actor(Method::POST, "/api/v1/sla-policies", "manager-1", "manager")
        .json(&unknown)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let response = app
        .as_actor(
            Method::PUT,
            "/api/v1/sla-policies/no-such-policy",
            "manager-1",
            "manager",
        )
        .json(&definition(30))
        .send()
        .await
        .unwrap();
    expect_problem(response, StatusCode::NOT_FOUND, "sla-policy-not-found").await;
    assert_eq!(app.event_count().await, 0);
}

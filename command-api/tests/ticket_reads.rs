//! Ticket reads from the event store: history with who/when/why, and time travel with `as_of`.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{TestApp, expect_problem};

/// A ticket with 50 events: opened, then 49 commands of several kinds.
async fn ticket_with_50_events(app: &TestApp) -> String {
    let id = app.open_ticket().await;
    let base = format!("/api/v1/tickets/{id}");
    for i in 0..49 {
        let (method, path, body) = match i % 3 {
            0 => (
                Method::POST,
                "interactions",
                json!({"body": format!("reply {i}")}),
            ),
            1 => (Method::PUT, "tags", json!({"add": [format!("t{i}")]})),
            _ => {
                let priority = if (i / 3) % 2 == 0 { "low" } else { "high" };
                (Method::PUT, "priority", json!({"priority": priority}))
            }
        };
        let response = app.send(method, &format!("{base}/{path}"), body).await;
        assert!(
            response.status().is_success(),
            "command {i}: {}",
            response.status()
        );
    }
    id
}

async fn get(app: &TestApp, path: &str, role: (&str, &str)) -> reqwest::Response {
    app.as_actor(Method::GET, path, role.0, role.1)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_history_lists_every_event_with_who_when_and_why() {
    let app = TestApp::spawn().await;
    let id = ticket_with_50_events(&app).await;
    let response = get(
        &app,
        &format!("/api/v1/tickets/{id}/history"),
        ("agent-1", "agent"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let history: Vec<Value> = response.json().await.unwrap();
    assert_eq!(history.len(), 50);
    let sequences: Vec<u64> = history
        .iter()
        .map(|e| e["sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(sequences, (1..=50).collect::<Vec<_>>());
    assert_eq!(history[0]["event_type"], "TicketOpened");
    assert_eq!(history[0]["payload"]["subject"], "Printer on fire");
    for entry in &history {
        assert_eq!(entry["actor"]["id"], "agent-1");
        assert_eq!(entry["actor"]["role"], "agent");
        assert!(entry["request_id"].is_string() && entry["correlation_id"].is_string());
        assert!(entry["global_position"].as_i64().unwrap() > 0);
    }
}

#[tokio::test]
async fn as_of_a_version_or_an_instant_shows_the_ticket_as_it_was() {
    let app = TestApp::spawn().await;
    let id = ticket_with_50_events(&app).await;
    let path = format!("/api/v1/tickets/{id}");
    let agent = ("agent-1", "agent");

    let at_version = |v: u64| format!("{path}?as_of={v}");
    let view: Value = get(&app, &at_version(1), agent).await.json().await.unwrap();
    assert_eq!(view["version"], 1);
    assert_eq!(view["interactions"].as_array().unwrap().len(), 0);
    assert_eq!(view["tags"], json!(["hardware"]));
    let view: Value = get(&app, &at_version(3), agent).await.json().await.unwrap();
    assert_eq!(view["version"], 3);
    assert_eq!(view["tags"], json!(["hardware", "t1"]));
    let now: Value = get(&app, &path, agent).await.json().await.unwrap();
    assert_eq!(now["version"], 50);

    // Between two events' recording times: the ticket as it was after the earlier one.
    let history: Vec<Value> = get(&app, &format!("{path}/history"), agent)
        .await
        .json()
        .await
        .unwrap();
    let recorded = |i: usize| {
        history[i]["recorded_at"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap()
    };
    let (k, t) = (1..49)
        .find_map(|k| {
            let (a, b) = (recorded(k), recorded(k + 1));
            (b > a).then(|| (k, a + (b - a) / 2))
        })
        .expect("two events with different recording times");
    let instant = t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let response = get(
        &app,
        &format!("{path}?as_of={}", instant.replace('+', "%2B")),
        agent,
    )
    .await;
    let view: Value = response.json().await.unwrap();
    assert_eq!(view["version"], k as u64 + 1);

    // Before the ticket existed: 404.
    let before = (recorded(0) - chrono::Duration::seconds(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let response = get(&app, &format!("{path}?as_of={before}"), agent).await;
    expect_problem(response, StatusCode::NOT_FOUND, "ticket-not-found").await;
    let response = get(&app, &at_version(0), agent).await;
    expect_problem(response, StatusCode::NOT_FOUND, "ticket-not-found").await;

    let response = get(&app, &format!("{path}?as_of=yesterday"), agent).await;
    expect_problem(response, StatusCode::BAD_REQUEST, "invalid-parameter").await;
}

#[tokio::test]
async fn a_customers_history_has_no_internal_notes_and_no_other_customers_tickets() {
    let app = TestApp::spawn().await;
    let id = app.open_ticket().await;
    let notes = format!("/api/v1/tickets/{id}/interactions");
    app.send(
        Method::POST,
        &notes,
        json!({"body": "SECRET-NOTE", "visibility": "internal"}),
    )
    .await;
    app.send(Method::POST, &notes, json!({"body": "Public answer"}))
        .await;
    let path = format!("/api/v1/tickets/{id}/history");

    let own = get(&app, &path, ("cust-1", "customer")).await;
    assert_eq!(own.status(), StatusCode::OK);
    let text = own.text().await.unwrap();
    assert!(text.contains("Public answer"));
    assert!(!text.contains("SECRET-NOTE"), "{text}");
    let other = get(&app, &path, ("cust-2", "customer")).await;
    let text = other.text().await.unwrap();
    assert!(!text.contains("Printer on fire") && !text.contains("SECRET-NOTE"));
    let staff = get(&app, &path, ("auditor-1", "auditor"))
        .await
        .text()
        .await
        .unwrap();
    assert!(staff.contains("SECRET-NOTE"));
}

//! The global audit feed: every event exactly once, in a stable commit order, paged or
//! streamed as NDJSON, with filters.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{TestApp, expect_problem, sample_ticket};

const WRITERS: usize = 20;
const TICKETS_PER_WRITER: usize = 10;
const EVENTS_PER_TICKET: usize = 50;

/// Writer `me` (acting as agent-`me`) opens tickets and adds replies: 500 events.
async fn writer(app: &TestApp, me: usize) {
    let actor = format!("agent-{me}");
    for _ in 0..TICKETS_PER_WRITER {
        let response = app
            .as_actor(Method::POST, "/api/v1/tickets", &actor, "agent")
            .json(&sample_ticket())
            .send()
            .await
            .unwrap();
        let id = response.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        for i in 1..EVENTS_PER_TICKET {
            let response = app
                .as_actor(
                    Method::POST,
                    &format!("/api/v1/tickets/{id}/interactions"),
                    &actor,
                    "agent",
                )
                .json(&json!({"body": format!("reply {i}")}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::CREATED);
        }
    }
}

/// Every page of the feed from the start, as event ids in order.
async fn walk(app: &TestApp, query: &str, limit: usize) -> Vec<Value> {
    let mut events = Vec::new();
    let mut after: Option<i64> = None;
    loop {
        let cursor = after.map(|a| format!("&after={a}")).unwrap_or_default();
        let path = format!("/api/v1/audit/events?limit={limit}{query}{cursor}");
        let page: Value = app
            .as_actor(Method::GET, &path, "auditor-1", "auditor")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        events.extend(page["events"].as_array().unwrap().iter().cloned());
        after = page["next"].as_i64();
        if page["end_of_feed"] == true {
            return events;
        }
    }
}

fn ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_events_from_twenty_writers_come_out_once_each_in_a_stable_order() {
    let app = TestApp::spawn().await;
    futures::future::join_all((0..WRITERS).map(|me| writer(&app, me))).await;
    let total = app.event_count().await as usize;
    assert_eq!(total, WRITERS * TICKETS_PER_WRITER * EVENTS_PER_TICKET);

    let first = walk(&app, "", 1000).await;
    let unique: BTreeSet<String> = ids(&first).into_iter().collect();
    assert_eq!(first.len(), total);
    assert_eq!(unique.len(), total, "an event came out twice");
    let second = walk(&app, "", 333).await;
    assert_eq!(ids(&second), ids(&first), "the order changed between walks");

    // Within a ticket, sequences ascend.
    let mut last = std::collections::HashMap::new();
    for event in &first {
        let ticket = event["aggregate_id"].as_str().unwrap().to_owned();
        let sequence = event["sequence"].as_i64().unwrap();
        let previous = last.insert(ticket, sequence).unwrap_or(0);
        assert_eq!(sequence, previous + 1);
    }
    assert_eq!(
        first[0]["payload"]["subject"], "Printer on fire",
        "bare payload"
    );

    // The NDJSON export streams the same events in the same order.
    let response = app
        .as_actor(Method::GET, "/api/v1/audit/events", "auditor-1", "auditor")
        .header("accept", "application/x-ndjson")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let text = response.text().await.unwrap();
    let exported: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(ids(&exported), ids(&first));

    // Filters.
    let opened = walk(&app, "&type=TicketOpened", 1000).await;
    assert_eq!(opened.len(), WRITERS * TICKETS_PER_WRITER);
    let by_actor = walk(&app, "&actor=agent-3", 1000).await;
    assert_eq!(by_actor.len(), TICKETS_PER_WRITER * EVENTS_PER_TICKET);
    assert!(
        by_actor
            .iter()
            .all(|e| e["metadata"]["actor_id"] == "agent-3")
    );
}

#[tokio::test]
async fn bad_feed_parameters_are_400() {
    let app = TestApp::spawn().await;
    for query in [
        "limit=0",
        "limit=5000",
        "after=999999",
        "from=yesterday",
        "limit=x",
    ] {
        let response = app
            .as_actor(
                Method::GET,
                &format!("/api/v1/audit/events?{query}"),
                "auditor-1",
                "auditor",
            )
            .send()
            .await
            .unwrap();
        expect_problem(response, StatusCode::BAD_REQUEST, "invalid-parameter").await;
    }
}

//! Many writers on one ticket: no lost update, no hole, no invented event (invariant 7).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::collections::BTreeSet;

use helpdesk_domain::ticket::{Priority, Status};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::TestApp;

const CLIENTS: usize = 20;
const COMMANDS_PER_CLIENT: usize = 50;

/// What one request got back.
struct Outcome {
    status: StatusCode,
    version: Option<i64>,
    request_id: String,
}

/// Picks a status the ticket can move to from `current` among the working statuses.
fn other_working_status(current: Status, turn: usize) -> &'static str {
    let choices: Vec<&str> = ["open", "pending", "on_hold"]
        .into_iter()
        .filter(|s| *s != current.as_str())
        .collect();
    choices[turn % choices.len()]
}

fn other_priority(current: Priority, turn: usize) -> &'static str {
    let choices: Vec<&str> = [
        Priority::Low,
        Priority::Normal,
        Priority::High,
        Priority::Urgent,
    ]
    .into_iter()
    .filter(|p| *p != current)
    .map(|p| match p {
        Priority::Low => "low",
        Priority::Normal => "normal",
        Priority::High => "high",
        Priority::Urgent => "urgent",
    })
    .collect();
    choices[turn % choices.len()]
}

/// One client: replies and tag toggles without `If-Match`; status and priority changes with
/// the version it just read (as a UI would). Every command it sends is valid for the state it
/// knows, so any failure can only come from a concurrent writer.
async fn client(app: &TestApp, ticket: &str, me: usize) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    let my_tag = format!("client-{me}");
    let mut tagged = false;
    for turn in 0..COMMANDS_PER_CLIENT {
        let base = format!("/api/v1/tickets/{ticket}");
        let request = match turn % 4 {
            0 => app
                .request(Method::POST, &format!("{base}/interactions"))
                .json(&json!({"body": format!("reply {turn} from client {me}")})),
            1 => {
                let change = if tagged {
                    json!({"remove": [my_tag]})
                } else {
                    json!({"add": [my_tag]})
                };
                app.request(Method::PUT, &format!("{base}/tags"))
                    .json(&change)
            }
            turn_kind => {
                let (state, version) =
                    helpdesk_command_api::execute::load(&app.state.store, ticket)
                        .await
                        .unwrap();
                let (path, body) = if turn_kind == 2 {
                    let to = other_priority(state.priority().unwrap(), turn + me);
                    ("priority", json!({"priority": to}))
                } else {
                    let to = other_working_status(state.status().unwrap(), turn + me);
                    ("status", json!({"status": to}))
                };
                app.request(Method::PUT, &format!("{base}/{path}"))
                    .header("if-match", format!("\"{version}\""))
                    .json(&body)
            }
        };
        let response = request.send().await.unwrap();
        let status = response.status();
        let request_id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let body: Value = response.json().await.unwrap();
        if turn % 4 == 1 && status.is_success() {
            tagged = !tagged;
        }
        outcomes.push(Outcome {
            status,
            version: body["version"].as_i64().filter(|_| status.is_success()),
            request_id,
        });
    }
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_writers_leave_a_gapless_history_with_one_event_per_success() {
    let app = TestApp::spawn().await;
    let ticket = app.open_ticket().await;
    let response = app
        .send(
            Method::PUT,
            &format!("/api/v1/tickets/{ticket}/status"),
            json!({"status": "open"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);

    let clients = (0..CLIENTS).map(|me| client(&app, &ticket, me));
    let outcomes: Vec<Outcome> = futures::future::join_all(clients)
        .await
        .into_iter()
        .flatten()
        .collect();

    let rows: Vec<(i64, Value)> = sqlx::query_as(
        "SELECT sequence, metadata::jsonb FROM events WHERE aggregate_id = $1 ORDER BY sequence",
    )
    .bind(&ticket)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let sequences: Vec<i64> = rows.iter().map(|(s, _)| *s).collect();
    let expected: Vec<i64> = (1..=rows.len() as i64).collect();
    assert_eq!(sequences, expected, "sequences must be 1..N without holes");

    let successes: Vec<&Outcome> = outcomes.iter().filter(|o| o.status.is_success()).collect();
    let failures: Vec<StatusCode> = outcomes
        .iter()
        .filter(|o| !o.status.is_success())
        .map(|o| o.status)
        .collect();
    assert!(
        failures
            .iter()
            .all(|s| *s == StatusCode::CONFLICT || *s == StatusCode::PRECONDITION_FAILED),
        "every unsuccessful command must be 409 or 412, got {:?}",
        failures.iter().collect::<BTreeSet<_>>()
    );

    // One event per success: the versions answered are exactly 3..=N, each once, and the events
    // after the first two carry exactly the successful requests' ids.
    let versions: Vec<i64> = successes.iter().map(|o| o.version.unwrap()).collect();
    let unique: BTreeSet<i64> = versions.iter().copied().collect();
    assert_eq!(
        unique.len(),
        versions.len(),
        "two successes claimed one version"
    );
    assert_eq!(unique, (3..=rows.len() as i64).collect());
    let success_ids: BTreeSet<&str> = successes.iter().map(|o| o.request_id.as_str()).collect();
    let event_ids: BTreeSet<&str> = rows[2..]
        .iter()
        .map(|(_, metadata)| metadata["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(success_ids, event_ids);

    eprintln!(
        "{} commands: {} accepted, {} conflict (409), {} stale (412)",
        outcomes.len(),
        successes.len(),
        failures
            .iter()
            .filter(|s| **s == StatusCode::CONFLICT)
            .count(),
        failures
            .iter()
            .filter(|s| **s == StatusCode::PRECONDITION_FAILED)
            .count(),
    );
}

//! Event versioning for real: a database holding version 1 `ReplyAdded` rows (written before
//! attachments existed) still loads, accepts commands and reads as version 2.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::TestApp;

/// Writes a ticket the way the version-1 code did: `TicketOpened` v1 and `ReplyAdded` v1.
async fn insert_v1_ticket(app: &TestApp) -> String {
    let id = uuid::Uuid::now_v7().to_string();
    let opened = json!({"TicketOpened": {
        "ticket_id": id, "subject": "Old ticket", "description": "from v1", "priority": "normal",
        "channel": "email", "requester": {"customer_id": "cust-1"}, "tags": [], "group": null}});
    let reply = json!({"ReplyAdded": {
        "interaction_id": "old-reply", "author": {"id": "agent-1", "kind": "agent"},
        "visibility": "public", "body": "written by version 1"}});
    let metadata = json!({"actor_id": "agent-1", "actor_role": "agent"});
    for (sequence, event_type, payload) in [(1, "TicketOpened", opened), (2, "ReplyAdded", reply)] {
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                                 event_version, payload, metadata) \
             VALUES ('Ticket', $1, $2, $3, '1', $4, $5)",
        )
        .bind(&id)
        .bind(sequence as i64)
        .bind(event_type)
        .bind(payload)
        .bind(&metadata)
        .execute(&app.pool)
        .await
        .unwrap();
    }
    id
}

#[tokio::test]
async fn version_1_replies_replay_and_read_as_version_2() {
    let app = TestApp::spawn().await;
    let id = insert_v1_ticket(&app).await;

    // The aggregate loads the v1 row through the upcaster and accepts a new command.
    let response = app
        .send(
            Method::POST,
            &format!("/api/v1/tickets/{id}/interactions"),
            json!({"body": "new"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["etag"], "\"3\"");

    let stored: Vec<(String, Value)> = sqlx::query_as(
        "SELECT event_version, payload::jsonb FROM events WHERE aggregate_id = $1 ORDER BY sequence",
    )
    .bind(&id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(stored[1].0, "1", "old rows are never rewritten");
    assert!(stored[1].1["ReplyAdded"].get("attachments").is_none());
    assert_eq!(stored[2].0, "2", "new rows are written as version 2");

    let ticket: Value = app
        .request(Method::GET, &format!("/api/v1/tickets/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let interactions = ticket["interactions"].as_array().unwrap();
    assert_eq!(interactions.len(), 2);
    assert_eq!(interactions[0]["body"], "written by version 1");
    assert_eq!(interactions[0]["attachments"], json!([]));

    let history: Vec<Value> = app
        .request(Method::GET, &format!("/api/v1/tickets/{id}/history"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(history[1]["event_version"], "2");
    assert_eq!(history[1]["stored_event_version"], "1");
    assert_eq!(history[1]["payload"]["attachments"], json!([]));
}

#[tokio::test]
async fn a_search_replay_reads_version_1_replies_as_version_2() {
    use helpdesk_search::SearchBackend;
    use helpdesk_search::projection::replay;
    use helpdesk_search::tantivy_backend::TantivyBackend;

    let app = TestApp::spawn().await;
    let id = insert_v1_ticket(&app).await;
    let directory = tempfile::tempdir().unwrap();
    let backend = TantivyBackend::open(directory.path()).unwrap();
    // The replay parses each payload straight from the stored text unless it needs upcasting.
    let (_, replayed) = replay(&app.pool, &backend, Default::default(), |_| {})
        .await
        .unwrap();
    assert!(replayed >= 2, "{replayed}");
    let found = backend.get(std::slice::from_ref(&id)).await.unwrap();
    let document = &found[&id];
    assert_eq!(document.subject, "Old ticket");
    assert_eq!(document.public_text, "written by version 1");
    assert_eq!((document.reply_count, document.public_reply_count), (1, 1));
    assert_eq!(document.last_sequence, 2);
}

//! The relay: every committed event reaches JetStream once, in order per ticket, even when
//! transactions commit out of position order (invariant 2).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use sqlx::Connection;
use support::TestApp;

#[tokio::test]
async fn every_command_event_is_published_once_with_its_envelope_subject_and_msg_id() {
    let app = TestApp::spawn().await;
    let relay = app.start_relay();
    let mut tickets = Vec::new();
    for _ in 0..3 {
        let id = app.open_ticket().await;
        for body in ["first", "second"] {
            let path = format!("/api/v1/tickets/{id}/interactions");
            app.send(Method::POST, &path, json!({"body": body})).await;
        }
        tickets.push(id);
    }
    let messages = app.stream_messages(9).await;
    assert_eq!(messages.len(), 9);
    let mut per_ticket: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (subject, msg_id, envelope) in &messages {
        assert_eq!(
            subject,
            &format!("{}.events.Ticket.{}", app.prefix, envelope.aggregate_id)
        );
        assert_eq!(
            msg_id,
            &format!("Ticket:{}:{}", envelope.aggregate_id, envelope.sequence)
        );
        assert_eq!(envelope.metadata["actor_id"], "agent-1");
        per_ticket
            .entry(envelope.aggregate_id.clone())
            .or_default()
            .push(envelope.sequence);
    }
    for id in &tickets {
        assert_eq!(per_ticket[id], [1, 2, 3], "ticket {id} arrives in order");
    }
    // The relay counts a batch after its checkpoint, which follows the acks: the messages
    // can be read a moment before the count moves.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let metrics = app.metrics().await;
        if metrics.contains("helpdesk_relay_published_events_total 9")
            || tokio::time::Instant::now() > deadline
        {
            break metrics;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        metrics.contains("helpdesk_relay_published_events_total 9"),
        "{metrics}"
    );
    assert!(metrics.contains("helpdesk_relay_checkpoint_position"));
    let first = &messages[0].2;
    assert_eq!(first.event_type, "TicketOpened");
    assert_eq!(
        first.payload["subject"], "Printer on fire",
        "payload is the bare event"
    );
    relay.abort();
    app.delete_stream().await;
}

/// Inserts a minimal `TicketOpened` row on `connection` and returns its global position.
async fn insert_event(connection: &mut sqlx::PgConnection, id: &str) -> i64 {
    let payload = json!({"TicketOpened": {
        "ticket_id": id, "subject": "raw", "description": "", "priority": "normal",
        "channel": "api", "requester": {"customer_id": "c"}, "tags": [], "group": null}});
    sqlx::query_scalar(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
                             payload, metadata) \
         VALUES ('Ticket', $1, 1, 'TicketOpened', '1', $2, '{}') RETURNING global_position",
    )
    .bind(id)
    .bind(payload)
    .fetch_one(connection)
    .await
    .unwrap()
}

/// Begins a transaction on `connection` and makes it take its transaction id now.
async fn begin_holding_an_id(connection: &mut sqlx::PgConnection) {
    sqlx::query("BEGIN")
        .execute(&mut *connection)
        .await
        .unwrap();
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *connection)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_event_committed_after_a_later_position_is_not_lost() {
    let app = TestApp::spawn().await;
    let relay = app.start_relay();
    let options = (*app.pool.connect_options()).clone();
    let mut early = sqlx::PgConnection::connect_with(&options).await.unwrap();
    let mut late = sqlx::PgConnection::connect_with(&options).await.unwrap();

    // `early` takes its transaction id first, `late` second; `late` inserts first (smaller
    // position) but commits last.
    begin_holding_an_id(&mut early).await;
    begin_holding_an_id(&mut late).await;
    let late_position = insert_event(&mut late, "late-ticket").await;
    let early_position = insert_event(&mut early, "early-ticket").await;
    assert!(late_position < early_position);
    sqlx::query("COMMIT").execute(&mut early).await.unwrap();

    // The relay publishes the committed event while the other transaction is still open…
    let messages = app.stream_messages(1).await;
    assert_eq!(messages[0].2.aggregate_id, "early-ticket");
    // …and a cursor on position alone would now stand past `late_position` for good.
    sqlx::query("COMMIT").execute(&mut late).await.unwrap();
    let messages = app.stream_messages(2).await;
    let ids: Vec<&str> = messages.iter().map(|m| m.2.aggregate_id.as_str()).collect();
    assert_eq!(ids, ["early-ticket", "late-ticket"]);
    relay.abort();
    app.delete_stream().await;
}

#[tokio::test]
async fn events_held_back_by_an_older_transaction_are_published_when_it_ends_not_at_the_poll() {
    // Given a relay that polls only every ten minutes, woken by the app's commits
    let app = TestApp::spawn().await;
    let relay = app.start_relay_polling(Duration::from_secs(600));
    app.open_ticket().await;
    app.stream_messages(1).await;
    // and a transaction holding an id, older than the next command's
    let options = (*app.pool.connect_options()).clone();
    let mut older = sqlx::PgConnection::connect_with(&options).await.unwrap();
    begin_holding_an_id(&mut older).await;

    // When a command commits (waking the relay, which finds its event held back: the lag it
    // reports counts it) and the older transaction then ends without waking anyone
    app.open_ticket().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !app.metrics().await.contains("helpdesk_relay_lag_events 1") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay never reported the held-back event"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sqlx::query("COMMIT").execute(&mut older).await.unwrap();

    // Then the event is published long before the next poll (`stream_messages` gives up after
    // 30 s)
    assert_eq!(app.stream_messages(2).await.len(), 2);
    relay.abort();
    app.delete_stream().await;
}

#[tokio::test]
async fn a_second_relay_waits_and_takes_over_when_the_leader_dies() {
    let app = TestApp::spawn().await;
    let leader = app.start_relay();
    app.open_ticket().await;
    app.stream_messages(1).await;
    let standby = app.start_relay();
    leader.abort();
    // The leader's lock connection closes with its task; the standby must publish from here.
    for _ in 0..3 {
        app.open_ticket().await;
    }
    let messages = app.stream_messages(4).await;
    assert_eq!(
        messages.len(),
        4,
        "nothing lost, nothing doubled across the handover"
    );
    standby.abort();
    app.delete_stream().await;
}

#[tokio::test]
async fn a_restarted_relay_resumes_from_its_checkpoint_without_duplicates() {
    let app = TestApp::spawn().await;
    let first = app.start_relay();
    app.open_ticket().await;
    app.stream_messages(1).await;
    first.abort();
    // Forget the checkpoint: the new relay republishes everything, and the stream's duplicate
    // window must drop the copy.
    sqlx::query("DELETE FROM relay_checkpoint")
        .execute(&app.pool)
        .await
        .unwrap();
    let second = app.start_relay();
    app.open_ticket().await;
    let messages = app.stream_messages(2).await;
    assert_eq!(messages.len(), 2);
    second.abort();
    app.delete_stream().await;
}

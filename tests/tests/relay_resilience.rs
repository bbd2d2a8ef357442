//! The relay survives being killed and NATS being restarted: at the end the stream holds
//! exactly one message per committed event, each ticket's events in order.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::{BTreeMap, BTreeSet};

use helpdesk_tests::{
    OwnNats, Product, Worker, nats_url, postgres_server_url, unique_prefix, wait_for_stream,
    wait_for_stream_count,
};
use serde_json::{Value, json};

const WRITERS: usize = 8;
const REPLIES_PER_WRITER: usize = 40;

/// Opens a ticket and adds replies to it; returns how many commands were accepted.
async fn writer(url: String, token: String) -> usize {
    let client = reqwest::Client::new();
    let opened: Value = client
        .post(format!("{url}/api/v1/tickets"))
        .bearer_auth(&token)
        .json(&json!({"subject": "load", "requester": {"customer_id": "c-1"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = opened["id"].as_str().unwrap().to_owned();
    let mut accepted = 1;
    for i in 0..REPLIES_PER_WRITER {
        let response = client
            .post(format!("{url}/api/v1/tickets/{id}/interactions"))
            .bearer_auth(&token)
            .json(&json!({"body": format!("reply {i}")}))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        accepted += 1;
    }
    accepted
}

/// Every committed event as its message id, from the database.
async fn committed_ids(database: &helpdesk_platform::Secret) -> BTreeSet<String> {
    let pool = helpdesk_platform::db::connect(database, 2).await.unwrap();
    let rows: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT aggregate_type, aggregate_id, sequence FROM events")
            .fetch_all(&pool)
            .await
            .unwrap();
    rows.into_iter()
        .map(|(kind, id, sequence)| format!("{kind}:{id}:{sequence}"))
        .collect()
}

/// Asserts the stream's ids are exactly the committed ones, once each, in order per ticket.
fn assert_exactly_once_in_order(stream: &[String], committed: &BTreeSet<String>) {
    let unique: BTreeSet<String> = stream.iter().cloned().collect();
    assert_eq!(unique.len(), stream.len(), "a message was published twice");
    assert_eq!(&unique, committed, "stream and store disagree");
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    for id in stream {
        let (ticket, sequence) = id.rsplit_once(':').unwrap();
        let sequence: i64 = sequence.parse().unwrap();
        let previous = last.insert(ticket.to_owned(), sequence).unwrap_or(0);
        assert_eq!(sequence, previous + 1, "{ticket} out of order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_relay_repeatedly_under_load_loses_and_doubles_nothing() {
    let database = helpdesk_platform::db::scratch_database_url(&postgres_server_url())
        .await
        .unwrap();
    let prefix = unique_prefix();
    let product = Product::start_with(
        database.expose(),
        &[("HELPDESK_RELAY", "off"), ("HELPDESK_NATS_PREFIX", &prefix)],
    )
    .await;
    let token = product.token("agent", "agent-1").await;
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| tokio::spawn(writer(product.url.clone(), token.clone())))
        .collect();

    // Kill the relay with SIGKILL three times while the writers write, each time after it
    // has made progress, then let a fourth one finish the job.
    let mut published = 0;
    for _ in 0..3 {
        let relay = Worker::relay(database.expose(), &nats_url(), &prefix).await;
        published = wait_for_stream_count(&nats_url(), &prefix, published + 1).await;
        relay.kill().await;
    }
    let mut accepted = 0;
    for writer in writers {
        accepted += writer.await.unwrap();
    }
    let relay = Worker::relay(database.expose(), &nats_url(), &prefix).await;
    let stream = wait_for_stream(&nats_url(), &prefix, accepted as u64).await;
    relay.kill().await;
    product.stop().await;

    let committed = committed_ids(&database).await;
    assert_eq!(committed.len(), accepted);
    assert_exactly_once_in_order(&stream, &committed);
}

#[tokio::test]
async fn the_relay_resumes_by_itself_after_nats_restarts() {
    let mut nats = OwnNats::start().await;
    let database = helpdesk_platform::db::scratch_database_url(&postgres_server_url())
        .await
        .unwrap();
    let prefix = unique_prefix();
    let product = Product::start_with(
        database.expose(),
        &[
            ("NATS_URL", &nats.url),
            ("HELPDESK_NATS_PREFIX", &prefix),
            ("HELPDESK_RELAY_POLL_MS", "50"),
        ],
    )
    .await;
    let token = product.token("agent", "agent-1").await;
    let client = reqwest::Client::new();
    let open = || {
        client
            .post(format!("{}/api/v1/tickets", product.url))
            .bearer_auth(&token)
            .json(&json!({"subject": "s", "requester": {"customer_id": "c"}}))
            .send()
    };
    for _ in 0..3 {
        assert!(open().await.unwrap().status().is_success());
    }
    let before = wait_for_stream_count(&nats.url, &prefix, 3).await;
    assert_eq!(before, 3);

    nats.stop().await;
    // Commands only need Postgres: they keep working while NATS is down.
    for _ in 0..5 {
        assert!(open().await.unwrap().status().is_success());
    }
    nats.restart().await;

    // The in-process projection resumed too: all eight tickets reach the read model.
    let pool = helpdesk_platform::db::connect(&database, 2).await.unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM ticket_summary")
            .fetch_one(&pool)
            .await
            .unwrap();
        if rows == 8 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "projection did not resume ({rows} rows)"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Only now read (and delete) the stream: the projection consumes from it.
    let stream = wait_for_stream(&nats.url, &prefix, 8).await;
    product.stop().await;
    assert_exactly_once_in_order(&stream, &committed_ids(&database).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn projector_processes_sharing_a_projection_apply_every_event_once() {
    let database = helpdesk_platform::db::scratch_database_url(&postgres_server_url())
        .await
        .unwrap();
    let prefix = unique_prefix();
    // `up` runs the relay and one ticket_summary worker; two more processes join it.
    let product =
        Product::start_with(database.expose(), &[("HELPDESK_NATS_PREFIX", &prefix)]).await;
    let nats = nats_url();
    let mut extra = Vec::new();
    for _ in 0..2 {
        let worker =
            helpdesk_tests::Worker::projector(database.expose(), &nats, &prefix, "ticket_summary");
        extra.push(worker.await);
    }
    let token = product.token("agent", "agent-1").await;
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| tokio::spawn(writer(product.url.clone(), token.clone())))
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    // reply_count is a counter: an event applied twice would push it past the stored replies.
    let pool = helpdesk_platform::db::connect(&database, 2).await.unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    let mismatched = loop {
        let mismatched: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT aggregate_id, max(sequence) AS version, \
                    count(*) FILTER (WHERE event_type = 'ReplyAdded') AS replies \
               FROM events GROUP BY aggregate_id) e \
               LEFT JOIN ticket_summary s ON s.ticket_id = e.aggregate_id \
              WHERE s.last_sequence IS DISTINCT FROM e.version \
                 OR s.reply_count IS DISTINCT FROM e.replies",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if mismatched == 0 || tokio::time::Instant::now() > deadline {
            break mismatched;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(mismatched, 0, "read model differs from the store");
    let replies: i64 = sqlx::query_scalar("SELECT sum(reply_count) FROM ticket_summary")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(replies, (WRITERS * REPLIES_PER_WRITER) as i64);
    for process in extra {
        process.kill().await;
    }
    product.stop().await;
}

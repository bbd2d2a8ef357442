//! End to end: the real `helpdesk up` process, real Postgres, real NATS.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::BTreeSet;

use helpdesk_tests::{Product, nats_url, postgres_server_url, run_up_expecting_exit};
use serde_json::{Value, json};

const METADATA_KEYS: [&str; 7] = [
    "actor_id",
    "actor_role",
    "occurred_at",
    "correlation_id",
    "causation_id",
    "request_id",
    "command",
];

async fn send(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Value,
) -> Value {
    let response = client
        .request(method, url)
        .bearer_auth(token)
        .header("x-correlation-id", "e2e-lifecycle")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_ticket_opened_replied_assigned_and_solved_is_stored_as_events_with_full_metadata() {
    let database = helpdesk_platform::db::scratch_database_url(&postgres_server_url())
        .await
        .unwrap();
    let product = Product::start(database.expose()).await;
    let client = reqwest::Client::new();
    let customer = product.token("customer", "cust-42").await;
    let agent = product.token("agent", "agent-7").await;

    let opened = send(
        &client,
        reqwest::Method::POST,
        format!("{}/api/v1/tickets", product.url),
        &customer,
        json!({"subject": "Cannot log in", "description": "Since this morning.",
               "channel": "web", "requester": {"customer_id": "cust-42"}}),
    )
    .await;
    let id = opened["id"].as_str().unwrap().to_owned();
    let ticket = format!("{}/api/v1/tickets/{id}", product.url);
    use reqwest::Method;
    let steps = [
        (
            Method::POST,
            "interactions",
            &customer,
            json!({"body": "Still broken."}),
        ),
        (
            Method::PUT,
            "assign",
            &agent,
            json!({"assignee": "agent-7", "group": "accounts"}),
        ),
        (
            Method::POST,
            "interactions",
            &agent,
            json!({"body": "Reset your password.", "visibility": "public"}),
        ),
        (Method::PUT, "status", &agent, json!({"status": "solved"})),
    ];
    let mut positions = vec![opened["position"].as_i64().unwrap()];
    for (method, path, actor, body) in steps {
        let answer = send(&client, method, format!("{ticket}/{path}"), actor, body).await;
        positions.push(answer["position"].as_i64().unwrap());
    }
    // The search index of `up` reflects the last step once asked to wait for it.
    let query = "morning status:solved assignee:me";
    let found = search(&client, &product, &agent, query, positions[4]).await;
    assert_eq!(found["total"], 1, "{found}");
    assert_eq!(found["hits"][0]["id"], id.as_str());
    assert_eq!(found["hits"][0]["reply_count"], 2);
    product.stop().await;

    let pool = helpdesk_platform::db::connect(&database, 2).await.unwrap();
    let rows: Vec<(i64, i64, String, Value, String, uuid::Uuid)> = sqlx::query_as(
        "SELECT global_position, sequence, event_type, metadata::jsonb, tx_id::text, event_id \
         FROM events WHERE aggregate_id = $1 ORDER BY sequence",
    )
    .bind(&id)
    .fetch_all(&pool)
    .await
    .unwrap();

    let types: Vec<&str> = rows.iter().map(|r| r.2.as_str()).collect();
    assert_eq!(
        types,
        [
            "TicketOpened",
            "ReplyAdded",
            "TicketAssigned",
            "ReplyAdded",
            "TicketStatusChanged"
        ]
    );
    let stored_positions: Vec<i64> = rows.iter().map(|r| r.0).collect();
    assert!(
        stored_positions.windows(2).all(|w| w[0] < w[1]),
        "{stored_positions:?}"
    );
    assert_eq!(
        stored_positions, positions,
        "responses report the stored positions"
    );
    assert_eq!(
        rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );

    let actors = ["cust-42", "cust-42", "agent-7", "agent-7", "agent-7"];
    for ((_, _, event_type, metadata, tx_id, _), actor) in rows.iter().zip(actors) {
        for key in METADATA_KEYS {
            let value = metadata[key].as_str().unwrap_or_default();
            assert!(
                !value.is_empty(),
                "{event_type} lacks metadata {key}: {metadata}"
            );
        }
        assert_eq!(metadata["actor_id"], actor);
        assert_eq!(metadata["correlation_id"], "e2e-lifecycle");
        let occurred = metadata["occurred_at"].as_str().unwrap();
        assert!(chrono_like_rfc3339(occurred), "{occurred}");
        assert!(tx_id.parse::<u64>().is_ok());
    }
    let request_ids: BTreeSet<&str> = rows
        .iter()
        .map(|r| r.3["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        request_ids.len(),
        rows.len(),
        "each command had its own request id"
    );
    let event_ids: BTreeSet<uuid::Uuid> = rows.iter().map(|r| r.5).collect();
    assert_eq!(event_ids.len(), rows.len());
}

/// `2026-11-21T12:00:00.123456Z`: date, `T`, time, `Z`.
fn chrono_like_rfc3339(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() >= 20 && bytes[4] == b'-' && bytes[10] == b'T' && text.ends_with('Z')
}

#[tokio::test]
async fn up_exits_with_one_line_naming_postgres_when_it_is_unreachable() {
    let (status, stderr) = run_up_expecting_exit(&[
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/helpdesk"),
        ("NATS_URL", &nats_url()),
    ])
    .await;
    assert!(!status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cannot reach PostgreSQL"), "{stderr}");
    assert!(stderr.contains("pg_ctlcluster"), "{stderr}");
}

#[tokio::test]
async fn up_exits_with_one_line_naming_nats_when_it_is_unreachable() {
    let database = helpdesk_platform::db::scratch_database_url(&postgres_server_url())
        .await
        .unwrap();
    let (status, stderr) = run_up_expecting_exit(&[
        ("DATABASE_URL", database.expose()),
        ("NATS_URL", "nats://127.0.0.1:1"),
    ])
    .await;
    assert!(!status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cannot reach NATS"), "{stderr}");
    assert!(stderr.contains("nats-server"), "{stderr}");
}

#[tokio::test]
async fn up_projects_tickets_and_the_cli_rebuilds_the_same_summary() {
    let database = helpdesk_platform::db::scratch_database_url(&postgres_server_url())
        .await
        .unwrap();
    let product = Product::start(database.expose()).await;
    let client = reqwest::Client::new();
    let agent = product.token("agent", "agent-7").await;
    for subject in ["One", "Two", "Three"] {
        send(
            &client,
            reqwest::Method::POST,
            format!("{}/api/v1/tickets", product.url),
            &agent,
            json!({"subject": subject, "requester": {"customer_id": "cust-1"}, "tags": ["x"]}),
        )
        .await;
    }
    let pool = helpdesk_platform::db::connect(&database, 2).await.unwrap();
    let summary = || async {
        sqlx::query_scalar::<_, Value>(
            "SELECT to_jsonb(s) FROM ticket_summary s ORDER BY ticket_id",
        )
        .fetch_all(&pool)
        .await
        .unwrap()
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while summary().await.len() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "up did not project within 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let live = summary().await;

    let output = product
        .cli(
            database.expose(),
            &["projections", "rebuild", "ticket_summary"],
        )
        .await;
    assert!(
        output.contains("rebuilt ticket_summary from 3 events"),
        "{output}"
    );
    assert_eq!(summary().await, live);
    let output = product
        .cli(database.expose(), &["dlq", "list", "ticket_summary"])
        .await;
    assert!(output.starts_with("0 dead letters"), "{output}");
    product.stop().await;
}

#[tokio::test]
async fn a_lost_search_index_is_refilled_from_the_event_store_when_up_starts() {
    let database = helpdesk_platform::db::scratch_database_url(&postgres_server_url())
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let word = format!("axolotl{}", uuid::Uuid::new_v4().simple());
    let first = Product::start(database.expose()).await;
    let agent = first.token("agent", "agent-7").await;
    let opened = send(
        &client,
        reqwest::Method::POST,
        format!("{}/api/v1/tickets", first.url),
        &agent,
        json!({"subject": "Lost index", "description": format!("the {word} is missing"),
               "channel": "web", "requester": {"customer_id": "cust-42"}}),
    )
    .await;
    let position = opened["position"].as_i64().unwrap();
    let prefix = first.prefix().to_owned();
    // Searchable, and its message acknowledged by the search consumer: the stream will not
    // deliver it again.
    let found = search(&client, &first, &agent, &word, position).await;
    assert_eq!(found["total"], 1, "{found}");
    wait_until_acknowledged(&prefix, "search").await;
    // Killed, stream kept: the data directory (the index) is gone with the first product.
    drop(first);

    // A new product on the same database and prefix, with an empty data directory (a lost
    // index).
    let second = Product::start_with(database.expose(), &[("HELPDESK_NATS_PREFIX", &prefix)]).await;
    let agent = second.token("agent", "agent-7").await;
    let found = search(&client, &second, &agent, &word, position).await;
    assert_eq!(found["total"], 1, "{found}");
    assert_eq!(found["hits"][0]["id"], opened["id"]);
    second.stop().await;
}

/// Searches `product` for `query` as the token's holder, once the index has reached
/// `min_position`.
async fn search(
    client: &reqwest::Client,
    product: &Product,
    token: &str,
    query: &str,
    min_position: i64,
) -> Value {
    client
        .get(format!("{}/api/v1/tickets/search", product.url))
        .bearer_auth(token)
        .query(&[
            ("q", query.to_owned()),
            ("min_position", min_position.to_string()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Waits (up to 30 s) until consumer `name` of the prefix's stream has nothing unacknowledged.
async fn wait_until_acknowledged(prefix: &str, name: &str) {
    let js = async_nats::jetstream::new(async_nats::connect(nats_url()).await.unwrap());
    let stream = format!("{}_EVENTS", prefix.to_uppercase());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let mut consumer: async_nats::jetstream::consumer::PullConsumer = js
            .get_stream(&stream)
            .await
            .unwrap()
            .get_consumer(name)
            .await
            .unwrap();
        let info = consumer.info().await.unwrap();
        if info.num_ack_pending == 0 && info.ack_floor.stream_sequence >= 1 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name} never acknowledged"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

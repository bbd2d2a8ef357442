//! Tamper evidence: every event is hash-chained to its predecessor when it is appended, and
//! verification names the first broken link after the store was edited behind our back (by
//! SQL, as an attacker with database access would).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::time::Duration;

use helpdesk_platform::audit::{self, AnchorCheck, ChainProblem};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::{TestApp, expect_problem};

/// Opens a ticket and adds two replies: sequences 1, 2, 3.
async fn ticket_with_three_events(app: &TestApp) -> String {
    let id = app.open_ticket().await;
    for body in ["first reply", "second reply"] {
        let path = format!("/api/v1/tickets/{id}/interactions");
        let response = app.send(Method::POST, &path, json!({"body": body})).await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    id
}

/// Runs `statement` against the app's database, as a tamperer would.
async fn tamper(app: &TestApp, statement: &str, ticket: &str) {
    let changed = sqlx::query(statement)
        .bind(ticket)
        .execute(&app.pool)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(changed, 1, "{statement}");
}

/// The broken links of a full verification, as (aggregate id, sequence, problem).
async fn broken_links(app: &TestApp) -> Vec<(String, i64, ChainProblem)> {
    let report = audit::verify_store(&app.pool, 2, |_| {}).await.unwrap();
    report
        .broken
        .iter()
        .map(|link| (link.aggregate_id.clone(), link.sequence, link.problem))
        .collect()
}

/// GET /api/v1/audit/verify for a ticket, as an auditor.
async fn verify_over_http(app: &TestApp, ticket: &str) -> Value {
    let response = app
        .as_actor(
            Method::GET,
            &format!("/api/v1/audit/verify?aggregate_id={ticket}"),
            "auditor-1",
            "auditor",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// Waits (up to 30 s) until every transaction that wrote events has finished, so that an
/// anchor written now covers them all (other tests share the server's transaction horizon).
async fn wait_until_every_writer_finished(app: &TestApp) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let pending: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM events \
                             WHERE tx_id >= pg_snapshot_xmin(pg_current_snapshot()))",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();
        if !pending {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "writers still running"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_untouched_store_verifies_clean_and_every_read_carries_the_hash() {
    let app = TestApp::spawn().await;
    let relay = app.start_relay();
    let mut tickets = Vec::new();
    for _ in 0..3 {
        tickets.push(ticket_with_three_events(&app).await);
    }
    wait_until_every_writer_finished(&app).await;
    let anchor = audit::write_anchor(&app.pool).await.unwrap();
    assert_eq!(anchor.anchor.aggregates, 3);

    let report = audit::verify_store(&app.pool, 2, |_| {}).await.unwrap();
    assert!(report.is_clean(), "{:?}", report.broken);
    assert_eq!(
        (report.events, report.aggregates),
        (10, 4),
        "with the anchor"
    );
    assert!(matches!(
        report.anchor,
        AnchorCheck::Matches { sequence: 1, .. }
    ));
    let over_http = verify_over_http(&app, &tickets[0]).await;
    assert_eq!(
        over_http,
        json!({"aggregate_type": "Ticket", "aggregate_id": tickets[0], "events": 3,
               "clean": true, "first_broken": null})
    );

    // The stream, the audit feed and the history carry each event's stored hash.
    let stored: String = sqlx::query_scalar(
        "SELECT encode(hash, 'hex') FROM events WHERE aggregate_id = $1 AND sequence = 2",
    )
    .bind(&tickets[0])
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let published = app.stream_messages(10).await;
    let envelope = &published
        .iter()
        .find(|(_, id, _)| id == &format!("Ticket:{}:2", tickets[0]))
        .unwrap()
        .2;
    assert_eq!(envelope.hash.as_deref(), Some(stored.as_str()));
    assert!(
        published.iter().any(
            |(subject, _, e)| subject.ends_with(".events.AuditAnchor.anchor")
                && e.event_type == "AuditAnchored"
                && e.payload["aggregates"] == 3
        ),
        "the anchor is published like any event"
    );
    let feed: Value = app
        .as_actor(Method::GET, "/api/v1/audit/events", "auditor-1", "auditor")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        feed["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["hash"] == stored.as_str())
    );
    let history: Value = app
        .request(
            Method::GET,
            &format!("/api/v1/tickets/{}/history", tickets[0]),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(history[1]["hash"], stored.as_str());
    relay.abort();
    app.delete_stream().await;
}

#[tokio::test]
async fn changing_one_byte_of_a_payload_is_a_hash_mismatch_at_that_event() {
    let app = TestApp::spawn().await;
    let untouched = ticket_with_three_events(&app).await;
    let ticket = ticket_with_three_events(&app).await;
    tamper(
        &app,
        "UPDATE events SET payload = regexp_replace(payload::text, 'first', 'firsT')::json \
          WHERE aggregate_id = $1 AND sequence = 2",
        &ticket,
    )
    .await;

    assert_eq!(
        broken_links(&app).await,
        [(ticket.clone(), 2, ChainProblem::HashMismatch)]
    );
    let over_http = verify_over_http(&app, &ticket).await;
    assert_eq!(over_http["clean"], false);
    assert_eq!(over_http["events"], 3);
    assert_eq!(over_http["first_broken"]["sequence"], 2);
    assert_eq!(over_http["first_broken"]["problem"], "hash-mismatch");
    assert_eq!(verify_over_http(&app, &untouched).await["clean"], true);
}

#[tokio::test]
async fn deleting_a_middle_event_is_a_missing_event_at_its_sequence() {
    let app = TestApp::spawn().await;
    let ticket = ticket_with_three_events(&app).await;
    tamper(
        &app,
        "DELETE FROM events WHERE aggregate_id = $1 AND sequence = 2",
        &ticket,
    )
    .await;

    assert_eq!(
        broken_links(&app).await,
        [(ticket.clone(), 2, ChainProblem::MissingEvent)]
    );
    let over_http = verify_over_http(&app, &ticket).await;
    assert_eq!(over_http["first_broken"]["sequence"], 2);
    assert_eq!(over_http["first_broken"]["problem"], "missing-event");
}

#[tokio::test]
async fn rewriting_a_stored_hash_is_a_broken_chain_at_that_event() {
    let app = TestApp::spawn().await;
    let ticket = ticket_with_three_events(&app).await;
    tamper(
        &app,
        "UPDATE events SET hash = sha256(hash) WHERE aggregate_id = $1 AND sequence = 2",
        &ticket,
    )
    .await;

    assert_eq!(
        broken_links(&app).await,
        [(ticket.clone(), 2, ChainProblem::BrokenChain)]
    );
    let over_http = verify_over_http(&app, &ticket).await;
    assert_eq!(over_http["first_broken"]["problem"], "broken-chain");
}

#[tokio::test]
async fn deleting_a_tickets_last_event_is_caught_by_the_anchor() {
    let app = TestApp::spawn().await;
    let ticket = ticket_with_three_events(&app).await;
    ticket_with_three_events(&app).await;
    wait_until_every_writer_finished(&app).await;
    let anchor = audit::write_anchor(&app.pool).await.unwrap();
    tamper(
        &app,
        "DELETE FROM events WHERE aggregate_id = $1 AND sequence = 3",
        &ticket,
    )
    .await;

    // What is left of the ticket's chain is intact: only the anchor knows.
    assert_eq!(verify_over_http(&app, &ticket).await["clean"], true);
    let report = audit::verify_store(&app.pool, 2, |_| {}).await.unwrap();
    assert_eq!(report.broken.len(), 1, "{:?}", report.broken);
    let link = &report.broken[0];
    assert_eq!(link.problem, ChainProblem::AnchorMismatch);
    assert_eq!(
        (link.aggregate_type.as_str(), link.sequence),
        ("AuditAnchor", anchor.sequence)
    );
}

#[tokio::test]
async fn deleting_a_whole_ticket_is_caught_by_the_anchor() {
    let app = TestApp::spawn().await;
    let ticket = ticket_with_three_events(&app).await;
    wait_until_every_writer_finished(&app).await;
    audit::write_anchor(&app.pool).await.unwrap();
    sqlx::query("DELETE FROM events WHERE aggregate_id = $1")
        .bind(&ticket)
        .execute(&app.pool)
        .await
        .unwrap();

    let links = broken_links(&app).await;
    assert_eq!(
        links,
        [("anchor".to_owned(), 1, ChainProblem::AnchorMismatch)]
    );
}

#[tokio::test]
async fn an_anchor_is_due_only_when_events_were_added_since_the_last() {
    let app = TestApp::spawn().await;
    assert!(audit::anchor_if_due(&app.pool).await.unwrap().is_none());
    ticket_with_three_events(&app).await;
    wait_until_every_writer_finished(&app).await;
    let first = audit::anchor_if_due(&app.pool).await.unwrap().unwrap();
    assert_eq!(first.sequence, 1);
    wait_until_every_writer_finished(&app).await;
    assert!(
        audit::anchor_if_due(&app.pool).await.unwrap().is_none(),
        "an anchor alone does not make another due"
    );
    app.open_ticket().await;
    wait_until_every_writer_finished(&app).await;
    let second = audit::anchor_if_due(&app.pool).await.unwrap().unwrap();
    assert_eq!((second.sequence, second.anchor.aggregates), (2, 3));
}

#[tokio::test]
async fn a_store_walked_on_several_connections_reports_what_one_connection_reports() {
    let app = TestApp::spawn().await;
    // 6,000 aggregates of 10 events: enough for the walk to split into key ranges.
    for sequence in 1..=10_i64 {
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                                 event_version, payload, metadata) \
             SELECT 'Ticket', 'bulk-' || t, $1, 'Noted', '1', json_build_object('n', t), '{}' \
               FROM generate_series(1, 6000) AS t",
        )
        .bind(sequence)
        .execute(&app.pool)
        .await
        .unwrap();
    }
    for (statement, ticket) in [
        (
            "UPDATE events SET payload = '{\"n\": 0}' WHERE aggregate_id = $1 AND sequence = 4",
            "bulk-17",
        ),
        (
            "DELETE FROM events WHERE aggregate_id = $1 AND sequence = 6",
            "bulk-4242",
        ),
        (
            "UPDATE events SET hash = sha256(hash) WHERE aggregate_id = $1 AND sequence = 2",
            "bulk-5999",
        ),
    ] {
        tamper(&app, statement, ticket).await;
    }

    let one = audit::verify_store(&app.pool, 1, |_| {}).await.unwrap();
    let mut walked = 0;
    let four = audit::verify_store(&app.pool, 4, |progress| walked = progress.done)
        .await
        .unwrap();
    assert_eq!((four.events, four.aggregates), (59_999, 6_000));
    assert_eq!((one.events, one.aggregates), (four.events, four.aggregates));
    assert_eq!(walked, 59_999, "progress counts every range");
    assert_eq!(one.broken, four.broken);
    let found: Vec<(&str, i64, ChainProblem)> = four
        .broken
        .iter()
        .map(|link| (link.aggregate_id.as_str(), link.sequence, link.problem))
        .collect();
    assert_eq!(
        found,
        [
            ("bulk-17", 4, ChainProblem::HashMismatch),
            ("bulk-4242", 6, ChainProblem::MissingEvent),
            ("bulk-5999", 2, ChainProblem::BrokenChain),
        ]
    );
}

#[tokio::test]
async fn events_appended_in_one_statement_chain_and_a_gap_is_refused() {
    let app = TestApp::spawn().await;
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
                             payload, metadata) \
         SELECT 'Ticket', 'batch', s, 'Noted', '1', json_build_object('n', s), '{}' \
           FROM generate_series(1, 5) AS s",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let report = audit::verify_aggregate(&app.pool, "Ticket", "batch")
        .await
        .unwrap();
    assert_eq!((report.events, report.first_broken), (5, None));

    let refused = sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
                             payload, metadata) \
         VALUES ('Ticket', 'batch', 7, 'Noted', '1', '{}', '{}')",
    )
    .execute(&app.pool)
    .await
    .unwrap_err();
    assert!(
        refused.to_string().contains("has no predecessor"),
        "{refused}"
    );
}

#[tokio::test]
async fn an_outside_tool_recomputes_the_hash_from_the_documented_canonical_form() {
    // docs/audit-hash-chain.md: hash = SHA-256(previous hash ‖ UTF-8 of the jsonb text of
    // [aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata]),
    // keys by length then bytes, ": " and ", " separators, numbers as Postgres prints them.
    let app = TestApp::spawn().await;
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
                             payload, metadata) \
         VALUES ('Ticket', 'doc', 1, 'Noted', '1', \
                 '{\"zz\":1.50, \"b\" : [true,null,\"é\\n\\\"\"], \"aa\": 1e2, \"a\": {}}', \
                 '{\"actor_id\":\"x\"}'), \
                ('Ticket', 'doc', 2, 'Noted', '1', '{}', '{}')",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let canonical_1 = "[\"Ticket\", \"doc\", 1, \"Noted\", \"1\", \
                       {\"a\": {}, \"b\": [true, null, \"é\\n\\\"\"], \"aa\": 100, \"zz\": 1.50}, \
                       {\"actor_id\": \"x\"}]";
    let canonical_2 = "[\"Ticket\", \"doc\", 2, \"Noted\", \"1\", {}, {}]";
    let first = Sha256::new()
        .chain_update([0u8; 32])
        .chain_update(canonical_1.as_bytes())
        .finalize();
    let second = Sha256::new()
        .chain_update(first)
        .chain_update(canonical_2.as_bytes())
        .finalize();

    let stored: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT hash FROM events WHERE aggregate_id = 'doc' ORDER BY sequence")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(stored, [first.to_vec(), second.to_vec()]);
}

#[tokio::test]
async fn the_verify_endpoint_needs_an_aggregate_id_and_knows_no_empty_aggregate() {
    let app = TestApp::spawn().await;
    let as_auditor = |path: &str| {
        app.as_actor(Method::GET, path, "auditor-1", "auditor")
            .send()
    };
    let missing = as_auditor("/api/v1/audit/verify").await.unwrap();
    expect_problem(missing, StatusCode::BAD_REQUEST, "invalid-parameter").await;
    let unknown = as_auditor("/api/v1/audit/verify?aggregate_id=nothing-here")
        .await
        .unwrap();
    expect_problem(unknown, StatusCode::NOT_FOUND, "aggregate-not-found").await;
    let agent = app
        .request(Method::GET, "/api/v1/audit/verify?aggregate_id=x")
        .send()
        .await
        .unwrap();
    expect_problem(agent, StatusCode::FORBIDDEN, "forbidden").await;
}

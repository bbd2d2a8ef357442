//! End to end: the operator runs `helpdesk audit anchor` and `helpdesk audit verify` against
//! a store, and a store edited behind the helpdesk's back makes `verify` fail and say where.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::time::Duration;

use helpdesk_tests::{Product, helpdesk_binary, postgres_server_url};
use serde_json::json;
use tokio::process::Command;

/// Runs `helpdesk <args>` against `database_url`: (success, stdout, stderr).
async fn helpdesk(database_url: &str, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(helpdesk_binary())
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn verify_passes_on_an_untouched_store_and_fails_naming_the_edited_event() {
    let database = helpdesk_platform::db::create_scratch_database(&postgres_server_url())
        .await
        .unwrap();
    let url = database.expose();
    let pool = helpdesk_platform::db::connect(&database, 2).await.unwrap();
    for sequence in 1..=3_i64 {
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                                 event_version, payload, metadata) \
             SELECT 'Ticket', 'cli-' || t, $1, 'Noted', '1', \
                    json_build_object('Noted', json_build_object('text', 'note ' || $1)), '{}' \
               FROM generate_series(1, 5) AS t",
        )
        .bind(sequence)
        .execute(&pool)
        .await
        .unwrap();
    }

    let (ok, stdout, stderr) = helpdesk(url, &["audit", "anchor"]).await;
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("anchor #1 "), "{stdout}");
    let (ok, stdout, stderr) = helpdesk(url, &["audit", "verify"]).await;
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("16 events in 6 aggregates verified") && stdout.contains(": clean"),
        "{stdout}"
    );
    assert!(stderr.contains("100.0%"), "a progress bar: {stderr}");

    sqlx::query(
        "UPDATE events SET payload = regexp_replace(payload::text, 'note', 'nota')::json \
          WHERE aggregate_id = 'cli-3' AND sequence = 2",
    )
    .execute(&pool)
    .await
    .unwrap();
    let (ok, stdout, _) = helpdesk(url, &["audit", "verify"]).await;
    assert!(!ok, "a tampered store fails verification");
    assert!(
        stdout.contains("broken: Ticket cli-3 sequence 2: hash-mismatch"),
        "{stdout}"
    );
    assert!(stdout.contains(": 1 broken"), "{stdout}");
    let (ok, stdout, _) = helpdesk(url, &["audit", "verify", "--aggregate", "cli-3"]).await;
    assert!(!ok);
    assert!(stdout.contains("sequence 2: hash-mismatch"), "{stdout}");
    let (ok, _, _) = helpdesk(url, &["audit", "verify", "--aggregate", "cli-4"]).await;
    assert!(ok, "another ticket is intact");
}

#[tokio::test]
async fn helpdesk_up_anchors_the_store_every_interval_once_events_were_added() {
    let database = helpdesk_platform::db::scratch_database_url(&postgres_server_url())
        .await
        .unwrap();
    let product = Product::start_with(
        database.expose(),
        &[
            ("HELPDESK_AUDIT_ANCHOR_SECS", "1"),
            ("HELPDESK_RELAY", "off"),
        ],
    )
    .await;
    let agent = product.token("agent", "agent-1").await;
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/tickets", product.url))
        .bearer_auth(&agent)
        .json(&json!({"subject": "Anchor me", "channel": "web",
                      "requester": {"customer_id": "cust-1"}}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());

    let pool = helpdesk_platform::db::connect(&database, 1).await.unwrap();
    let anchors = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM events WHERE aggregate_type = 'AuditAnchor'",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while anchors().await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no anchor within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Nothing new since: the next intervals write no further anchor.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(anchors().await, 1);
    product.stop().await;
    let (ok, stdout, stderr) = helpdesk(database.expose(), &["audit", "verify"]).await;
    assert!(ok, "{stderr}");
    assert!(stdout.contains("anchor: #1 (1 chain heads"), "{stdout}");
}

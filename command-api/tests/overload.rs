//! Overload is a 503 with `Retry-After` that changes nothing, never a 500: `overloaded` for the
//! request past the in-flight bound, `database-unavailable` for a request that waited out the
//! pool's acquire timeout. Against the real app, Postgres and NATS.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::time::Duration;

use reqwest::{Method, Response, StatusCode};
use support::{TestApp, Tuning, expect_problem, sample_ticket};

async fn expect_unavailable(response: Response, slug: &str) {
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap()),
        Some("1"),
        "an overloaded answer says when to come back"
    );
    expect_problem(response, StatusCode::SERVICE_UNAVAILABLE, slug).await;
}

/// Polls `condition` every 10 ms for up to 10 s.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_request_past_the_in_flight_bound_is_turned_away_and_changes_nothing() {
    let app = TestApp::spawn_tuned(Tuning {
        max_in_flight: Some(1),
        ..Tuning::default()
    })
    .await;
    // Another session holds the events table, so the first command waits at its append,
    // inside the bound.
    let mut blocker = app.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE events IN EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let open = || {
        app.request(Method::POST, "/api/v1/tickets")
            .json(&sample_ticket())
    };
    let first = tokio::spawn(open().send());
    let in_flight = app.state.in_flight.clone();
    eventually("the first command is in flight", || {
        in_flight.current() == 1
    })
    .await;

    let second = open().send().await.unwrap();
    expect_unavailable(second, "overloaded").await;
    let read = app
        .request(Method::GET, "/api/v1/tickets/no-such-ticket")
        .send()
        .await
        .unwrap();
    expect_unavailable(read, "overloaded").await;
    // Probes and metrics are outside the bound: an operator still sees the shedding server.
    assert_eq!(app.probe("/healthz").await.status(), StatusCode::OK);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("helpdesk_http_requests_turned_away 2"),
        "{metrics}"
    );
    assert!(metrics.contains("helpdesk_http_requests_in_flight 1"));

    blocker.commit().await.unwrap();
    let first = first.await.unwrap().unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    assert_eq!(
        app.event_count().await,
        1,
        "only the admitted command wrote"
    );

    // The place is free again: the same request goes through.
    let again = open().send().await.unwrap();
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(app.event_count().await, 2);
}

#[tokio::test]
async fn a_request_that_waits_out_the_pool_is_503_and_its_idempotency_key_stays_usable() {
    let app = TestApp::spawn_tuned(Tuning {
        pool: Some((2, Duration::from_millis(300))),
        ..Tuning::default()
    })
    .await;
    let id = app.open_ticket().await;
    let events_before = app.event_count().await;
    // Every connection of the app's pool taken.
    let held = [
        app.pool.acquire().await.unwrap(),
        app.pool.acquire().await.unwrap(),
    ];

    let command = || {
        app.request(Method::POST, &format!("/api/v1/tickets/{id}/interactions"))
            .header("idempotency-key", "reply-under-load")
            .json(&serde_json::json!({"body": "On it.", "visibility": "public"}))
    };
    // Without a key the command itself waits for a connection (to load the ticket) ...
    let unkeyed = app
        .request(Method::POST, &format!("/api/v1/tickets/{id}/interactions"))
        .json(&serde_json::json!({"body": "On it.", "visibility": "public"}))
        .send()
        .await
        .unwrap();
    expect_unavailable(unkeyed, "database-unavailable").await;
    // ... with one, it waits already to reserve the key.
    expect_unavailable(command().send().await.unwrap(), "database-unavailable").await;
    let read = app
        .request(Method::GET, &format!("/api/v1/tickets/{id}/history"))
        .send()
        .await
        .unwrap();
    expect_unavailable(read, "database-unavailable").await;

    drop(held);
    assert_eq!(
        app.event_count().await,
        events_before,
        "nothing was written"
    );
    let retried = command().send().await.unwrap();
    assert_eq!(
        retried.status(),
        StatusCode::CREATED,
        "the key was not left reserved"
    );
    assert_eq!(app.event_count().await, events_before + 1);
    let replayed = command().send().await.unwrap();
    assert_eq!(replayed.status(), StatusCode::CREATED);
    assert_eq!(
        app.event_count().await,
        events_before + 1,
        "and it still runs once"
    );
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"outcome="unavailable""#),
        "the command is counted as unavailable: {metrics}"
    );
}

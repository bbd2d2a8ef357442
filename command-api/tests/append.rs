//! The ticket append is one statement of ours (ADR 0011): several events land in order with
//! their hash chain intact, the caller learns the last one's position, and a second writer of
//! the same sequence is the optimistic-lock conflict. Against the real Postgres.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use cqrs_es::persist::{PersistedEventRepository, PersistenceError, SerializedEvent};
use std::time::Duration;

use helpdesk_command_api::store::{
    TicketRepository, appending, on_one_connection, release_connection,
};
use helpdesk_domain::ticket::Ticket;
use serde_json::json;
use support::TestApp;

fn event(
    ticket: &str,
    sequence: usize,
    event_type: &str,
    payload: serde_json::Value,
) -> SerializedEvent {
    SerializedEvent::new(
        ticket.to_owned(),
        sequence,
        "Ticket".to_owned(),
        event_type.to_owned(),
        "1.0".to_owned(),
        payload,
        json!({"actor_id": "agent-1"}),
    )
}

#[tokio::test]
async fn several_events_append_in_order_chained_and_the_last_position_is_returned() {
    let app = TestApp::spawn().await;
    let repository = TicketRepository::new(app.pool.clone());
    let ticket = "7a3c1d52-0000-4000-8000-000000000001";
    let events = [
        event(ticket, 1, "TicketOpened", json!({"subject": "one"})),
        event(ticket, 2, "ReplyAdded", json!({"body": "two"})),
        event(ticket, 3, "ReplyAdded", json!({"body": "three"})),
    ];
    let (persisted, position) = appending(repository.persist::<Ticket>(&events, None)).await;
    persisted.unwrap();

    let rows: Vec<(i64, i64, String)> = sqlx::query_as(
        "SELECT sequence, global_position, payload::text FROM events \
         WHERE aggregate_id = $1 ORDER BY sequence",
    )
    .bind(ticket)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 3);
    assert!(
        rows.windows(2).all(|pair| pair[0].1 < pair[1].1),
        "positions follow the sequence: {rows:?}"
    );
    assert_eq!(position, Some(rows[2].1), "the last event's position");
    assert!(rows[1].2.contains("two"));
    let chain = helpdesk_platform::audit::verify_aggregate(&app.pool, "Ticket", ticket)
        .await
        .unwrap();
    assert_eq!(chain.events, 3);
    assert!(chain.first_broken.is_none(), "{:?}", chain.first_broken);

    // Outside `appending` the append works the same and nobody is told a position.
    let more = [event(ticket, 4, "ReplyAdded", json!({"body": "four"}))];
    repository.persist::<Ticket>(&more, None).await.unwrap();

    // A writer that read the ticket at version 3 too collides on sequence 4 and writes nothing.
    let stale = [event(ticket, 4, "ReplyAdded", json!({"body": "late"}))];
    let conflict = repository.persist::<Ticket>(&stale, None).await;
    assert!(
        matches!(conflict, Err(PersistenceError::OptimisticLockError)),
        "{conflict:?}"
    );
    assert_eq!(app.event_count().await, 4);
}

#[tokio::test]
async fn a_commands_load_and_append_share_one_connection_until_it_ends_or_lets_go() {
    let app = TestApp::spawn().await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(2))
        .connect_with((*app.pool.connect_options()).clone())
        .await
        .unwrap();
    let repository = TicketRepository::new(pool.clone());
    let ticket = "7a3c1d52-0000-4000-8000-000000000002";
    let opened = [event(ticket, 1, "TicketOpened", json!({"subject": "one"}))];
    on_one_connection(async {
        assert!(
            repository
                .get_events::<Ticket>(ticket)
                .await
                .unwrap()
                .is_empty()
        );
        let other = pool.acquire().await.unwrap();
        assert!(
            pool.try_acquire().is_none(),
            "the load's connection stays with the command"
        );
        // The append goes through that connection: it needs no third one.
        let (persisted, position) = appending(repository.persist::<Ticket>(&opened, None)).await;
        persisted.unwrap();
        assert!(position.is_some());
        let events = repository.get_events::<Ticket>(ticket).await.unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event_type, "TicketOpened");
        assert_eq!(events[0].payload, json!({"subject": "one"}));
        assert_eq!(events[0].metadata, json!({"actor_id": "agent-1"}));
        drop(other);

        // Letting go returns it to the pool at once.
        release_connection();
        let first = pool.acquire().await.unwrap();
        let second = pool.acquire().await.unwrap();
        drop((first, second));
    })
    .await;
    // After the scope both connections are the pool's again.
    let first = pool.acquire().await.unwrap();
    let second = pool.acquire().await.unwrap();
    drop((first, second));
}

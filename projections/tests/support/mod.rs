//! Harness: a scratch database, the real NATS, the real relay and command executor.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use helpdesk_command_api::AppState;
use helpdesk_command_api::execute::execute;
use helpdesk_command_api::extract::{IfMatch, RequestContext};
use helpdesk_command_api::relay::{Relay, RelaySettings};
use helpdesk_domain::ticket::{
    AddInteraction, ChangeTags, Channel, OpenTicket, Priority, Requester, Status, TicketCommand,
    Visibility,
};
use helpdesk_domain::{Principal, Role};
use helpdesk_platform::AuthConfig;
use helpdesk_platform::auth::Verifier;
use serde_json::Value;
use sqlx::PgPool;

pub struct Harness {
    pub state: AppState,
    pub pool: PgPool,
    pub prefix: String,
}

impl Harness {
    pub async fn start() -> Harness {
        let server = std::env::var("HELPDESK_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let database = helpdesk_platform::db::create_scratch_database(&server)
            .await
            .unwrap();
        let pool = helpdesk_platform::db::connect(&database, 20).await.unwrap();
        let nats_url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
        let nats = helpdesk_platform::nats::connect(&nats_url).await.unwrap();
        let verifier = Verifier::with_hs256_secret(
            b"unused-unused-unused-unused-unused",
            &AuthConfig::default(),
        );
        let state = AppState::new(
            pool.clone(),
            nats,
            Duration::from_secs(60),
            Arc::new(verifier),
        );
        let prefix = format!("p{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        Harness {
            state,
            pool,
            prefix,
        }
    }

    pub fn nats(&self) -> async_nats::Client {
        self.state.nats.clone()
    }

    pub fn start_relay(&self) -> tokio::task::JoinHandle<()> {
        let relay = Relay::new(
            self.pool.clone(),
            self.state.nats.clone(),
            RelaySettings {
                prefix: self.prefix.clone(),
                poll_interval: Duration::from_millis(50),
                batch_size: 256,
            },
            self.state.relay_wakeup.clone(),
            self.state.metrics.clone(),
        );
        tokio::spawn(relay.run())
    }

    /// Runs one command as an admin; panics unless it is accepted.
    pub async fn command(&self, ticket: &str, command: TicketCommand) {
        let admin = Principal {
            id: "admin-1".into(),
            role: Role::Admin,
            groups: vec![],
            customer_id: None,
        };
        let context = RequestContext {
            request_id: uuid::Uuid::now_v7().to_string(),
            correlation_id: "test".into(),
            causation_id: "test".into(),
        };
        execute(
            &self.state,
            ticket,
            &IfMatch::Absent,
            command,
            &admin,
            &context,
        )
        .await
        .unwrap();
    }

    /// Opens a ticket and works it a little (4 events); returns its id.
    pub async fn worked_ticket(&self, n: usize) -> String {
        let id = uuid::Uuid::now_v7().to_string();
        self.command(&id, open(&id, n)).await;
        self.command(&id, TicketCommand::ChangeStatus { to: Status::Open })
            .await;
        let tags = ChangeTags {
            add: vec![format!("t{}", n % 7)],
            remove: vec!["start".into()],
        };
        self.command(&id, TicketCommand::ChangeTags(tags)).await;
        self.command(&id, reply(n)).await;
        id
    }

    /// Every event count in the store.
    pub async fn event_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// Every event of the store in commit order, as the relay reads them. The relay's read
    /// holds back events committed after the oldest transaction still open on the server, in
    /// any database (`pg_snapshot_xmin` is cluster-wide), so another test's long transaction (a
    /// rebuild) can hide the latest ones for a while: read until all of them are there (180 s).
    pub async fn committed_envelopes(&self) -> Vec<helpdesk_schemas::EventEnvelope> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
        loop {
            let stored = self.event_count().await;
            let batch = helpdesk_platform::event_log::next_batch(
                &self.pool,
                helpdesk_platform::event_log::Cursor::default(),
                1_000_000,
            )
            .await
            .unwrap();
            if i64::try_from(batch.len()).unwrap() == stored {
                return batch.into_iter().map(|pending| pending.envelope).collect();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} of {stored} events readable after 180 s",
                batch.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The whole ticket_summary table as JSON rows, ordered.
    pub async fn summary(&self) -> Vec<Value> {
        sqlx::query_scalar("SELECT to_jsonb(s) FROM ticket_summary s ORDER BY ticket_id")
            .fetch_all(&self.pool)
            .await
            .unwrap()
    }

    /// Waits (up to 60 s) until ticket_summary reflects every event in the store.
    pub async fn wait_until_projected(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let behind: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM (SELECT aggregate_id, max(sequence) AS version FROM events \
                 GROUP BY aggregate_id) e LEFT JOIN ticket_summary s ON s.ticket_id = e.aggregate_id \
                 WHERE s.last_sequence IS DISTINCT FROM e.version",
            )
            .fetch_one(&self.pool)
            .await
            .unwrap();
            if behind == 0 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{behind} tickets not projected within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn delete_streams(&self) {
        let js = async_nats::jetstream::new(self.state.nats.clone());
        let upper = self.prefix.to_uppercase();
        let _ = js.delete_stream(format!("{upper}_EVENTS")).await;
        let _ = js.delete_stream(format!("{upper}_DLQ")).await;
    }
}

pub fn open(id: &str, n: usize) -> TicketCommand {
    TicketCommand::Open(OpenTicket {
        ticket_id: id.to_owned(),
        subject: format!("ticket {n}"),
        description: "generated".into(),
        priority: Priority::Normal,
        channel: Channel::Web,
        requester: Requester {
            customer_id: format!("c{}", n % 10),
            name: None,
            email: None,
        },
        tags: vec!["start".into()],
        group: None,
    })
}

pub fn reply(n: usize) -> TicketCommand {
    TicketCommand::AddInteraction(AddInteraction {
        interaction_id: uuid::Uuid::now_v7().to_string(),
        author: helpdesk_domain::Actor::new("agent-1", Role::Agent),
        visibility: Visibility::Public,
        body: format!("reply {n}"),
    })
}

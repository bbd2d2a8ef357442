//! What every handler shares: the pool, the event store, NATS, metrics, settings.

use std::sync::Arc;
use std::time::Duration;

use cqrs_es::persist::PersistedEventStore;
use helpdesk_domain::ticket::Ticket;
use postgres_es::PostgresEventRepository;
use sqlx::PgPool;

use helpdesk_platform::auth::Verifier;

use crate::metrics::Metrics;

/// The postgres-es event store for tickets.
pub type TicketStore = PersistedEventStore<PostgresEventRepository, Ticket>;

/// Shared application state; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The Postgres pool (event store, idempotency keys).
    pub pool: PgPool,
    /// The ticket event store.
    pub store: Arc<TicketStore>,
    /// The NATS connection (readiness now; the relay later).
    pub nats: async_nats::Client,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// How long an `Idempotency-Key` is remembered.
    pub idempotency_ttl: Duration,
    /// Verifies bearer tokens; also knows the agent scope.
    pub verifier: Arc<Verifier>,
    /// Wakes the relay when this process committed events.
    pub relay_wakeup: Arc<tokio::sync::Notify>,
}

impl AppState {
    /// Wires the state from its connections.
    pub fn new(
        pool: PgPool,
        nats: async_nats::Client,
        idempotency_ttl: Duration,
        verifier: Arc<Verifier>,
    ) -> Self {
        let repository = PostgresEventRepository::new(pool.clone());
        AppState {
            store: Arc::new(PersistedEventStore::new_event_store(repository)),
            pool,
            nats,
            metrics: Arc::new(Metrics::new()),
            idempotency_ttl,
            verifier,
            relay_wakeup: Arc::new(tokio::sync::Notify::new()),
        }
    }
}

impl axum::extract::FromRef<AppState> for Arc<Verifier> {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}

impl axum::extract::FromRef<AppState> for PgPool {
    fn from_ref(state: &AppState) -> Self {
        state.pool.clone()
    }
}

//! What every handler shares: the pool, the event store, NATS, metrics, settings.

use helpdesk_query_api::realtime::Realtime;
use helpdesk_search::projection::SearchReader;
use helpdesk_search::rebuild::SearchAdmin;
use std::sync::Arc;
use std::time::Duration;

use cqrs_es::persist::PersistedEventStore;
use helpdesk_domain::ticket::Ticket;
use sqlx::PgPool;

use helpdesk_platform::auth::Verifier;
use helpdesk_platform::overload::InFlight;
use helpdesk_platform::pipeline::Pipeline;
use helpdesk_projections::sla::FoldStats;

use crate::metrics::Metrics;
use crate::store::TicketRepository;

/// The event store for tickets (cqrs-es; reads by postgres-es, the append ours: `store`).
pub type TicketStore = PersistedEventStore<TicketRepository, Ticket>;

/// Shared application state; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The Postgres pool (event store, idempotency keys).
    pub pool: PgPool,
    /// The ticket event store.
    pub store: Arc<TicketStore>,
    /// The NATS connection (readiness, the relay, pipeline status).
    pub nats: async_nats::Client,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// How long an `Idempotency-Key` is remembered.
    pub idempotency_ttl: Duration,
    /// Verifies bearer tokens; also knows the agent scope.
    pub verifier: Arc<Verifier>,
    /// Wakes the relay when this process committed events.
    pub relay_wakeup: Arc<tokio::sync::Notify>,
    /// The event pipeline, for operators' status reads.
    pub pipeline: Arc<Pipeline>,
    /// The search index this process serves, when it runs one.
    pub search: Option<SearchReader>,
    /// Rebuilds of that index, when this process also runs its projector.
    pub search_admin: Option<SearchAdmin>,
    /// The real-time feed this process serves, when it runs one.
    pub realtime: Option<Realtime>,
    /// The bound on API requests handled at once (`admission`).
    pub in_flight: Arc<InFlight>,
    /// What this process's report count folder did, when it runs one.
    pub count_folder: Option<Arc<FoldStats>>,
}

impl AppState {
    /// Wires the state from its connections.
    pub fn new(
        pool: PgPool,
        nats: async_nats::Client,
        idempotency_ttl: Duration,
        verifier: Arc<Verifier>,
    ) -> Self {
        let repository = TicketRepository::new(pool.clone());
        AppState {
            nats: nats.clone(),
            store: Arc::new(
                PersistedEventStore::new_event_store(repository)
                    .with_upcasters(helpdesk_domain::ticket::upcast::upcasters()),
            ),
            pool,
            metrics: Arc::new(Metrics::new()),
            idempotency_ttl,
            verifier,
            relay_wakeup: Arc::new(tokio::sync::Notify::new()),
            pipeline: Arc::new(Pipeline {
                nats: nats.clone(),
                prefix: "helpdesk".into(),
                projections: Vec::new(),
            }),
            search: None,
            search_admin: None,
            realtime: None,
            in_flight: Arc::new(InFlight::new(
                helpdesk_platform::config::defaults::MAX_IN_FLIGHT,
            )),
            count_folder: None,
        }
    }
}

impl AppState {
    /// Names the NATS prefix and the projections this process reports on.
    pub fn with_pipeline(mut self, prefix: &str, projections: Vec<String>) -> Self {
        self.pipeline = Arc::new(Pipeline {
            nats: self.nats.clone(),
            prefix: prefix.to_owned(),
            projections,
        });
        self
    }
}

impl AppState {
    /// Lets admins rebuild the index this process serves and projects.
    pub fn with_search_admin(mut self, admin: SearchAdmin) -> Self {
        self.search_admin = Some(admin);
        self
    }

    /// Serves the real-time feed.
    pub fn with_realtime(mut self, realtime: Realtime) -> Self {
        self.realtime = Some(realtime);
        self
    }

    /// Handles at most `limit` API requests at once (`HELPDESK_MAX_IN_FLIGHT`).
    pub fn with_max_in_flight(mut self, limit: usize) -> Self {
        self.in_flight = Arc::new(InFlight::new(limit));
        self
    }

    /// Reports what this process's report count folder does at `/metrics`.
    pub fn with_count_folder(mut self, stats: Arc<FoldStats>) -> Self {
        self.count_folder = Some(stats);
        self
    }

    /// Serves searches from `reader`.
    pub fn with_search(mut self, reader: SearchReader) -> Self {
        self.search = Some(reader);
        self
    }
}

impl axum::extract::FromRef<AppState> for Option<SearchReader> {
    fn from_ref(state: &AppState) -> Self {
        state.search.clone()
    }
}

impl axum::extract::FromRef<AppState> for Option<Realtime> {
    fn from_ref(state: &AppState) -> Self {
        state.realtime.clone()
    }
}

impl axum::extract::FromRef<AppState> for Arc<Pipeline> {
    fn from_ref(state: &AppState) -> Self {
        state.pipeline.clone()
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

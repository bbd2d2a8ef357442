//! Real-time views: live ticket updates over WebSocket (`GET /api/v1/realtime`) and
//! Server-Sent Events (`GET /api/v1/realtime/sse`), with resume and presence.
//!
//! - [`feed`]: every instance reads the event stream on its own (an ordered, ephemeral
//!   JetStream consumer) and broadcasts each ticket event once, as an [`summary::Update`]
//!   (the ticket summary before and after), to its sessions;
//! - [`session`]: one client's subscriptions, the access policy applied to every push, and
//!   the replay from the event store that makes a reconnect lossless;
//! - [`presence`]: who is viewing or replying, shared across instances over core NATS;
//! - [`ws`] and [`sse`]: the two transports, each with a bounded outgoing buffer (a client
//!   that does not read is told `resync` and dropped) and heartbeats.
//!
//! The wire protocol is in [`protocol`] and `docs/api-guide.md`.

mod feed;
pub mod presence;
pub mod protocol;
mod session;
pub mod sse;
pub mod summary;
pub mod ws;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::broadcast;

use presence::Presence;
use summary::{Target, Update, updates_of};

use crate::error::QueryError;
use crate::tickets::events;

/// How the real-time feed behaves.
#[derive(Debug, Clone)]
pub struct RealtimeSettings {
    /// `HELPDESK_NATS_PREFIX`.
    pub prefix: String,
    /// The most events a resume may replay (`HELPDESK_REALTIME_REPLAY_LIMIT`); a client
    /// further behind gets `resync`.
    pub replay_limit: usize,
    /// Messages waiting for one client (`HELPDESK_REALTIME_BUFFER`); when full, the client is
    /// told `resync` and dropped.
    pub buffer: usize,
    /// How long one write to a client may take before the client is dropped.
    pub write_timeout: Duration,
    /// How often WebSocket clients are pinged; one silent for three intervals is dropped.
    pub ping_interval: Duration,
    /// Ticket summaries kept in memory to fold events without a read.
    pub summary_cache: usize,
}

impl RealtimeSettings {
    /// Defaults: replay up to 10,000 events, 128 queued messages per client, 10 s writes,
    /// pings every 15 s, 50,000 cached summaries.
    pub fn new(prefix: impl Into<String>) -> Self {
        RealtimeSettings {
            prefix: prefix.into(),
            replay_limit: 10_000,
            buffer: 128,
            write_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(15),
            summary_cache: 50_000,
        }
    }
}

/// Updates the feed holds for sessions that have not taken them yet; a session further
/// behind is told `resync`.
const BACKLOG: usize = 4096;

/// The real-time service of one instance; cheap to clone.
#[derive(Clone)]
pub struct Realtime {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pool: PgPool,
    settings: RealtimeSettings,
    live: Mutex<Live>,
    presence: Presence,
    connections: AtomicU64,
    open_sessions: AtomicU64,
    dropped: AtomicU64,
}

/// The position of the last broadcast update, changed together with the broadcast itself so
/// that a joining session knows exactly where its live updates begin.
struct Live {
    position: i64,
    sender: broadcast::Sender<Arc<Update>>,
}

impl Realtime {
    /// Starts the feed at the stream's current tail, and presence. Returns once both are
    /// subscribed, so that no event after the returned service exists is missed.
    pub async fn start(
        pool: PgPool,
        nats: async_nats::Client,
        settings: RealtimeSettings,
    ) -> Result<Realtime, String> {
        let js = async_nats::jetstream::new(nats.clone());
        let start = feed::tail(&js, &settings.prefix).await?;
        let presence = Presence::start(nats, &settings.prefix).await?;
        let (sender, _) = broadcast::channel(BACKLOG);
        let inner = Arc::new(Inner {
            pool,
            live: Mutex::new(Live {
                position: start.position,
                sender,
            }),
            settings,
            presence,
            connections: AtomicU64::new(0),
            open_sessions: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        });
        tokio::spawn(feed::run(inner.clone(), js, start));
        Ok(Realtime { inner })
    }

    /// The global position of the last event this instance pushed.
    pub fn position(&self) -> i64 {
        self.inner.position()
    }

    /// Connections open now, and connections dropped since start-up because they fell behind.
    pub fn stats(&self) -> RealtimeStats {
        RealtimeStats {
            open: self.inner.open_sessions.load(Ordering::Relaxed),
            dropped: self.inner.dropped.load(Ordering::Relaxed),
        }
    }
}

/// Counters of the real-time service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RealtimeStats {
    /// Sessions (WebSocket or SSE) open now.
    pub open: u64,
    /// Sessions dropped because they did not keep up (told `resync`).
    pub dropped: u64,
}

impl Inner {
    fn position(&self) -> i64 {
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .position
    }

    /// Broadcasts `update` and moves the position past it.
    fn publish(&self, update: Update) {
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        live.position = live.position.max(update.position);
        // No session listening is fine.
        let _ = live.sender.send(Arc::new(update));
    }

    /// Moves the position past an event that is not pushed.
    fn advance(&self, position: i64) {
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        live.position = live.position.max(position);
    }

    /// A receiver of every update after the returned position.
    fn join(&self) -> (i64, broadcast::Receiver<Arc<Update>>) {
        let live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        (live.position, live.sender.subscribe())
    }

    fn next_connection(&self) -> u64 {
        self.connections.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Every update of tickets in `target` (only its ticket, for a ticket target) with a
    /// position in `(since, up_to]`, in position order; `None` when more than the replay limit
    /// of events lie in between.
    async fn replay(
        &self,
        target: &Target,
        since: i64,
        up_to: i64,
    ) -> Result<Option<Vec<Update>>, QueryError> {
        if since >= up_to {
            return Ok(Some(Vec::new()));
        }
        let only = match target {
            Target::Ticket(id) => Some(id.as_str()),
            Target::Queue(_) => None,
        };
        let limit = i64::try_from(self.settings.replay_limit).unwrap_or(i64::MAX);
        let touched: Vec<String> = sqlx::query_scalar(
            "SELECT aggregate_id FROM events \
              WHERE aggregate_type = 'Ticket' AND global_position > $1 AND global_position <= $2 \
                AND ($3::text IS NULL OR aggregate_id = $3) \
              ORDER BY global_position LIMIT $4",
        )
        .bind(since)
        .bind(up_to)
        .bind(only)
        .bind(limit.saturating_add(1))
        .fetch_all(&self.pool)
        .await
        .map_err(QueryError::internal)?;
        if touched.len() > self.settings.replay_limit {
            return Ok(None);
        }
        let mut ids = touched;
        ids.sort();
        ids.dedup();
        let mut updates: Vec<Update> = events::load_many(&self.pool, &ids, up_to)
            .await?
            .iter()
            .flat_map(|history| updates_of(history))
            .filter(|update| update.position > since)
            .collect();
        updates.sort_by_key(|update| update.position);
        Ok(Some(updates))
    }
}

//! Real-time views: live ticket updates over WebSocket (`GET /api/v1/realtime`) and
//! Server-Sent Events (`GET /api/v1/realtime/sse`), with resume and presence.
//!
//! - [`feed`]: every instance reads the event stream on its own (an ordered, ephemeral
//!   JetStream consumer) and broadcasts each ticket event once, as an [`summary::Update`]
//!   (the ticket summary before and after), and each SLA event once, as an
//!   [`summary::SlaUpdate`] (with the ticket it concerns), to its sessions;
//! - [`session`]: one client's subscriptions; [`route`]: the access policy applied to every
//!   push; [`replay`]: the missed pushes rebuilt from the stream and the event store, which
//!   make a reconnect lossless;
//! - [`presence`]: who is viewing or replying, shared across instances over core NATS;
//! - [`ws`] and [`sse`]: the two transports, each with a bounded outgoing buffer (a client
//!   that does not read is told `resync` and dropped) and heartbeats.
//!
//! The wire protocol is in [`protocol`] and `docs/api-guide.md`.

mod feed;
pub mod presence;
pub mod protocol;
mod replay;
mod route;
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
use summary::Push;

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
    /// Ticket summaries kept in memory to fold events without a read
    /// (`HELPDESK_REALTIME_SUMMARY_CACHE`).
    pub summary_cache: usize,
}

impl RealtimeSettings {
    /// Defaults: replay up to 10,000 events, 1,024 queued messages per client, 10 s writes,
    /// pings every 15 s, 50,000 cached summaries.
    pub fn new(prefix: impl Into<String>) -> Self {
        RealtimeSettings {
            prefix: prefix.into(),
            replay_limit: 10_000,
            buffer: 1024,
            write_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(15),
            summary_cache: 50_000,
        }
    }
}

/// The filter subject of a consumer that reads every message of the events stream (whose
/// subjects are `<prefix>.events.>`).
const EVERY_MESSAGE: &str = "";

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
    js: async_nats::jetstream::Context,
    settings: RealtimeSettings,
    live: Mutex<Live>,
    presence: Presence,
    connections: AtomicU64,
    open_sessions: AtomicU64,
    dropped: AtomicU64,
    /// Tickets the feed read from the store because its summary cache did not hold them.
    summary_reads: AtomicU64,
    /// Time those reads took, in microseconds.
    summary_read_micros: AtomicU64,
}

/// The cursor of the last broadcast push, changed together with the broadcast itself so that
/// a joining session knows exactly where its live pushes begin.
struct Live {
    cursor: u64,
    sender: broadcast::Sender<Arc<Push>>,
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
            js: js.clone(),
            live: Mutex::new(Live {
                cursor: start.cursor,
                sender,
            }),
            settings,
            presence,
            connections: AtomicU64::new(0),
            open_sessions: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            summary_reads: AtomicU64::new(0),
            summary_read_micros: AtomicU64::new(0),
        });
        tokio::spawn(feed::run(inner.clone(), js, start));
        Ok(Realtime { inner })
    }

    /// The stream sequence of the last event this instance's feed handled.
    pub fn cursor(&self) -> u64 {
        self.inner.cursor()
    }

    /// Messages of the events stream this instance's feed has yet to handle: the stream's last
    /// sequence minus [`Realtime::cursor`]. Pushes are that far behind the stream.
    /// One read of the stream's state: it never creates the stream (a scrape must not).
    pub async fn lag(&self) -> Result<u64, String> {
        let name = helpdesk_schemas::events_stream_name(&self.inner.settings.prefix);
        let stream = self
            .inner
            .js
            .get_stream(name)
            .await
            .map_err(|e| e.to_string())?;
        Ok(stream
            .cached_info()
            .state
            .last_sequence
            .saturating_sub(self.cursor()))
    }

    /// Connections open now, and connections dropped since start-up because they fell behind.
    pub fn stats(&self) -> RealtimeStats {
        RealtimeStats {
            open: self.inner.open_sessions.load(Ordering::Relaxed),
            dropped: self.inner.dropped.load(Ordering::Relaxed),
            summary_reads: self.inner.summary_reads.load(Ordering::Relaxed),
            summary_read_seconds: Duration::from_micros(
                self.inner.summary_read_micros.load(Ordering::Relaxed),
            )
            .as_secs_f64(),
        }
    }
}

/// Counters of the real-time service.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RealtimeStats {
    /// Sessions (WebSocket or SSE) open now.
    pub open: u64,
    /// Sessions dropped because they did not keep up (told `resync`).
    pub dropped: u64,
    /// Tickets the feed read from the store since start-up, because its summary cache did not
    /// hold them (a ticket not changed since the cache evicted it, or an instance just started).
    pub summary_reads: u64,
    /// The time those reads took together.
    pub summary_read_seconds: f64,
}

impl Inner {
    fn cursor(&self) -> u64 {
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .cursor
    }

    /// Broadcasts `push` and moves the cursor past it.
    fn publish(&self, push: Push) {
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        live.cursor = live.cursor.max(push.cursor());
        // No session listening is fine.
        let _ = live.sender.send(Arc::new(push));
    }

    /// Moves the cursor past a message that is not pushed.
    fn advance(&self, cursor: u64) {
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        live.cursor = live.cursor.max(cursor);
    }

    /// A receiver of every push after the returned cursor.
    fn join(&self) -> (u64, broadcast::Receiver<Arc<Push>>) {
        let live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        (live.cursor, live.sender.subscribe())
    }

    /// Counts one summary read of the feed, which took `took`.
    fn count_summary_read(&self, took: Duration) {
        self.summary_reads.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.summary_read_micros
            .fetch_add(micros, Ordering::Relaxed);
    }

    fn next_connection(&self) -> u64 {
        self.connections.fetch_add(1, Ordering::Relaxed) + 1
    }
}

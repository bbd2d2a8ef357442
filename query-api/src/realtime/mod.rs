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

use std::collections::HashMap;

use helpdesk_schemas::{EventEnvelope, events_stream_name, events_subject_root};
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
}

/// The cursor of the last broadcast update, changed together with the broadcast itself so that
/// a joining session knows exactly where its live updates begin.
struct Live {
    cursor: u64,
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
        });
        tokio::spawn(feed::run(inner.clone(), js, start));
        Ok(Realtime { inner })
    }

    /// The stream sequence of the last event this instance's feed handled.
    pub fn cursor(&self) -> u64 {
        self.inner.cursor()
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
    fn cursor(&self) -> u64 {
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .cursor
    }

    /// Broadcasts `update` and moves the cursor past it.
    fn publish(&self, update: Update) {
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        live.cursor = live.cursor.max(update.cursor);
        // No session listening is fine.
        let _ = live.sender.send(Arc::new(update));
    }

    /// Moves the cursor past a message that is not pushed.
    fn advance(&self, cursor: u64) {
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        live.cursor = live.cursor.max(cursor);
    }

    /// A receiver of every update after the returned cursor.
    fn join(&self) -> (u64, broadcast::Receiver<Arc<Update>>) {
        let live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        (live.cursor, live.sender.subscribe())
    }

    fn next_connection(&self) -> u64 {
        self.connections.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Every update of tickets in `target` (only its ticket, for a ticket target) with a cursor
    /// in `(since, up_to]`, in feed order; `None` when more than the replay limit of stream
    /// messages lie in between. The order and the cursors come from the stream itself; the
    /// summaries from folding the touched tickets' events from the store.
    async fn replay(
        &self,
        target: &Target,
        since: u64,
        up_to: u64,
    ) -> Result<Option<Vec<Update>>, QueryError> {
        if since >= up_to {
            return Ok(Some(Vec::new()));
        }
        if up_to - since > u64::try_from(self.settings.replay_limit).unwrap_or(u64::MAX) {
            return Ok(None);
        }
        let root = events_subject_root(&self.settings.prefix);
        let subject = match target {
            Target::Ticket(id) => format!("{root}.Ticket.{id}"),
            Target::Queue(_) => format!("{root}.Ticket.>"),
        };
        let missed = read_stream(&self.js, &self.settings.prefix, subject, since + 1, up_to)
            .await
            .map_err(QueryError::internal)?;
        let mut ids: Vec<String> = missed
            .iter()
            .map(|(_, envelope)| envelope.aggregate_id.clone())
            .collect();
        ids.sort();
        ids.dedup();
        let mut folded: HashMap<(String, i64), Update> = HashMap::new();
        for history in events::load_many(&self.pool, &ids, i64::MAX).await? {
            for update in updates_of(&history) {
                folded.insert((update.after.id.clone(), update.position), update);
            }
        }
        Ok(Some(
            missed
                .into_iter()
                .filter_map(|(cursor, envelope)| {
                    let key = (envelope.aggregate_id, envelope.global_position);
                    folded
                        .remove(&key)
                        .map(|update| Update { cursor, ..update })
                })
                .collect(),
        ))
    }
}

/// The ticket messages on `subject` with stream sequences in `[from, to]`, in stream order.
async fn read_stream(
    js: &async_nats::jetstream::Context,
    prefix: &str,
    subject: String,
    from: u64,
    to: u64,
) -> Result<Vec<(u64, EventEnvelope)>, String> {
    use async_nats::jetstream::consumer::{DeliverPolicy, pull};
    use futures::StreamExt;
    let stream = js
        .get_stream(events_stream_name(prefix))
        .await
        .map_err(|e| e.to_string())?;
    let mut consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: subject,
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: from,
            },
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    // Everything up to `to` is in the stream already, so it is counted here.
    let available = consumer
        .info()
        .await
        .map_err(|e| e.to_string())?
        .num_pending;
    let mut found = Vec::new();
    if available == 0 {
        return Ok(found);
    }
    let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
    let mut read = 0;
    while read < available {
        let Some(message) = messages.next().await else {
            return Err("the stream ended during a replay".into());
        };
        let message = message.map_err(|e| e.to_string())?;
        read += 1;
        let cursor = message.info().map_err(|e| e.to_string())?.stream_sequence;
        if cursor > to {
            break;
        }
        let envelope: EventEnvelope =
            serde_json::from_slice(&message.payload).map_err(|e| e.to_string())?;
        found.push((cursor, envelope));
        if cursor == to {
            break;
        }
    }
    Ok(found)
}

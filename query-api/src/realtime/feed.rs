//! The instance's own reading of the event stream: an ordered, ephemeral JetStream consumer
//! from which every ticket event becomes an [`Update`] broadcast to this instance's sessions.
//!
//! The feed's order is the stream's: the relay publishes in `(tx_id, global_position)` order,
//! which is not `global_position` order, so the stream sequence (the `cursor`) is what orders,
//! deduplicates and resumes the feed, never the position.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull};
use futures::StreamExt;
use helpdesk_platform::nats::ensure_events_stream;
use helpdesk_schemas::{EventEnvelope, events_subject_root};
use sqlx::PgPool;

use super::Inner;
use super::summary::{TicketSummary, Update, updates_of};
use crate::error::QueryError;
use crate::tickets::events::{self, StoredEvent};

/// Pause before re-creating the consumer after it failed.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Where the feed starts: the stream sequence of the last message already in the stream (0
/// for an empty stream); the feed delivers what comes after it.
pub(super) struct Start {
    pub cursor: u64,
}

/// The tail of the events stream now.
pub(super) async fn tail(js: &jetstream::Context, prefix: &str) -> Result<Start, String> {
    let mut stream = ensure_events_stream(js, prefix).await?;
    let info = stream.info().await.map_err(|e| e.to_string())?;
    Ok(Start {
        cursor: info.state.last_sequence,
    })
}

/// Reads the stream from `start` forever, broadcasting each ticket event once, in order.
pub(super) async fn run(inner: Arc<Inner>, js: jetstream::Context, start: Start) {
    let mut next = start.cursor + 1;
    let mut cache = SummaryCache::new(inner.settings.summary_cache);
    let mut failing = Failing::default();
    loop {
        if let Err(error) = follow(&inner, &js, &mut next, &mut cache, &mut failing).await {
            tracing::warn!(%error, "real-time feed interrupted; resuming from the stream");
        }
        tokio::time::sleep(RETRY_AFTER).await;
    }
}

/// Tries to summarise the same event before the feed gives up on it.
const SUMMARY_ATTEMPTS: u32 = 5;

/// The event whose summary keeps failing, and how often it failed.
#[derive(Default)]
struct Failing {
    cursor: u64,
    attempts: u32,
}

async fn follow(
    inner: &Inner,
    js: &jetstream::Context,
    next: &mut u64,
    cache: &mut SummaryCache,
    failing: &mut Failing,
) -> Result<(), String> {
    let prefix = &inner.settings.prefix;
    let stream = ensure_events_stream(js, prefix).await?;
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: format!("{}.Ticket.>", events_subject_root(prefix)),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: *next,
            },
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
    while let Some(message) = messages.next().await {
        let message = message.map_err(|e| e.to_string())?;
        let cursor = message.info().map_err(|e| e.to_string())?.stream_sequence;
        if cursor <= inner.cursor() {
            continue; // already delivered (a consumer re-created from an older sequence)
        }
        *next = cursor + 1;
        let envelope: EventEnvelope = match serde_json::from_slice(&message.payload) {
            Ok(envelope) => envelope,
            Err(error) => {
                tracing::warn!(%error, cursor, "skipping a message that is not an event envelope");
                inner.advance(cursor);
                continue;
            }
        };
        match cache.update(&inner.pool, &envelope).await {
            Ok(Some(mut update)) => {
                update.cursor = cursor;
                inner.publish(update);
            }
            Ok(None) => inner.advance(cursor),
            Err(error) => {
                if failing.cursor != cursor {
                    *failing = Failing {
                        cursor,
                        attempts: 0,
                    };
                }
                failing.attempts += 1;
                if failing.attempts < SUMMARY_ATTEMPTS {
                    // Most likely the store is unreachable: read this event again shortly
                    // rather than let every client miss it.
                    *next = cursor;
                    return Err(format!(
                        "cannot summarise the event at cursor {cursor}: {error}"
                    ));
                }
                tracing::error!(%error, cursor, "cannot summarise an event after {SUMMARY_ATTEMPTS} attempts; it is not pushed");
                inner.advance(cursor);
            }
        }
    }
    Err("the ordered consumer ended".into())
}

/// The latest summary of recently changed tickets, so that most events are folded without a
/// read; bounded, oldest entries evicted first (a miss folds the ticket from the store).
struct SummaryCache {
    summaries: HashMap<String, TicketSummary>,
    order: VecDeque<String>,
    capacity: usize,
}

impl SummaryCache {
    fn new(capacity: usize) -> Self {
        SummaryCache {
            summaries: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// The update of `envelope`; `None` for an event already folded.
    async fn update(
        &mut self,
        pool: &PgPool,
        envelope: &EventEnvelope,
    ) -> Result<Option<Update>, QueryError> {
        let event = StoredEvent::from_envelope(envelope).map_err(QueryError::internal)?;
        let cached = self.summaries.get(&envelope.aggregate_id);
        let before = match cached {
            _ if event.sequence == 1 => None,
            Some(summary) if summary.version >= event.sequence => return Ok(None),
            Some(summary) if summary.version + 1 == event.sequence => Some(summary.clone()),
            _ => {
                let ids = [envelope.aggregate_id.clone()];
                let history = events::load_many(pool, &ids, envelope.global_position - 1)
                    .await?
                    .pop()
                    .unwrap_or_default();
                updates_of(&history).pop().map(|update| update.after)
            }
        };
        let Some(update) = Update::of(before, &event) else {
            return Err(QueryError::internal(format!(
                "event {} of ticket {} does not follow its history",
                event.sequence, envelope.aggregate_id
            )));
        };
        self.remember(update.after.clone());
        Ok(Some(update))
    }

    fn remember(&mut self, summary: TicketSummary) {
        if !self.summaries.contains_key(&summary.id) {
            self.order.push_back(summary.id.clone());
            while self.order.len() > self.capacity {
                if let Some(oldest) = self.order.pop_front() {
                    self.summaries.remove(&oldest);
                }
            }
        }
        self.summaries.insert(summary.id.clone(), summary);
    }
}

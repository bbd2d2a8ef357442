//! The instance's own reading of the event stream: an ordered, ephemeral JetStream consumer
//! from which every ticket event becomes an [`Update`], and every SLA event an [`SlaUpdate`],
//! broadcast to this instance's sessions.
//!
//! The feed's order is the stream's: the relay publishes in `(tx_id, global_position)` order,
//! which is not `global_position` order, so the stream sequence (the `cursor`) is what orders,
//! deduplicates and resumes the feed, never the position.
//!
//! The consumer reads every message of the stream and skips the aggregates it does not push
//! (SLA policies, audit anchors), which are few: filtering on the server would need two
//! subjects (`<prefix>.events.Ticket.>` and `<prefix>.events.TicketSla.>`), which takes NATS
//! 2.10, and the machines we run on have 2.9. The replay reads the same way ([`super::replay`]
//! says why a wildcard filter will not do there either).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull};
use futures::StreamExt;
use helpdesk_platform::nats::ensure_events_stream;
use helpdesk_schemas::EventEnvelope;

use super::summary::{
    Push, SLA_AGGREGATE, SlaUpdate, TICKET_AGGREGATE, TicketSummary, Update, updates_of,
};
use super::{EVERY_MESSAGE, Inner};
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

/// Reads the stream from `start` forever, broadcasting each ticket and SLA event once, in
/// order.
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
            filter_subject: EVERY_MESSAGE.to_owned(),
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
        match cache.push(inner, &envelope).await {
            Ok(Some(push)) => inner.publish(push.at(cursor)),
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

    /// What `envelope` means for the feed: a ticket update, an SLA update, or nothing (an event
    /// already folded, an aggregate the feed does not push, an SLA event it cannot read).
    async fn push(
        &mut self,
        inner: &Inner,
        envelope: &EventEnvelope,
    ) -> Result<Option<Push>, QueryError> {
        match envelope.aggregate_type.as_str() {
            TICKET_AGGREGATE => Ok(self.update(inner, envelope).await?.map(Push::Ticket)),
            SLA_AGGREGATE => Ok(self.sla(inner, envelope).await?.map(Push::Sla)),
            _ => Ok(None),
        }
    }

    /// The SLA update of `envelope`, routed by the ticket as the feed last folded it. A ticket
    /// not in the cache is read as of the SLA event's position, and not cached: events of the
    /// ticket the feed has yet to deliver could be among those read.
    async fn sla(
        &self,
        inner: &Inner,
        envelope: &EventEnvelope,
    ) -> Result<Option<SlaUpdate>, QueryError> {
        let ticket = match self.summaries.get(&envelope.aggregate_id) {
            Some(summary) => summary.clone(),
            None => {
                let Some(summary) = read_before(inner, envelope).await? else {
                    tracing::warn!(
                        ticket = %envelope.aggregate_id,
                        event_type = %envelope.event_type,
                        "skipping an SLA event of a ticket the store does not hold"
                    );
                    return Ok(None);
                };
                summary
            }
        };
        match SlaUpdate::of(envelope, ticket) {
            Ok(sla) => Ok(Some(sla)),
            Err(error) => {
                // A payload this version cannot read will not read better later.
                tracing::warn!(
                    %error,
                    ticket = %envelope.aggregate_id,
                    event_type = %envelope.event_type,
                    "skipping an SLA event this version cannot read"
                );
                Ok(None)
            }
        }
    }

    /// The update of `envelope` (a ticket event); `None` for an event already folded.
    async fn update(
        &mut self,
        inner: &Inner,
        envelope: &EventEnvelope,
    ) -> Result<Option<Update>, QueryError> {
        let event = StoredEvent::from_envelope(envelope).map_err(QueryError::internal)?;
        let cached = self.summaries.get(&envelope.aggregate_id);
        let before = match cached {
            _ if event.sequence == 1 => None,
            Some(summary) if summary.version >= event.sequence => return Ok(None),
            Some(summary) if summary.version + 1 == event.sequence => Some(summary.clone()),
            _ => read_before(inner, envelope).await?,
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

/// The summary of `envelope`'s ticket as of the event before it, read from the store (`None`
/// for a ticket the store does not hold); counted and timed in the feed's statistics.
async fn read_before(
    inner: &Inner,
    envelope: &EventEnvelope,
) -> Result<Option<TicketSummary>, QueryError> {
    let started = Instant::now();
    let ids = [envelope.aggregate_id.clone()];
    let history = events::load_many(&inner.pool, &ids, envelope.global_position - 1).await;
    inner.count_summary_read(started.elapsed());
    let history = history?.pop().unwrap_or_default();
    Ok(updates_of(&history).pop().map(|update| update.after))
}

//! The projection runtime: feeds one projection from its own durable pull consumer.
//!
//! Every event is acknowledged only after the projection says its effect is durable. An event
//! ahead of a gap is negatively acknowledged with a short, growing delay and comes back once its
//! predecessor had a chance to be applied. A transient failure is retried with a growing delay;
//! after `max_deliver` deliveries (or at once, for a permanent failure) the event is published
//! to `<prefix>.dlq.<projection>` with the error and the delivery count and terminated, so the
//! other tickets keep flowing. Several processes running the same projection share its durable
//! consumer: each event goes to one of them, and the sequence checks make a redelivery harmless.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures::StreamExt;
use helpdesk_platform::nats::{
    dead_letter_subject, ensure_dead_letter_stream, ensure_events_stream,
};
use helpdesk_schemas::{EventEnvelope, events_subject_root};
use tokio::sync::mpsc;

use crate::{Projection, ProjectionError};

/// Pause before reconnecting after the consumer failed.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// An event behind a gap is dead-lettered after `max_deliver × GAP_PATIENCE` deliveries
/// (about three minutes with the defaults).
const GAP_PATIENCE: i64 = 20;
/// Unacknowledged messages the server lets one projection have in flight.
const MAX_ACK_PENDING: i64 = 10_000;
/// How often the highest applied position is saved.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
/// How long the server waits for an ack before redelivering.
const ACK_WAIT: Duration = Duration::from_secs(30);

/// How a projection is fed.
#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    /// `HELPDESK_NATS_PREFIX`.
    pub prefix: String,
    /// Deliveries after which a failing event is dead-lettered (`HELPDESK_PROJECTION_MAX_DELIVER`).
    pub max_deliver: i64,
    /// First retry delay for a failing event; doubles per delivery, capped at 10 s (30 s while
    /// the read model is unreachable).
    pub retry_delay: Duration,
    /// How a lane gathers a batch before handing it over (by default it hands over whatever
    /// it holds at once).
    pub gather: Gather,
}

/// How long a lane holds a batch for more events to join it. A projection that pays per
/// commit — the `sla` projection's transaction of several statements — makes fewer, larger
/// commits when its lanes wait a little; a lane that already holds `enough` events, as under
/// a backlog, hands them over at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gather {
    /// The longest a lane holds its first event for others to join (zero: not at all). Keep it
    /// far below the ack wait (30 s): held events are not acknowledged.
    pub wait: Duration,
    /// Events that end the wait (at most a lane's batch, 256).
    pub enough: usize,
}

impl RuntimeSettings {
    /// Defaults: 5 deliveries, 200 ms first retry.
    pub fn new(prefix: impl Into<String>) -> Self {
        RuntimeSettings {
            prefix: prefix.into(),
            max_deliver: 5,
            retry_delay: Duration::from_millis(200),
            gather: Gather::default(),
        }
    }
}

/// The durable consumer name of a projection.
pub fn consumer_name(projection: &str) -> String {
    projection.replace(
        |c: char| !c.is_ascii_alphanumeric() && c != '_' && c != '-',
        "_",
    )
}

/// Feeds `projection` forever, reconnecting after failures.
pub async fn run(
    nats: async_nats::Client,
    projection: Arc<dyn Projection>,
    settings: RuntimeSettings,
) {
    let js = jetstream::new(nats);
    loop {
        if let Err(error) = consume(&js, &projection, &settings).await {
            tracing::warn!(projection = projection.name(), %error, "consumer failed; reconnecting");
        }
        tokio::time::sleep(RETRY_AFTER).await;
    }
}

/// Messages are handled in `LANES` parallel lanes; all events of one aggregate go to the same
/// lane, so a process applies each ticket's events in stream order while different tickets
/// proceed side by side (and their commits share Postgres's group commit).
const LANES: usize = 8;
/// Most messages one lane hands the projection at once.
const LANE_BATCH: usize = 256;
/// Batches of one lane that may wait for their commit at the same time (a batch is often a
/// single message at moderate rates, so this must cover a whole commit interval's worth).
const BATCHES_IN_FLIGHT: usize = 256;

async fn consume(
    js: &jetstream::Context,
    projection: &Arc<dyn Projection>,
    settings: &RuntimeSettings,
) -> Result<(), String> {
    let stream = ensure_events_stream(js, &settings.prefix).await?;
    ensure_dead_letter_stream(js, &settings.prefix).await?;
    let name = consumer_name(projection.name());
    let config = pull::Config {
        durable_name: Some(name.clone()),
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        ack_wait: ACK_WAIT,
        // Unlimited at the server: events waiting behind a gap must never be dropped. Our own
        // count of failed deliveries decides when to dead-letter.
        max_deliver: -1,
        max_ack_pending: MAX_ACK_PENDING,
        filter_subject: format!("{}.>", events_subject_root(&settings.prefix)),
        ..Default::default()
    };
    let consumer: jetstream::consumer::PullConsumer = stream
        .get_or_create_consumer(&name, config)
        .await
        .map_err(|e| e.to_string())?;
    let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
    let mut lanes = tokio::task::JoinSet::new();
    let applied_up_to = Arc::new(AtomicI64::new(0));
    lanes.spawn(flush_checkpoints(projection.clone(), applied_up_to.clone()));
    let senders: Vec<mpsc::Sender<jetstream::Message>> = (0..LANES)
        .map(|_| {
            let (sender, mut receiver) = mpsc::channel::<jetstream::Message>(64);
            let (js, projection, settings) = (js.clone(), projection.clone(), settings.clone());
            let applied_up_to = applied_up_to.clone();
            lanes.spawn(async move {
                let mut batch = Vec::with_capacity(LANE_BATCH);
                let mut settling = tokio::task::JoinSet::new();
                while receiver.recv_many(&mut batch, LANE_BATCH).await > 0 {
                    gather_more(&mut receiver, &mut batch, settings.gather).await;
                    let messages = std::mem::take(&mut batch);
                    let submitted = submit_batch(projection.as_ref(), messages).await;
                    let (js, projection, settings) =
                        (js.clone(), projection.clone(), settings.clone());
                    let applied_up_to = applied_up_to.clone();
                    settling.spawn(async move {
                        let handled =
                            settle_batch(&js, projection.as_ref(), &settings, submitted).await;
                        for outcome in handled {
                            match outcome {
                                Ok(Some(position)) => {
                                    applied_up_to.fetch_max(position, Ordering::Relaxed);
                                }
                                Ok(None) => {}
                                // Unacknowledged: the server redelivers it after the ack wait.
                                Err(error) => {
                                    tracing::warn!(projection = projection.name(), %error, "could not settle an event");
                                }
                            }
                        }
                    });
                    while settling.len() >= BATCHES_IN_FLIGHT {
                        settling.join_next().await;
                    }
                    while settling.try_join_next().is_some() {}
                }
            });
            sender
        })
        .collect();
    let result = loop {
        let message = match messages.next().await {
            Some(Ok(message)) => message,
            Some(Err(error)) => break Err(error.to_string()),
            None => break Err("the message stream ended".into()),
        };
        let lane = lane_of(&message.subject);
        if senders[lane].send(message).await.is_err() {
            break Err("a lane stopped".into());
        }
    };
    drop(senders);
    lanes.abort_all();
    while lanes.join_next().await.is_some() {}
    // Whatever the lanes applied before stopping.
    let _ = projection
        .save_checkpoint(applied_up_to.load(Ordering::Relaxed))
        .await;
    result
}

/// Lets more messages join a lane's `batch` for up to `gather.wait`, until it holds
/// `gather.enough` (or the lane's channel closes).
async fn gather_more(
    receiver: &mut mpsc::Receiver<jetstream::Message>,
    batch: &mut Vec<jetstream::Message>,
    gather: Gather,
) {
    let enough = gather.enough.min(LANE_BATCH);
    if gather.wait.is_zero() || batch.len() >= enough {
        return;
    }
    let until = tokio::time::Instant::now() + gather.wait;
    while batch.len() < enough {
        // `recv_many` is cancel-safe: a message it had not taken when the wait ran out stays
        // in the channel for the next batch.
        let more = receiver.recv_many(batch, LANE_BATCH - batch.len());
        match tokio::time::timeout_at(until, more).await {
            Ok(received) if received > 0 => {}
            _ => return,
        }
    }
}

/// Saves the highest applied position every `CHECKPOINT_EVERY` when it moved.
async fn flush_checkpoints(projection: Arc<dyn Projection>, applied_up_to: Arc<AtomicI64>) {
    let mut saved = 0;
    let mut ticker = tokio::time::interval(CHECKPOINT_EVERY);
    loop {
        ticker.tick().await;
        let position = applied_up_to.load(Ordering::Relaxed);
        if position > saved {
            match projection.save_checkpoint(position).await {
                Ok(()) => saved = position,
                Err(error) => tracing::debug!(%error, "could not save the checkpoint"),
            }
        }
    }
}

/// The lane of a message: by the aggregate id, the last token of its subject
/// (`<prefix>.events.<aggregate_type>.<aggregate_id>`), so that the aggregates sharing an id —
/// a ticket's `Ticket` and `TicketSla` events — go through one lane, in stream order.
fn lane_of(subject: &str) -> usize {
    use std::hash::{Hash, Hasher};
    let aggregate_id = subject.rsplit('.').next().unwrap_or(subject);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    aggregate_id.hash(&mut hasher);
    (hasher.finish() % LANES as u64) as usize
}

/// A lane's batch handed to the projection, waiting for its outcomes.
struct Submitted {
    messages: Vec<jetstream::Message>,
    /// Per message: the envelope's position, or why it could not even be read.
    read: Vec<Result<i64, ProjectionError>>,
    outcomes: crate::Settling,
}

/// Hands the readable messages of a lane's batch to the projection, in order.
async fn submit_batch(projection: &dyn Projection, messages: Vec<jetstream::Message>) -> Submitted {
    let mut readable = Vec::with_capacity(messages.len());
    let read = messages
        .iter()
        .map(
            |message| match serde_json::from_slice::<EventEnvelope>(&message.payload) {
                Ok(envelope) => {
                    let position = envelope.global_position;
                    readable.push(envelope);
                    Ok(position)
                }
                Err(error) => Err(ProjectionError::Permanent(format!(
                    "not an event envelope: {error}"
                ))),
            },
        )
        .collect();
    let outcomes = projection.submit_batch(&readable).await;
    Submitted {
        messages,
        read,
        outcomes,
    }
}

/// Waits for a submitted batch's outcomes and settles each message; returns, per message, the
/// global position when it was applied.
async fn settle_batch(
    js: &jetstream::Context,
    projection: &dyn Projection,
    settings: &RuntimeSettings,
    submitted: Submitted,
) -> Vec<Result<Option<i64>, String>> {
    let mut applied = submitted.outcomes.await.into_iter();
    let mut settled = Vec::with_capacity(submitted.messages.len());
    for (message, read) in submitted.messages.into_iter().zip(submitted.read) {
        let outcome = read.and_then(|position| match applied.next() {
            Some(result) => result.map(|_| position),
            None => Err(ProjectionError::Transient(
                "the projection answered for fewer events than it was given".into(),
            )),
        });
        settled.push(settle(js, projection, settings, message, outcome).await);
    }
    settled
}

/// Acknowledges, retries or dead-letters one message after its outcome.
async fn settle(
    js: &jetstream::Context,
    projection: &dyn Projection,
    settings: &RuntimeSettings,
    message: jetstream::Message,
    outcome: Result<i64, ProjectionError>,
) -> Result<Option<i64>, String> {
    let delivered = message.info().map_or(1, |info| info.delivered);
    let applied = outcome.as_ref().ok().copied();
    let ack = match outcome {
        Ok(_) => AckKind::Ack,
        // An event still behind its gap after many tries (its predecessor was dead-lettered,
        // say) would wait forever and hold a slot of the consumer's ack window; park it with
        // the dead letters instead, where a redrive applies it in order after its predecessor.
        Err(error @ ProjectionError::Gap { .. })
            if delivered >= settings.max_deliver.saturating_mul(GAP_PATIENCE) =>
        {
            dead_letter(js, projection.name(), settings, &message, &error, delivered).await?;
            AckKind::Term
        }
        Err(ProjectionError::Gap { .. }) => AckKind::Nak(Some(backoff(
            Duration::from_millis(50),
            delivered,
            Duration::from_secs(2),
        ))),
        Err(ProjectionError::Unavailable(error)) => {
            tracing::warn!(projection = projection.name(), %error, "read model unavailable; waiting");
            AckKind::Nak(Some(backoff(
                settings.retry_delay,
                delivered,
                Duration::from_secs(30),
            )))
        }
        Err(ProjectionError::Transient(error)) if delivered < settings.max_deliver => {
            tracing::debug!(projection = projection.name(), delivered, %error, "retrying");
            AckKind::Nak(Some(backoff(
                settings.retry_delay,
                delivered,
                Duration::from_secs(10),
            )))
        }
        Err(error) => {
            dead_letter(js, projection.name(), settings, &message, &error, delivered).await?;
            AckKind::Term
        }
    };
    message.ack_with(ack).await.map_err(|e| e.to_string())?;
    Ok(applied)
}

/// `first * 2^(delivered - 1)`, at most `cap`.
fn backoff(first: Duration, delivered: i64, cap: Duration) -> Duration {
    let exponent = u32::try_from(delivered.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(16);
    first.saturating_mul(1 << exponent).min(cap)
}

async fn dead_letter(
    js: &jetstream::Context,
    projection: &str,
    settings: &RuntimeSettings,
    message: &jetstream::Message,
    error: &ProjectionError,
    delivered: i64,
) -> Result<(), String> {
    tracing::warn!(projection, delivered, %error, "dead-lettering an event");
    let mut headers = HeaderMap::new();
    headers.insert(
        "Helpdesk-Error",
        error.to_string().replace(['\r', '\n'], " ").as_str(),
    );
    headers.insert("Helpdesk-Deliveries", delivered.to_string().as_str());
    if let Some(id) = message.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")) {
        headers.insert(
            "Nats-Msg-Id",
            format!("{projection}:{}", id.as_str()).as_str(),
        );
    }
    js.publish_with_headers(
        dead_letter_subject(&settings.prefix, projection),
        headers,
        message.payload.clone(),
    )
    .await
    .map_err(|e| e.to_string())?
    .await
    .map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_stops_at_the_cap() {
        let first = Duration::from_millis(200);
        let cap = Duration::from_secs(10);
        assert_eq!(backoff(first, 1, cap), Duration::from_millis(200));
        assert_eq!(backoff(first, 3, cap), Duration::from_millis(800));
        assert_eq!(backoff(first, 60, cap), cap);
    }

    #[test]
    fn a_tickets_own_and_sla_events_share_a_lane() {
        let lanes: std::collections::HashSet<usize> = (0..64)
            .map(|n| {
                let id = format!("0193f2a4-5c1e-7d30-9a8b-{n:012}");
                let ticket = lane_of(&format!("hd.events.Ticket.{id}"));
                let sla = lane_of(&format!("hd.events.TicketSla.{id}"));
                assert_eq!(ticket, sla, "ticket {id}");
                assert!(ticket < LANES);
                ticket
            })
            .collect();
        // Different tickets still spread over the lanes.
        assert!(lanes.len() > 1, "{lanes:?}");
    }
}

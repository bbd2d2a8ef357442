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
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures::StreamExt;
use helpdesk_platform::nats::{
    dead_letter_subject, ensure_dead_letter_stream, ensure_events_stream,
};
use helpdesk_schemas::{EventEnvelope, events_subject_root};

use crate::{Projection, ProjectionError};

/// Pause before reconnecting after the consumer failed.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// How long the server waits for an ack before redelivering.
const ACK_WAIT: Duration = Duration::from_secs(30);

/// How a projection is fed.
#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    /// `HELPDESK_NATS_PREFIX`.
    pub prefix: String,
    /// Deliveries after which a failing event is dead-lettered (`HELPDESK_PROJECTION_MAX_DELIVER`).
    pub max_deliver: i64,
    /// First retry delay for a failing event; doubles per delivery, capped at 10 s.
    pub retry_delay: Duration,
}

impl RuntimeSettings {
    /// Defaults: 5 deliveries, 200 ms first retry.
    pub fn new(prefix: impl Into<String>) -> Self {
        RuntimeSettings {
            prefix: prefix.into(),
            max_deliver: 5,
            retry_delay: Duration::from_millis(200),
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
        if let Err(error) = consume(&js, projection.as_ref(), &settings).await {
            tracing::warn!(projection = projection.name(), %error, "consumer failed; reconnecting");
        }
        tokio::time::sleep(RETRY_AFTER).await;
    }
}

async fn consume(
    js: &jetstream::Context,
    projection: &dyn Projection,
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
        filter_subject: format!("{}.>", events_subject_root(&settings.prefix)),
        ..Default::default()
    };
    let consumer: jetstream::consumer::PullConsumer = stream
        .get_or_create_consumer(&name, config)
        .await
        .map_err(|e| e.to_string())?;
    let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
    while let Some(message) = messages.next().await {
        let message = message.map_err(|e| e.to_string())?;
        handle(js, projection, settings, message).await?;
    }
    Err("the message stream ended".into())
}

async fn handle(
    js: &jetstream::Context,
    projection: &dyn Projection,
    settings: &RuntimeSettings,
    message: jetstream::Message,
) -> Result<(), String> {
    let delivered = message.info().map_or(1, |info| info.delivered);
    let outcome = match serde_json::from_slice::<EventEnvelope>(&message.payload) {
        Ok(envelope) => projection.apply(&envelope).await.map(|_| ()),
        Err(error) => Err(ProjectionError::Permanent(format!(
            "not an event envelope: {error}"
        ))),
    };
    let ack = match outcome {
        Ok(()) => AckKind::Ack,
        Err(ProjectionError::Gap { .. }) => AckKind::Nak(Some(backoff(
            Duration::from_millis(50),
            delivered,
            Duration::from_secs(2),
        ))),
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
    message.ack_with(ack).await.map_err(|e| e.to_string())
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
}

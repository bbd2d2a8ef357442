//! Raw JetStream baselines on the broker the product uses, without the product: how fast
//! messages shaped like our event envelopes can be published (with message ids, acks awaited)
//! and consumed (a durable pull consumer with explicit acks, as a projection reads), and the
//! publish → consume latency at a fixed rate (an ordered consumer, as the real-time feed
//! reads). Each run uses a stream of its own and deletes it.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull};
use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::now_ns;
use super::stats::{Histogram, Latency};

/// The size of a message: about one event envelope.
pub const PAYLOAD: usize = 600;
/// Publishes in flight before their acks are awaited (as the relay does with its batches).
const BATCH: usize = 256;

/// The baseline's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JetStreamReport {
    pub messages: u64,
    pub payload_bytes: usize,
    /// Published (acks awaited in batches of 256) per second.
    pub publish_per_s: f64,
    /// Consumed and acknowledged by one durable pull consumer per second.
    pub consume_per_s: f64,
    /// The rate of the latency run.
    pub latency_rate: f64,
    /// Publish → arrival at an ordered consumer at `latency_rate`.
    pub latency: Latency,
}

/// Runs the three measurements on `nats_url`.
pub async fn baseline(
    nats_url: &str,
    messages: u64,
    latency_rate: f64,
    latency_for: Duration,
) -> Result<JetStreamReport, String> {
    let client = async_nats::connect(nats_url)
        .await
        .map_err(|e| e.to_string())?;
    let js = jetstream::new(client);
    let prefix = crate::unique_prefix();
    let stream = helpdesk_platform::nats::ensure_events_stream(&js, &prefix).await?;
    let outcome = async {
        let publish_per_s = publish(&js, &prefix, messages).await?;
        let consume_per_s = consume(&stream, &prefix, messages).await?;
        let latency = latency(&js, &stream, &prefix, latency_rate, latency_for).await?;
        Ok::<_, String>(JetStreamReport {
            messages,
            payload_bytes: PAYLOAD,
            publish_per_s,
            consume_per_s,
            latency_rate,
            latency,
        })
    }
    .await;
    let _ = js
        .delete_stream(helpdesk_schemas::events_stream_name(&prefix))
        .await;
    outcome
}

fn subject(prefix: &str, i: u64) -> String {
    format!(
        "{}.Raw.{}",
        helpdesk_schemas::events_subject_root(prefix),
        i % 1000
    )
}

async fn publish(js: &jetstream::Context, prefix: &str, count: u64) -> Result<f64, String> {
    let payload = Bytes::from(vec![b'x'; PAYLOAD]);
    let started = Instant::now();
    let mut acks = Vec::with_capacity(BATCH);
    for i in 0..count {
        let message = jetstream::message::PublishMessage::build()
            .payload(payload.clone())
            .message_id(format!("raw:{i}"));
        let ack = js
            .send_publish(subject(prefix, i), message)
            .await
            .map_err(|e| e.to_string())?;
        acks.push(ack);
        if acks.len() == BATCH || i + 1 == count {
            for ack in acks.drain(..) {
                ack.await.map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

async fn consume(
    stream: &jetstream::stream::Stream,
    prefix: &str,
    count: u64,
) -> Result<f64, String> {
    let config = pull::Config {
        durable_name: Some("raw_consumer".into()),
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        filter_subject: format!("{}.>", helpdesk_schemas::events_subject_root(prefix)),
        ..Default::default()
    };
    let consumer: jetstream::consumer::PullConsumer = stream
        .create_consumer(config)
        .await
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
    let mut seen = 0;
    while seen < count {
        let next = tokio::time::timeout(Duration::from_secs(30), messages.next())
            .await
            .map_err(|_| format!("the consumer stalled after {seen} messages"))?;
        let message = next
            .ok_or("the consumer ended")?
            .map_err(|e| e.to_string())?;
        message.ack().await.map_err(|e| e.to_string())?;
        seen += 1;
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

async fn latency(
    js: &jetstream::Context,
    stream: &jetstream::stream::Stream,
    prefix: &str,
    rate: f64,
    duration: Duration,
) -> Result<Latency, String> {
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: format!("{}.>", helpdesk_schemas::events_subject_root(prefix)),
            deliver_policy: jetstream::consumer::DeliverPolicy::New,
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
    let total = (rate * duration.as_secs_f64()).round() as u64;
    let reader = tokio::spawn(async move {
        let mut histogram = Histogram::default();
        while histogram.count() < total {
            let next = tokio::time::timeout(Duration::from_secs(10), messages.next()).await;
            let Ok(Some(Ok(message))) = next else { break };
            let at = now_ns();
            let sent = std::str::from_utf8(&message.payload[..20])
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(at);
            histogram.record(at.saturating_sub(sent));
        }
        histogram
    });
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let mut acks = tokio::task::JoinSet::new();
    for n in 0..total {
        tokio::time::sleep_until(start + Duration::from_secs_f64(n as f64 / rate)).await;
        let mut body = format!("{:020}", now_ns()).into_bytes();
        body.resize(PAYLOAD, b'x');
        let message = jetstream::message::PublishMessage::build()
            .payload(body.into())
            .message_id(format!("lat:{n}"));
        let ack = js
            .send_publish(subject(prefix, n), message)
            .await
            .map_err(|e| e.to_string())?;
        acks.spawn(async move { ack.await });
        while acks.try_join_next().is_some() {}
    }
    while acks.join_next().await.is_some() {}
    let histogram = reader.await.map_err(|e| e.to_string())?;
    if histogram.count() < total {
        return Err(format!("{} of {total} messages arrived", histogram.count()));
    }
    Ok(histogram.summary())
}

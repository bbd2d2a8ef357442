//! WebSocket clients of the real-time feed for benchmarks: connecting and subscribing, reading
//! an `update` frame's (ticket, version) without parsing all of it, and [`PushWatch`], which
//! keeps many subscribed clients and measures, for every (client, update) pair, the time from
//! the command's HTTP response to the push, in constant memory. The same watch can instead
//! read the product's event stream ([`PushWatch::on_stream`]): the time from the response to
//! the event's arrival on JetStream, the relay's share of every later latency.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use uuid::Uuid;

use super::now_ns;
use super::stats::{Histogram, Latency};

/// A client's WebSocket.
pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects to `url` (`ws://…/api/v1/realtime`) with a bearer token, sends `subscription` (a
/// `subscribe` message) and waits for its acknowledgement.
pub async fn open_socket(url: &str, token: &str, subscription: &Value) -> Result<Socket, String> {
    let mut request = url.into_client_request().map_err(|e| e.to_string())?;
    let bearer = format!("Bearer {token}")
        .parse()
        .map_err(|_| "a token is a valid header value".to_owned())?;
    request.headers_mut().insert("authorization", bearer);
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .map_err(|e| e.to_string())?;
    let text = subscription.to_string();
    socket
        .send(Message::Text(text.into()))
        .await
        .map_err(|e| e.to_string())?;
    while let Some(frame) = socket.next().await {
        if let Message::Text(text) = frame.map_err(|e| e.to_string())? {
            if text.contains(r#""type":"subscribed""#) {
                return Ok(socket);
            }
            return Err(format!("unexpected answer to subscribe: {text}"));
        }
    }
    Err("closed before subscribed".into())
}

/// (ticket, version) of an `update` frame without parsing all of it: the server writes
/// `{"type":"update",…,"ticket":{"id":"<uuid>","version":<n>,…}}` (its types' field order).
pub fn update_key(text: &str) -> Option<(u128, u32)> {
    const TICKET: &str = r#""ticket":{"id":""#;
    if !text.starts_with(r#"{"type":"update""#) {
        return None;
    }
    let at = text.find(TICKET)? + TICKET.len();
    let id = Uuid::parse_str(text.get(at..at + 36)?).ok()?;
    let rest = text.get(at + 36..)?.strip_prefix(r#"","version":"#)?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    Some((id.as_u128(), rest[..digits].parse().ok()?))
}

/// (ticket, version) of a `Ticket` event read from the events stream, from its
/// `Nats-Msg-Id` (`Ticket:<id>:<sequence>`, as the relay publishes it).
pub fn stream_key(message: &async_nats::jetstream::Message) -> Option<(u128, u32)> {
    message_id_key(message.headers.as_ref()?.get("Nats-Msg-Id")?.as_str())
}

/// (ticket, version) of a `Ticket:<id>:<sequence>` message id; `None` for other aggregates.
fn message_id_key(id: &str) -> Option<(u128, u32)> {
    let mut parts = id.split(':');
    if parts.next()? != "Ticket" {
        return None;
    }
    let ticket = Uuid::parse_str(parts.next()?).ok()?;
    Some((ticket.as_u128(), parts.next()?.parse().ok()?))
}

/// The `Ticket` events of the product's events stream (NATS prefix `prefix`) from its end, read
/// as the real-time feed reads them: one ordered consumer.
pub async fn ticket_events(
    nats: async_nats::Client,
    prefix: &str,
) -> Result<pull::Ordered, String> {
    let js = async_nats::jetstream::new(nats);
    let stream = js
        .get_stream(helpdesk_schemas::events_stream_name(prefix))
        .await
        .map_err(|e| e.to_string())?;
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: format!("{}.Ticket.>", helpdesk_schemas::events_subject_root(prefix)),
            deliver_policy: DeliverPolicy::New,
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    consumer.messages().await.map_err(|e| e.to_string())
}

/// How long a dropped client waits before it connects again.
const BACKOFF: Duration = Duration::from_secs(1);
/// An update nobody answered for (or that some client never got) is given up after this.
const FORGET_AFTER: Duration = Duration::from_secs(60);

/// One (ticket, version) whose pushes are awaited.
enum Pending {
    /// The command answered at `at` (its pushes' latency is recorded when `measured`);
    /// `waiting` clients have not had the push yet.
    Answered {
        at: u64,
        measured: bool,
        waiting: usize,
    },
    /// `count` pushes beat the command's response (first at `at`).
    Arrived { at: u64, count: usize },
}

#[derive(Default)]
struct Book {
    pending: HashMap<(u128, u32), Pending>,
    latencies: Histogram,
    early: u64,
    missing: u64,
    unmatched: u64,
}

struct Shared {
    clients: usize,
    book: Mutex<Book>,
    subscribed: AtomicUsize,
    drops: AtomicU64,
    resyncs: AtomicU64,
    pushes: AtomicU64,
}

impl Shared {
    fn new(clients: usize) -> Shared {
        Shared {
            clients,
            book: Mutex::default(),
            subscribed: AtomicUsize::new(0),
            drops: AtomicU64::new(0),
            resyncs: AtomicU64::new(0),
            pushes: AtomicU64::new(0),
        }
    }
}

/// `clients` WebSocket clients, each subscribed to every ticket (`{"queue":{}}`) with its own
/// agent token, and the response → push latency of every (client, update) pair.
pub struct PushWatch {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

/// What the clients saw.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PushReport {
    pub clients: usize,
    /// Command response → push, over every (client, update) pair; a push that beat the
    /// response counts as 0.
    pub latency: Latency,
    /// Pushes that arrived before the command's response.
    pub before_response: u64,
    /// (client, update) pairs never delivered (within 60 s, or by the end of the run).
    pub missing: u64,
    /// Updates of tickets this run did not answer for (another client's, or a failed
    /// command's).
    pub unmatched: u64,
    /// `resync` messages and connections the server closed.
    pub resyncs: u64,
    pub drops: u64,
}

impl PushWatch {
    /// Connects `clients` clients to the product at `base` (50 connecting at a time), tokens
    /// signed with `secret`; waits (up to two minutes) until all are subscribed.
    pub async fn connect(base: &str, secret: &str, clients: usize) -> PushWatch {
        let url = format!("{}/api/v1/realtime", base.replacen("http", "ws", 1));
        let shared = Arc::new(Shared::new(clients));
        let gate = Arc::new(tokio::sync::Semaphore::new(50));
        let mut tasks = Vec::new();
        for i in 0..clients {
            let token = super::server::agent_token(secret, &format!("agent-ws-{i}"));
            let (url, shared, gate) = (url.clone(), shared.clone(), gate.clone());
            tasks.push(tokio::spawn(async move {
                let permit = gate.acquire_owned().await.ok();
                run_client(url, token, shared, permit).await;
            }));
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        while shared.subscribed.load(Ordering::Relaxed) < clients {
            assert!(Instant::now() < deadline, "clients did not all subscribe");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tasks.push(tokio::spawn(reap(shared.clone())));
        PushWatch { shared, tasks }
    }

    /// One reader of the product's events stream (NATS prefix `prefix`), as the real-time feed
    /// reads it (an ordered consumer from the stream's end): each ticket event's arrival is
    /// matched to its command's response like a push.
    pub async fn on_stream(prefix: &str) -> Result<PushWatch, String> {
        let nats = async_nats::connect(crate::nats_url())
            .await
            .map_err(|e| e.to_string())?;
        let mut messages = ticket_events(nats, prefix).await?;
        let shared = Arc::new(Shared::new(1));
        shared.subscribed.store(1, Ordering::Relaxed);
        let reader = shared.clone();
        let read = tokio::spawn(async move {
            while let Some(message) = messages.next().await {
                let at = now_ns();
                match message {
                    Ok(message) => {
                        if let Some(key) = stream_key(&message) {
                            arrived(&reader, key, at);
                        }
                    }
                    Err(_) => {
                        reader.drops.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
            }
            reader.drops.fetch_add(1, Ordering::Relaxed);
        });
        let reaper = shared.clone();
        let reap = tokio::spawn(reap(reaper));
        Ok(PushWatch {
            shared,
            tasks: vec![read, reap],
        })
    }

    /// Notes that the command that made `(ticket, version)` answered at `at` (`now_ns`).
    pub fn answered(&self, ticket: u128, version: u32, at: u64) {
        self.expect(ticket, version, at, true);
    }

    /// Notes a command whose pushes are expected but not measured (tickets opened to prepare
    /// a run).
    pub fn unmeasured(&self, ticket: u128, version: u32) {
        self.expect(ticket, version, now_ns(), false);
    }

    fn expect(&self, ticket: u128, version: u32, at: u64, measured: bool) {
        let clients = self.shared.clients;
        let mut book = self.shared.book.lock().unwrap_or_else(|e| e.into_inner());
        let already = match book.pending.remove(&(ticket, version)) {
            Some(Pending::Arrived { count, .. }) => count,
            Some(answered @ Pending::Answered { .. }) => {
                book.pending.insert((ticket, version), answered);
                return;
            }
            None => 0,
        };
        if measured {
            book.latencies.record_n(0, already as u64);
            book.early += already as u64;
        }
        if already < clients {
            let waiting = clients - already;
            let pending = Pending::Answered {
                at,
                measured,
                waiting,
            };
            book.pending.insert((ticket, version), pending);
        }
    }

    /// Waits until no push is awaited, or nothing arrived for `quiet`.
    pub async fn drain(&self, quiet: Duration) {
        let mut last = self.shared.pushes.load(Ordering::Relaxed);
        let mut quiet_since = Instant::now();
        loop {
            let awaited = {
                let book = self.shared.book.lock().unwrap_or_else(|e| e.into_inner());
                book.pending
                    .values()
                    .any(|p| matches!(p, Pending::Answered { .. }))
            };
            if !awaited || quiet_since.elapsed() > quiet {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = self.shared.pushes.load(Ordering::Relaxed);
            if now != last {
                (last, quiet_since) = (now, Instant::now());
            }
        }
    }

    /// Disconnects every client; counts what is still awaited as missing.
    pub fn finish(self) -> PushReport {
        for task in &self.tasks {
            task.abort();
        }
        forget_old(&self.shared, u64::MAX);
        let book = self.shared.book.lock().unwrap_or_else(|e| e.into_inner());
        PushReport {
            clients: self.shared.clients,
            latency: book.latencies.summary(),
            before_response: book.early,
            missing: book.missing,
            unmatched: book.unmatched,
            resyncs: self.shared.resyncs.load(Ordering::Relaxed),
            drops: self.shared.drops.load(Ordering::Relaxed),
        }
    }
}

/// Every few seconds, gives up on updates older than [`FORGET_AFTER`].
async fn reap(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        forget_old(
            &shared,
            now_ns().saturating_sub(FORGET_AFTER.as_nanos() as u64),
        );
    }
}

/// Gives up on updates first seen before `before`: awaited pushes count as missing, pushes
/// without a response as unmatched. Keeps memory flat in long runs.
fn forget_old(shared: &Shared, before: u64) {
    let mut book = shared.book.lock().unwrap_or_else(|e| e.into_inner());
    let (mut missing, mut unmatched) = (0, 0);
    book.pending.retain(|_, pending| match *pending {
        Pending::Answered { at, waiting, .. } if at < before => {
            missing += waiting as u64;
            false
        }
        Pending::Arrived { at, count } if at < before => {
            unmatched += count as u64;
            false
        }
        _ => true,
    });
    book.missing += missing;
    book.unmatched += unmatched;
}

fn arrived(shared: &Shared, key: (u128, u32), at: u64) {
    shared.pushes.fetch_add(1, Ordering::Relaxed);
    let mut book = shared.book.lock().unwrap_or_else(|e| e.into_inner());
    let book = &mut *book;
    match book.pending.get_mut(&key) {
        Some(Pending::Answered {
            at: answered,
            measured,
            waiting,
        }) => {
            if *measured {
                book.latencies.record(at.saturating_sub(*answered));
            }
            *waiting -= 1;
            if *waiting == 0 {
                book.pending.remove(&key);
            }
        }
        Some(Pending::Arrived { count, .. }) => *count += 1,
        None => {
            book.pending.insert(key, Pending::Arrived { at, count: 1 });
        }
    }
}

/// Connects, subscribes, and records every update; when the server drops it, connects again
/// after [`BACKOFF`] (as a screen does after `resync`).
async fn run_client(
    url: String,
    token: String,
    shared: Arc<Shared>,
    mut permit: Option<tokio::sync::OwnedSemaphorePermit>,
) {
    let subscription = json!({"type": "subscribe", "id": "q", "queue": {}});
    let mut failures = 0;
    loop {
        let mut socket = match open_socket(&url, &token, &subscription).await {
            Ok(socket) => socket,
            Err(error) => {
                failures += 1;
                assert!(failures < 100, "cannot connect a client: {error}");
                tokio::time::sleep(BACKOFF).await;
                continue;
            }
        };
        if permit.take().is_some() {
            shared.subscribed.fetch_add(1, Ordering::Relaxed);
        }
        while let Some(frame) = socket.next().await {
            match frame {
                Ok(Message::Text(text)) => {
                    let at = now_ns();
                    if let Some(key) = update_key(text.as_str()) {
                        arrived(&shared, key, at);
                    } else if text.contains(r#""type":"resync""#) {
                        shared.resyncs.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
        shared.drops.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(BACKOFF).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_nats::HeaderMap;

    #[test]
    fn a_ticket_message_id_names_the_ticket_and_its_version() {
        let id = Uuid::new_v4();
        assert_eq!(
            message_id_key(&format!("Ticket:{id}:7")),
            Some((id.as_u128(), 7))
        );
        assert_eq!(message_id_key(&format!("TicketSla:{id}:7")), None);
        assert_eq!(message_id_key(&format!("Ticket:{id}")), None);
        assert_eq!(message_id_key("Ticket:not-a-uuid:1"), None);
    }

    /// Publishes a ticket event as the relay does: on its subject, with its message id.
    async fn publish(js: &async_nats::jetstream::Context, prefix: &str, kind: &str, id: Uuid) {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("{kind}:{id}:1").as_str());
        let subject = format!(
            "{}.{kind}.{id}",
            helpdesk_schemas::events_subject_root(prefix)
        );
        js.publish_with_headers(subject, headers, "{}".into())
            .await
            .unwrap()
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn the_stream_watch_times_each_answered_ticket_event_and_counts_the_rest() {
        let nats = async_nats::connect(crate::nats_url()).await.unwrap();
        let js = async_nats::jetstream::new(nats);
        let prefix = crate::unique_prefix();
        helpdesk_platform::nats::ensure_events_stream(&js, &prefix)
            .await
            .unwrap();
        let watch = PushWatch::on_stream(&prefix).await.unwrap();
        let (answered, unanswered, never_published) =
            (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        watch.answered(answered.as_u128(), 1, now_ns());
        watch.answered(never_published.as_u128(), 1, now_ns());
        publish(&js, &prefix, "Ticket", answered).await;
        publish(&js, &prefix, "Ticket", unanswered).await;
        // Another aggregate's event is not read at all.
        publish(&js, &prefix, "TicketSla", answered).await;
        // Until the answered event has arrived (the other one never will).
        let deadline = Instant::now() + Duration::from_secs(30);
        while watch.shared.pushes.load(Ordering::Relaxed) < 2 {
            assert!(Instant::now() < deadline, "the events did not arrive");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let report = watch.finish();
        js.delete_stream(helpdesk_schemas::events_stream_name(&prefix))
            .await
            .unwrap();
        assert_eq!(report.latency.count, 1, "{report:?}");
        assert_eq!(report.missing, 1, "{report:?}");
        assert_eq!(report.unmatched, 1, "{report:?}");
        assert_eq!(report.drops, 0, "{report:?}");
    }
}

//! `GET /api/v1/realtime`: the feed over a WebSocket.
//!
//! One task reads the client and the feed and decides; a writer task owns the socket. Between
//! them sits a bounded queue: when it is full the client is not reading, so it is told
//! `resync` (if it can still take a frame) and dropped, and the server's memory stays bounded.
//! A ping goes out every `ping_interval`; a client silent for three intervals is dropped.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRef, State};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use helpdesk_domain::Principal;
use helpdesk_domain::access::AgentScope;
use helpdesk_platform::auth::{StreamAuthenticated, Verifier};
use helpdesk_platform::problem::Problem;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::Realtime;
use super::protocol::ServerMessage;
use super::session::{Next, Session};
use crate::error::QueryError;

/// The read buffer of each connection.
const READ_BUFFER: usize = 4 * 1024;
/// Frames written before one flush, when more are queued.
const WRITE_BATCH: usize = 64;

/// How long the farewell `resync` and the close frame may take.
const FAREWELL_TIMEOUT: Duration = Duration::from_secs(1);

/// Live ticket updates over a WebSocket.
///
/// Upgrades to a WebSocket. Send `{"type":"subscribe","id":"mine","queue":{"assignee":"me"}}`
/// (or `"ticket":"<id>"`, and `"since":<cursor>` to resume), `{"type":"unsubscribe","id":…}`
/// and `{"type":"presence","ticket":…,"state":"viewing"|"replying"|"idle"}`; receive
/// `update`, `left`, `sla` (staff only), `presence`, `subscribed`, `resync` and `error`
/// messages (schemas `ClientMessage` and `ServerMessage`; docs/api-guide.md). Browsers, which cannot set headers
/// on a WebSocket, may pass the token as `access_token`.
#[utoipa::path(
    get, path = "/api/v1/realtime", tag = "realtime",
    security(("bearer" = [])),
    params(("access_token" = Option<String>, Query, description = "The bearer token, for clients that cannot send an Authorization header")),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol; messages are `ClientMessage` and `ServerMessage`"),
        (status = 401, description = "Missing, expired or invalid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 426, description = "Not a WebSocket upgrade request", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "This instance serves no real-time feed", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn websocket<S>(
    State(state): State<S>,
    StreamAuthenticated(principal): StreamAuthenticated,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, QueryError>
where
    S: Clone + Send + Sync + 'static,
    Option<Realtime>: FromRef<S>,
    Arc<Verifier>: FromRef<S>,
{
    let realtime = Option::<Realtime>::from_ref(&state).ok_or(QueryError::RealtimeNotRunning)?;
    let upgrade =
        upgrade.map_err(|rejection| QueryError::UpgradeRequired(rejection.body_text()))?;
    let scope = Arc::<Verifier>::from_ref(&state).agent_scope();
    // Clients send a few small messages: a small read buffer keeps idle connections cheap
    // (the default, 128 KiB, is zero-filled on every read).
    Ok(upgrade
        .read_buffer_size(READ_BUFFER)
        .on_upgrade(move |socket| serve(realtime, principal, scope, socket)))
}

/// What the writer sends.
enum Frame {
    Message(ServerMessage),
    Ping,
}

async fn serve(realtime: Realtime, principal: Principal, scope: AgentScope, socket: WebSocket) {
    let settings = realtime.inner.settings.clone();
    let mut session = Session::open(realtime.inner.clone(), principal, scope);
    let (sink, mut incoming) = socket.split();
    let (outbox, queue) = mpsc::channel::<Frame>(settings.buffer.max(1));
    let (farewell, last_words) = oneshot::channel::<Option<ServerMessage>>();
    let writer = tokio::spawn(write(sink, queue, last_words, settings.write_timeout));
    let mut ping = tokio::time::interval_at(
        Instant::now() + settings.ping_interval,
        settings.ping_interval,
    );
    let mut heard = Instant::now();
    let behind = |reason: &str| {
        Some(ServerMessage::Resync {
            id: None,
            reason: reason.to_owned(),
        })
    };
    let last: Option<ServerMessage> = 'session: loop {
        tokio::select! {
            frame = incoming.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    heard = Instant::now();
                    for reply in session.handle(text.as_str()).await {
                        // Replies (a replay, say) may exceed the queue: wait for room, as long
                        // as a write may take.
                        let queued = tokio::time::timeout(
                            settings.write_timeout,
                            outbox.send(Frame::Message(reply)),
                        )
                        .await;
                        if !matches!(queued, Ok(Ok(()))) {
                            break 'session behind("the client does not read fast enough");
                        }
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    heard = Instant::now();
                    let reply = ServerMessage::Error { id: None, detail: "send JSON text frames".into() };
                    if outbox.try_send(Frame::Message(reply)).is_err() {
                        break 'session behind("the client does not read fast enough");
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => heard = Instant::now(),
                Some(Ok(Message::Close(_)) | Err(_)) | None => break 'session None,
            },
            next = session.next() => match next {
                Next::Send(messages) => {
                    for message in messages {
                        if outbox.try_send(Frame::Message(message)).is_err() {
                            break 'session behind("the client does not read fast enough");
                        }
                    }
                }
                Next::Behind => break 'session behind("the connection fell behind the feed"),
            },
            _ = ping.tick() => {
                if heard.elapsed() > settings.ping_interval * 3 {
                    break 'session None;
                }
                if outbox.try_send(Frame::Ping).is_err() {
                    break 'session behind("the client does not read fast enough");
                }
            }
        }
    };
    if last.is_some() {
        realtime.inner.dropped.fetch_add(1, Ordering::Relaxed);
    }
    session.close().await;
    let _ = farewell.send(last);
    drop(outbox);
    let _ = writer.await;
}

/// Sends queued frames, each within `timeout`; on the farewell, sends it (if any) and a close
/// frame, abandoning whatever is still queued.
async fn write(
    mut sink: futures::stream::SplitSink<WebSocket, Message>,
    mut queue: mpsc::Receiver<Frame>,
    mut last_words: oneshot::Receiver<Option<ServerMessage>>,
    timeout: Duration,
) {
    loop {
        tokio::select! {
            biased;
            farewell = &mut last_words => {
                if let Ok(Some(message)) = farewell {
                    let text = Message::Text(message.to_json().into());
                    let _ = tokio::time::timeout(FAREWELL_TIMEOUT, sink.send(text)).await;
                }
                let _ = tokio::time::timeout(FAREWELL_TIMEOUT, sink.send(Message::Close(None))).await;
                return;
            }
            frame = queue.recv() => {
                let Some(frame) = frame else { return };
                // Write what is queued with one flush (one system call for a burst).
                let mut batch = vec![frame];
                while batch.len() < WRITE_BATCH {
                    match queue.try_recv() {
                        Ok(frame) => batch.push(frame),
                        Err(_) => break,
                    }
                }
                let written = tokio::time::timeout(timeout, async {
                    for frame in batch {
                        sink.feed(frame.into_message()).await?;
                    }
                    sink.flush().await
                })
                .await;
                if !matches!(written, Ok(Ok(()))) {
                    return;
                }
            }
        }
    }
}

impl Frame {
    fn into_message(self) -> Message {
        match self {
            Frame::Message(message) => Message::Text(message.to_json().into()),
            Frame::Ping => Message::Ping(Default::default()),
        }
    }
}

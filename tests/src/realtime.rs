//! A small client of the real-time feed for tests and benchmarks: a WebSocket that sends and
//! receives JSON, and a Server-Sent Events reader.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for a message it expects.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// A WebSocket connection to `GET /api/v1/realtime`.
pub struct WsClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl WsClient {
    /// Connects to the product at `base` (`http://host:port`) with a bearer token.
    pub async fn connect(base: &str, token: &str) -> WsClient {
        let url = format!("{}/api/v1/realtime", base.replacen("http", "ws", 1));
        let mut request = url.into_client_request().expect("a WebSocket URL");
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("a header value"),
        );
        let (socket, response) = tokio_tungstenite::connect_async(request)
            .await
            .expect("the WebSocket upgrade succeeds");
        assert_eq!(response.status().as_u16(), 101);
        WsClient { socket }
    }

    /// Connects over a TCP socket with a tiny receive buffer (a client that reads slowly fills
    /// the server's buffers quickly).
    pub async fn connect_with_small_buffer(base: &str, token: &str) -> WsClient {
        let address = base
            .trim_start_matches("http://")
            .parse()
            .expect("host:port");
        let tcp = tokio::net::TcpSocket::new_v4().expect("a socket");
        tcp.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let stream = tcp.connect(address).await.expect("connect");
        let url = format!("{}/api/v1/realtime", base.replacen("http", "ws", 1));
        let mut request = url.into_client_request().expect("a WebSocket URL");
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("a header value"),
        );
        let (socket, _) = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream))
            .await
            .expect("the WebSocket upgrade succeeds");
        WsClient { socket }
    }

    /// Sends one JSON message.
    pub async fn send(&mut self, message: Value) {
        self.socket
            .send(Message::Text(message.to_string().into()))
            .await
            .expect("send a message");
    }

    /// Subscribes and waits for the acknowledgement; returns the messages before it (the
    /// replay, when `since` was given) and the acknowledged cursor.
    pub async fn subscribe(&mut self, subscription: Value) -> (Vec<Value>, u64) {
        let id = subscription["id"].as_str().expect("an id").to_owned();
        let mut message = subscription;
        message["type"] = Value::from("subscribe");
        self.send(message).await;
        let mut before = Vec::new();
        loop {
            let next = self.next().await;
            if next["type"] == "subscribed" && next["id"] == id.as_str() {
                return (before, next["cursor"].as_u64().expect("a cursor"));
            }
            assert_ne!(next["type"], "error", "subscription refused: {next}");
            before.push(next);
        }
    }

    /// The next JSON message (pings and pongs skipped); fails the test after [`PATIENCE`].
    pub async fn next(&mut self) -> Value {
        tokio::time::timeout(PATIENCE, self.receive())
            .await
            .expect("a message within the patience")
            .expect("the connection stays open")
    }

    /// The next JSON message, or `None` when the server closed the connection.
    pub async fn receive(&mut self) -> Option<Value> {
        while let Some(frame) = self.socket.next().await {
            match frame {
                Ok(Message::Text(text)) => {
                    return Some(serde_json::from_str(&text).expect("JSON from the server"));
                }
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
        None
    }

    /// Skips messages until one of type `kind` arrives.
    pub async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let message = self.next().await;
            if message["type"] == kind {
                return message;
            }
        }
    }

    /// Reads messages until `last` says one is the last wanted; returns them all, that one
    /// included. Fails the test on a `resync` or an `error`, and after [`PATIENCE`] without a
    /// message.
    pub async fn read_until(&mut self, mut last: impl FnMut(&Value) -> bool) -> Vec<Value> {
        let mut read = Vec::new();
        loop {
            let message = self.next().await;
            assert!(
                message["type"] != "resync" && message["type"] != "error",
                "{message}"
            );
            let done = last(&message);
            read.push(message);
            if done {
                return read;
            }
        }
    }

    /// Closes the connection.
    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: Value,
}

/// A reader of `GET /api/v1/realtime/sse`.
pub struct SseClient {
    response: reqwest::Response,
    buffer: String,
}

impl SseClient {
    /// Opens the stream (`query` without the `?`; `last_event_id` sent as `Last-Event-ID`).
    /// Returns the response's status and, when it is 200, the reader.
    pub async fn open(
        base: &str,
        token: &str,
        query: &str,
        last_event_id: Option<u64>,
    ) -> (u16, Option<SseClient>) {
        let mut request = reqwest::Client::new()
            .get(format!("{base}/api/v1/realtime/sse?{query}"))
            .bearer_auth(token);
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let response = request.send().await.expect("the SSE request is answered");
        let status = response.status().as_u16();
        if status != 200 {
            return (status, None);
        }
        (
            status,
            Some(SseClient {
                response,
                buffer: String::new(),
            }),
        )
    }

    /// The next event (comments skipped); fails the test after [`PATIENCE`].
    pub async fn next(&mut self) -> SseEvent {
        tokio::time::timeout(PATIENCE, self.read())
            .await
            .expect("an event within the patience")
    }

    async fn read(&mut self) -> SseEvent {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = String::from("message");
                let mut id = None;
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        event = value.trim().to_owned();
                    } else if let Some(value) = line.strip_prefix("id:") {
                        id = Some(value.trim().to_owned());
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.trim_start());
                    }
                }
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                return SseEvent {
                    event,
                    id,
                    data: serde_json::from_str(&data).expect("JSON data"),
                };
            }
            let chunk = self
                .response
                .chunk()
                .await
                .expect("the stream stays readable")
                .expect("the stream stays open");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

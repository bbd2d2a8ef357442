//! `GET /api/v1/realtime/sse`: the same feed as Server-Sent Events, one subscription per
//! connection, the message's cursor as the SSE `id` (so `Last-Event-ID` resumes).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRef, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use helpdesk_domain::ticket::{Priority, Status};
use helpdesk_platform::auth::{StreamAuthenticated, Verifier};
use helpdesk_platform::problem::Problem;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use utoipa::IntoParams;

use super::Realtime;
use super::protocol::ServerMessage;
use super::session::{Next, Refusal, Session};
use super::summary::{QueueFilter, Target};
use crate::error::QueryError;

/// What to follow: `ticket`, or a queue given by the other filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SseParams {
    /// Follow this ticket (then no queue filter may be given).
    pub ticket: Option<String>,
    /// Queue: `me`, `none` or an agent id.
    pub assignee: Option<String>,
    /// Queue: a group, or `none`.
    pub group: Option<String>,
    /// Queue: any of these statuses, comma-separated (`new,open`).
    pub status: Option<String>,
    /// Queue: any of these priorities, comma-separated.
    pub priority: Option<String>,
    /// Queue: all of these tags, comma-separated.
    pub tags: Option<String>,
    /// Resume after this cursor (the `Last-Event-ID` header wins).
    pub since: Option<u64>,
    /// The bearer token, for clients (EventSource) that cannot send an Authorization header.
    pub access_token: Option<String>,
}

impl SseParams {
    fn target(&self) -> Result<Target, QueryError> {
        let queue = QueueFilter {
            assignee: self.assignee.clone(),
            group: self.group.clone(),
            statuses: list::<Status>("status", self.status.as_deref())?,
            priorities: list::<Priority>("priority", self.priority.as_deref())?,
            tags: list::<String>("tags", self.tags.as_deref())?,
        };
        match &self.ticket {
            Some(ticket) if queue == QueueFilter::default() => Ok(Target::Ticket(ticket.clone())),
            Some(_) => Err(QueryError::InvalidParameter {
                name: "ticket",
                detail: "follow either one ticket or a queue, not both".into(),
            }),
            None => Ok(Target::Queue(queue)),
        }
    }
}

/// A comma-separated list of wire values.
fn list<T: DeserializeOwned>(name: &'static str, raw: Option<&str>) -> Result<Vec<T>, QueryError> {
    raw.into_iter()
        .flat_map(|raw| raw.split(','))
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            serde_json::from_value(serde_json::Value::from(item)).map_err(|_| {
                QueryError::InvalidParameter {
                    name,
                    detail: format!("{item:?} is not a known value"),
                }
            })
        })
        .collect()
}

/// Live ticket updates as Server-Sent Events.
///
/// Events: `update`, `left` and `sla` (staff only; each with the feed cursor as `id`),
/// `subscribed`, `presence` (staff following a ticket) and `resync`; `data` is the JSON
/// `ServerMessage`. Reconnect with `Last-Event-ID` (EventSource does) or `since` to get every
/// missed message first.
#[utoipa::path(
    get, path = "/api/v1/realtime/sse", tag = "realtime",
    security(("bearer" = [])),
    params(
        SseParams,
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this cursor (the id of the last event received)"),
    ),
    responses(
        (status = 200, description = "An endless `text/event-stream`", content_type = "text/event-stream", body = ServerMessage),
        (status = 400, description = "Invalid filter or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, expired or invalid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such ticket, or not yours", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "This instance serves no real-time feed", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn events<S>(
    State(state): State<S>,
    StreamAuthenticated(principal): StreamAuthenticated,
    headers: HeaderMap,
    params: Result<Query<SseParams>, QueryRejection>,
) -> Result<Response, QueryError>
where
    S: Clone + Send + Sync + 'static,
    Option<Realtime>: FromRef<S>,
    Arc<Verifier>: FromRef<S>,
{
    let Query(params) = params?;
    let realtime = Option::<Realtime>::from_ref(&state).ok_or(QueryError::RealtimeNotRunning)?;
    let target = params.target()?;
    let since = match headers.get("last-event-id") {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok())
                .ok_or_else(|| QueryError::InvalidParameter {
                    name: "Last-Event-ID",
                    detail: "must be a cursor this feed sent as an event id".into(),
                })?,
        ),
        None => params.since,
    };
    let scope = Arc::<Verifier>::from_ref(&state).agent_scope();
    let mut session = Session::open(realtime.inner.clone(), principal, scope);
    let first = match session.subscribe("sse".into(), target, since).await {
        Ok(first) => first,
        Err(refusal) => {
            session.close().await;
            return Err(match refusal {
                Refusal::Invalid(detail) => QueryError::InvalidParameter {
                    name: "query",
                    detail,
                },
                Refusal::NotFound => QueryError::TicketNotFound,
                Refusal::Store(error) => error,
            });
        }
    };
    let (outbox, queue) = mpsc::channel::<ServerMessage>(realtime.inner.settings.buffer.max(1));
    let fell_behind = Arc::new(AtomicBool::new(false));
    tokio::spawn(pump(realtime, session, outbox, fell_behind.clone()));
    let farewell = futures::stream::once(async move {
        fell_behind
            .load(Ordering::Relaxed)
            .then(|| ServerMessage::Resync {
                id: None,
                reason: "the client did not read fast enough".into(),
            })
    })
    .filter_map(std::future::ready);
    let stream = futures::stream::iter(first)
        .chain(ReceiverStream::new(queue))
        .chain(farewell)
        .map(|message| Ok::<Event, Infallible>(event(&message)));
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// Moves the session's messages into the bounded queue until the client leaves or stops
/// reading.
async fn pump(
    realtime: Realtime,
    mut session: Session,
    outbox: mpsc::Sender<ServerMessage>,
    fell_behind: Arc<AtomicBool>,
) {
    'session: loop {
        tokio::select! {
            () = outbox.closed() => break 'session,
            next = session.next() => {
                let messages = match next {
                    Next::Send(messages) => messages,
                    Next::Behind => {
                        fell_behind.store(true, Ordering::Relaxed);
                        break 'session;
                    }
                };
                for message in messages {
                    match outbox.try_send(message) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            fell_behind.store(true, Ordering::Relaxed);
                            break 'session;
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => break 'session,
                    }
                }
            }
        }
    }
    if fell_behind.load(Ordering::Relaxed) {
        realtime.inner.dropped.fetch_add(1, Ordering::Relaxed);
    }
    session.close().await;
}

fn event(message: &ServerMessage) -> Event {
    let (name, id) = message.sse_name();
    let event = Event::default().event(name).data(message.to_json());
    match id {
        Some(cursor) => event.id(cursor.to_string()),
        None => event,
    }
}

//! Runs a ticket command against the event store: load, check `If-Match`, decide, append.
//!
//! Concurrency (invariant 7): the aggregate version is the ETag. A stale `If-Match` is a 412.
//! Two writers that both loaded version N race on inserting sequence N+1; the primary key lets
//! exactly one win and the loser sees a conflict. The loser's command is then run once more
//! against the new state: if it still applies it is appended, otherwise the client gets 409.

use std::collections::HashMap;

use cqrs_es::{Aggregate, AggregateError, EventStore};
use helpdesk_domain::access::{self, Access, Action, TicketFacts};
use helpdesk_domain::ticket::{Ticket, TicketCommand, TicketError};
use helpdesk_domain::{Actor, Principal};

use helpdesk_platform::problem::Change;

use crate::error::ApiError;
use crate::extract::{IfMatch, RequestContext};
use crate::state::AppState;
use crate::state::TicketStore;
use crate::store::{appending, on_one_connection, release_connection};

/// Where a successful command left the ticket.
#[derive(Debug, Clone, Copy)]
pub struct Written {
    /// The ticket's version (the sequence of its last event): its ETag.
    pub version: u64,
    /// The global position of the last event written, for read-your-writes.
    pub position: i64,
}

/// The metadata every event of this command carries (invariant 6).
pub(crate) fn metadata(
    actor: &Actor,
    context: &RequestContext,
    command: &str,
) -> HashMap<String, String> {
    HashMap::from([
        ("actor_id".to_owned(), actor.id.clone()),
        ("actor_role".to_owned(), actor.role.as_str().to_owned()),
        (
            "occurred_at".to_owned(),
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        ),
        ("correlation_id".to_owned(), context.correlation_id.clone()),
        ("causation_id".to_owned(), context.causation_id.clone()),
        ("request_id".to_owned(), context.request_id.clone()),
        ("command".to_owned(), command.to_owned()),
    ])
}

/// Executes `command` on ticket `ticket_id` and records the outcome in the metrics.
pub async fn execute(
    state: &AppState,
    ticket_id: &str,
    if_match: &IfMatch,
    command: TicketCommand,
    principal: &Principal,
    context: &RequestContext,
) -> Result<Written, ApiError> {
    let name = command.name();
    let result =
        on_one_connection(run(state, ticket_id, if_match, command, principal, context)).await;
    let outcome = match &result {
        Ok(_) => "accepted",
        Err(ApiError::Internal(_)) => "error",
        Err(ApiError::DatabaseUnavailable) => "unavailable",
        Err(ApiError::WriteConflict(_) | ApiError::PreconditionFailed { .. }) => "conflict",
        Err(_) => "rejected",
    };
    state.metrics.record_command(name, outcome);
    result
}

async fn run(
    state: &AppState,
    ticket_id: &str,
    if_match: &IfMatch,
    command: TicketCommand,
    principal: &Principal,
    context: &RequestContext,
) -> Result<Written, ApiError> {
    let metadata = metadata(&principal.actor(), context, command.name());
    let creates = matches!(command, TicketCommand::Open(_));
    for attempt in 0..2 {
        let mut loaded = state
            .store
            .load_aggregate(ticket_id)
            .await
            .map_err(ApiError::internal)?;
        let current = loaded.current_sequence as u64;
        if !creates && current == 0 {
            return Err(ApiError::TicketNotFound);
        }
        authorize(state, principal, &command, &loaded.aggregate)?;
        if !creates && !if_match.matches(current) {
            // Reading the changes takes a connection of its own: do not hold two.
            release_connection();
            return Err(ApiError::PreconditionFailed {
                current_version: current,
                changes: missed_changes(state, principal, ticket_id, if_match, current).await?,
            });
        }
        let events = match loaded.aggregate.decide(command.clone()) {
            Ok(events) => events,
            Err(error) if attempt > 0 => return Err(lost_race(error)),
            Err(error) => return Err(error.into()),
        };
        for event in &events {
            loaded.aggregate.apply(event.clone());
        }
        let (committed, appended_at) =
            appending(state.store.commit(events, loaded, metadata.clone())).await;
        match committed {
            Ok(committed) => {
                state.relay_wakeup.notify_one();
                let version = committed.last().map_or(current, |e| e.sequence as u64);
                // Every decision appends at least one event, so the append reports a
                // position; without one the command is still committed, hence a 500.
                let position = appended_at.ok_or_else(|| {
                    ApiError::Internal("the append reported no global position".into())
                })?;
                return Ok(Written { version, position });
            }
            Err(AggregateError::AggregateConflict) => {
                tracing::debug!(ticket_id, attempt, "append lost a race; retrying");
            }
            Err(error) => return Err(ApiError::internal(error)),
        }
    }
    Err(ApiError::WriteConflict(
        "the ticket was changed by other requests while this one ran; retry it".into(),
    ))
}

/// The most changes a 412 lists.
const MAX_LISTED_CHANGES: i64 = 100;

/// The events after the newest version the stale `If-Match` names (the client's view), so the
/// client can show what someone else did. Internal notes are left out for those who may not
/// read them.
async fn missed_changes(
    state: &AppState,
    principal: &Principal,
    ticket_id: &str,
    if_match: &IfMatch,
    current: u64,
) -> Result<Vec<Change>, ApiError> {
    let seen = match if_match {
        IfMatch::Versions(versions) => versions.iter().copied().filter(|v| *v < current).max(),
        IfMatch::Absent | IfMatch::Any => None,
    };
    let Some(seen) = seen else {
        return Ok(Vec::new());
    };
    #[derive(sqlx::FromRow)]
    struct Row {
        sequence: i64,
        event_type: String,
        actor_id: Option<String>,
        actor_role: Option<String>,
        recorded_at: chrono::DateTime<chrono::Utc>,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT sequence, event_type, metadata->>'actor_id' AS actor_id, \
                    metadata->>'actor_role' AS actor_role, recorded_at \
               FROM events \
              WHERE aggregate_type = 'Ticket' AND aggregate_id = $1 AND sequence > $2 \
                AND ($3 OR payload #>> '{ReplyAdded,visibility}' IS DISTINCT FROM 'internal') \
              ORDER BY sequence LIMIT $4",
    )
    .bind(ticket_id)
    .bind(i64::try_from(seen).unwrap_or(i64::MAX))
    .bind(access::sees_internal_notes(principal))
    .bind(MAX_LISTED_CHANGES)
    .fetch_all(&state.pool)
    .await
    .map_err(ApiError::internal)?;
    Ok(rows
        .into_iter()
        .map(|row| Change {
            version: u64::try_from(row.sequence).unwrap_or_default(),
            event_type: row.event_type,
            actor_id: row.actor_id,
            actor_role: row.actor_role,
            recorded_at: row.recorded_at,
        })
        .collect())
}

/// Asks the access policy whether `principal` may run `command` on `ticket` (invariant 10).
/// Every command passes here, before `If-Match` is compared, so that a stale precondition
/// never tells a customer that someone else's ticket exists.
fn authorize(
    state: &AppState,
    principal: &Principal,
    command: &TicketCommand,
    ticket: &Ticket,
) -> Result<(), ApiError> {
    let action = match command {
        TicketCommand::Open(open) => Action::Open {
            requester_id: &open.requester.customer_id,
        },
        TicketCommand::ChangeStatus { to } => Action::ChangeStatus { to: *to },
        TicketCommand::ChangePriority { .. } => Action::ChangePriority,
        TicketCommand::Assign(_) => Action::Assign,
        TicketCommand::ChangeTags(_) => Action::ChangeTags,
        TicketCommand::AddInteraction(add) => Action::AddInteraction {
            visibility: add.visibility,
        },
    };
    let facts = ticket.requester_id().map(|requester_id| TicketFacts {
        requester_id,
        group: ticket.group(),
    });
    match access::decide(principal, state.verifier.agent_scope(), action, facts) {
        Access::Allowed => Ok(()),
        Access::Forbidden(reason) => Err(ApiError::Forbidden(reason)),
        Access::Hidden => Err(ApiError::TicketNotFound),
    }
}

fn lost_race(error: TicketError) -> ApiError {
    ApiError::WriteConflict(format!(
        "the ticket changed while this request ran and the command no longer applies: {error}"
    ))
}

/// Loads a ticket's current state and version, for callers that need to look before writing.
pub async fn load(store: &TicketStore, ticket_id: &str) -> Result<(Ticket, u64), ApiError> {
    let loaded = store
        .load_aggregate(ticket_id)
        .await
        .map_err(ApiError::internal)?;
    Ok((loaded.aggregate, loaded.current_sequence as u64))
}

//! Ticket search and the agent's own queue, served from the search read model.
//!
//! Both endpoints take `min_position` (read-your-writes): the answer waits until the search
//! index reflects the event at that global position (the position a command response
//! reported), at most [`MIN_POSITION_WAIT`], else `503` with `Retry-After`.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRef, Query, State};
use chrono::{DateTime, Utc};
use helpdesk_domain::access::{self, AgentScope, Principal};
use helpdesk_domain::actor::Role;
use helpdesk_domain::ticket::{Channel, Priority, Requester, Status};
use helpdesk_platform::auth::{Authenticated, Verifier};
use helpdesk_platform::problem::Problem;
use helpdesk_search::parse::parse;
use helpdesk_search::projection::SearchReader;
use helpdesk_search::{
    BackendError, Clause, Condition, Cursor, FacetCount, ParseContext, Scope, SearchRequest, Sort,
    TicketDocument,
};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

use crate::error::QueryError;

/// Longest a `min_position` read waits for the read model.
pub const MIN_POSITION_WAIT: Duration = Duration::from_secs(5);
/// Hits per page unless `limit` says otherwise.
const DEFAULT_LIMIT: usize = 25;
/// Most hits per page.
const MAX_LIMIT: usize = 100;

/// Query parameters of a search.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// The query, e.g. `refund status<solved -tags:spam assignee:me` (grammar in
    /// `docs/search.md`). Empty: every ticket you may see.
    pub q: Option<String>,
    /// `-updated_at` (default), `updated_at`, `created_at`, `-created_at`, `priority`,
    /// `-priority`, `status`, `-status`. Ties are broken by creation order.
    pub sort: Option<String>,
    /// The `next` value of the previous page. No depth limit.
    pub cursor: Option<String>,
    /// Hits per page, 1–100 (default 25).
    pub limit: Option<usize>,
    /// Wait until the results reflect the event at this global position (from a command
    /// response), at most 5 s.
    pub min_position: Option<i64>,
}

/// Query parameters of the agent's queue.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QueueParams {
    /// The `next` value of the previous page.
    pub cursor: Option<String>,
    /// Hits per page, 1–100 (default 25).
    pub limit: Option<usize>,
    /// Wait until the queue reflects the event at this global position, at most 5 s.
    pub min_position: Option<i64>,
}

/// One ticket in search results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TicketHit {
    pub id: String,
    /// The ticket's version (events applied).
    pub version: u64,
    pub subject: String,
    pub status: Status,
    pub priority: Priority,
    pub channel: Channel,
    pub requester: Requester,
    pub assignee: Option<String>,
    pub group: Option<String>,
    pub tags: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the ticket was last solved (kept once closed; cleared when reopened).
    pub solved_at: Option<DateTime<Utc>>,
    /// Replies: public ones and internal notes for staff and auditors, public ones only for
    /// customers.
    pub reply_count: u64,
}

impl TicketHit {
    /// The hit as `principal` may see it.
    fn of(document: TicketDocument, principal: &Principal) -> Self {
        let reply_count = if access::sees_internal_notes(principal) {
            document.reply_count
        } else {
            document.public_reply_count
        };
        TicketHit {
            id: document.id,
            version: u64::try_from(document.last_sequence).unwrap_or_default(),
            subject: document.subject,
            status: document.status,
            priority: document.priority,
            channel: document.channel,
            requester: Requester {
                customer_id: document.requester_id,
                name: document.requester_name,
                email: document.requester_email,
            },
            assignee: document.assignee,
            group: document.group,
            tags: document.tags,
            created_at: document.created_at,
            updated_at: document.updated_at,
            solved_at: document.solved_at,
            reply_count,
        }
    }
}

/// A page of search results.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SearchPage {
    pub hits: Vec<TicketHit>,
    /// Every matching ticket, on all pages.
    pub total: u64,
    /// Counts over all matching tickets for `status`, `priority`, `assignee`, `group`,
    /// `tags` and `channel`: the 50 most frequent values each, most frequent first; `none`
    /// counts unassigned / ungrouped tickets.
    pub facets: BTreeMap<String, Vec<FacetCountView>>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next: Option<String>,
    /// The sort the page is in.
    pub sort: String,
}

/// One facet value and how many matching tickets carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FacetCountView {
    pub value: String,
    pub count: u64,
}

impl From<FacetCount> for FacetCountView {
    fn from(facet: FacetCount) -> Self {
        FacetCountView {
            value: facet.value,
            count: facet.count,
        }
    }
}

/// Search tickets.
///
/// Free text, phrases and field filters, all ANDed (grammar in `docs/search.md`). Customers
/// only ever find their own tickets, and internal notes are searched for staff and auditors
/// only. Served from the search index, which follows the event stream within about a second;
/// pass `min_position` to wait for your own write.
#[utoipa::path(
    get, path = "/api/v1/tickets/search", tag = "search",
    security(("bearer" = [])),
    params(SearchParams),
    responses(
        (status = 200, description = "A page of matching tickets, with facet counts", body = SearchPage),
        (status = 400, description = "Invalid sort, cursor, limit or min_position", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, expired or invalid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The query does not parse; `position` says where", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The index has not reached `min_position` in time (see Retry-After), or search is not running", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn search<S>(
    State(state): State<S>,
    Authenticated(principal): Authenticated,
    params: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Json<SearchPage>, QueryError>
where
    S: Clone + Send + Sync + 'static,
    PgPool: FromRef<S>,
    Arc<Verifier>: FromRef<S>,
    Option<SearchReader>: FromRef<S>,
{
    let Query(params) = params?;
    let sort = match params.sort.as_deref() {
        None => Sort::default(),
        Some(raw) => Sort::parse(raw).ok_or_else(|| QueryError::InvalidParameter {
            name: "sort",
            detail: "must be one of updated_at, created_at, priority, status, each optionally \
                     with a leading - for descending"
                .into(),
        })?,
    };
    let include_internal = access::sees_internal_notes(&principal);
    let context = ParseContext {
        me: principal.id.clone(),
        now: Utc::now(),
        include_internal,
    };
    let query = parse(params.q.as_deref().unwrap_or(""), &context).map_err(|error| {
        QueryError::InvalidQuery {
            position: error.position,
            message: error.message,
        }
    })?;
    let paging = Paging {
        cursor: params.cursor,
        limit: params.limit,
        min_position: params.min_position,
    };
    answer(&state, &principal, query, include_internal, sort, paging).await
}

/// Tickets assigned to me.
///
/// The caller's own queue: tickets assigned to them, in status order (`new`, `open`,
/// `pending`, `on_hold` first, then `solved` and `closed`), ties by creation order. Staff
/// only.
#[utoipa::path(
    get, path = "/api/v1/agents/me/tickets", tag = "search",
    security(("bearer" = [])),
    params(QueueParams),
    responses(
        (status = 200, description = "A page of the caller's assigned tickets", body = SearchPage),
        (status = 400, description = "Invalid cursor, limit or min_position", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, expired or invalid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Customers and auditors have no queue", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The index has not reached `min_position` in time (see Retry-After), or search is not running", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn my_tickets<S>(
    State(state): State<S>,
    Authenticated(principal): Authenticated,
    params: Result<Query<QueueParams>, QueryRejection>,
) -> Result<Json<SearchPage>, QueryError>
where
    S: Clone + Send + Sync + 'static,
    PgPool: FromRef<S>,
    Arc<Verifier>: FromRef<S>,
    Option<SearchReader>: FromRef<S>,
{
    let Query(params) = params?;
    if !matches!(principal.role, Role::Agent | Role::Manager | Role::Admin) {
        return Err(QueryError::Forbidden);
    }
    let sort = Sort {
        field: helpdesk_search::SortField::Status,
        descending: false,
    };
    let query = helpdesk_search::Query {
        clauses: vec![Clause {
            negated: false,
            condition: Condition::Assignee(Some(principal.id.clone())),
        }],
    };
    let paging = Paging {
        cursor: params.cursor,
        limit: params.limit,
        min_position: params.min_position,
    };
    answer(&state, &principal, query, true, sort, paging).await
}

/// The paging and consistency parameters every search endpoint takes.
struct Paging {
    cursor: Option<String>,
    limit: Option<usize>,
    min_position: Option<i64>,
}

/// Runs `query` for `principal` within what it may see, once the index has reached
/// `min_position`.
async fn answer<S>(
    state: &S,
    principal: &Principal,
    query: helpdesk_search::Query,
    include_internal: bool,
    sort: Sort,
    paging: Paging,
) -> Result<Json<SearchPage>, QueryError>
where
    S: Clone + Send + Sync + 'static,
    PgPool: FromRef<S>,
    Arc<Verifier>: FromRef<S>,
    Option<SearchReader>: FromRef<S>,
{
    let reader = Option::<SearchReader>::from_ref(state).ok_or(QueryError::SearchNotRunning)?;
    let request = SearchRequest {
        query,
        scope: scope_of(principal, Arc::<Verifier>::from_ref(state).agent_scope()),
        include_internal,
        sort,
        after: cursor(paging.cursor.as_deref(), &sort)?,
        limit: limit(paging.limit)?,
    };
    wait_for_position(&PgPool::from_ref(state), &reader, paging.min_position).await?;
    run(&reader, &request, principal).await.map(Json)
}

/// The tickets a principal may find at all.
fn scope_of(principal: &Principal, agent_scope: AgentScope) -> Scope {
    match principal.role {
        // A customer token without a customer id finds nothing.
        Role::Customer => Scope::Customer(principal.customer_id.clone().unwrap_or_default()),
        Role::Agent if agent_scope == AgentScope::Groups => Scope::Groups(principal.groups.clone()),
        _ => Scope::All,
    }
}

fn cursor(raw: Option<&str>, sort: &Sort) -> Result<Option<Cursor>, QueryError> {
    raw.map(|raw| Cursor::decode(raw, sort))
        .transpose()
        .map_err(|detail| QueryError::InvalidParameter {
            name: "cursor",
            detail,
        })
}

fn limit(raw: Option<usize>) -> Result<usize, QueryError> {
    match raw {
        None => Ok(DEFAULT_LIMIT),
        Some(limit @ 1..=MAX_LIMIT) => Ok(limit),
        Some(_) => Err(QueryError::InvalidParameter {
            name: "limit",
            detail: format!("must be between 1 and {MAX_LIMIT}"),
        }),
    }
}

async fn run(
    reader: &SearchReader,
    request: &SearchRequest,
    principal: &Principal,
) -> Result<SearchPage, QueryError> {
    let results = reader
        .backend
        .search(request)
        .await
        .map_err(backend_error)?;
    Ok(SearchPage {
        hits: results
            .hits
            .into_iter()
            .map(|document| TicketHit::of(document, principal))
            .collect(),
        total: results.total,
        facets: results
            .facets
            .into_iter()
            .map(|(name, counts)| (name, counts.into_iter().map(Into::into).collect()))
            .collect(),
        next: results.next.map(|next| next.encode(&request.sort)),
        sort: request.sort.as_string(),
    })
}

/// An unreachable backend is a 503 (retry later); a refused request is our bug (500).
fn backend_error(error: BackendError) -> QueryError {
    match error {
        BackendError::Unavailable(reason) => {
            tracing::warn!(%reason, "search backend unavailable");
            QueryError::SearchNotRunning
        }
        BackendError::Rejected(_) => QueryError::internal(error),
    }
}

/// Waits until the search index reflects the event at `position`: the document of its ticket
/// has reached the event's sequence. Positions without an event (gaps, other aggregates)
/// need no wait once the store has passed them.
async fn wait_for_position(
    pool: &PgPool,
    reader: &SearchReader,
    position: Option<i64>,
) -> Result<(), QueryError> {
    let Some(position) = position else {
        return Ok(());
    };
    if position < 1 {
        return Err(QueryError::InvalidParameter {
            name: "min_position",
            detail: "must be a global position (a positive integer) from a command response".into(),
        });
    }
    let deadline = tokio::time::Instant::now() + MIN_POSITION_WAIT;
    let mut commits = reader.commits.clone();
    loop {
        if reflects(pool, reader, position).await? {
            return Ok(());
        }
        // Woken by the projection's commits when it runs in this process; the poll covers a
        // projector elsewhere (and a missed wake-up).
        let poll = if commits.has_changed().is_ok() {
            Duration::from_millis(250)
        } else {
            Duration::from_millis(25)
        };
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => return Err(QueryError::NotYetReflected),
            changed = commits.changed() => {
                if changed.is_err() {
                    tokio::time::sleep(poll).await;
                }
            }
            () = tokio::time::sleep(poll) => {}
        }
    }
}

async fn reflects(pool: &PgPool, reader: &SearchReader, position: i64) -> Result<bool, QueryError> {
    let event: Option<(String, String, i64)> = sqlx::query_as(
        "SELECT aggregate_type, aggregate_id, sequence FROM events WHERE global_position = $1",
    )
    .bind(position)
    .fetch_optional(pool)
    .await
    .map_err(QueryError::internal)?;
    let Some((aggregate_type, ticket_id, sequence)) = event else {
        // No event there: a gap, or a position not committed yet.
        let head: Option<i64> = sqlx::query_scalar("SELECT max(global_position) FROM events")
            .fetch_one(pool)
            .await
            .map_err(QueryError::internal)?;
        return Ok(head.is_some_and(|head| head >= position));
    };
    if aggregate_type != "Ticket" {
        return Ok(true);
    }
    let version = reader
        .backend
        .searchable_version(&ticket_id)
        .await
        .map_err(backend_error)?;
    Ok(version.is_some_and(|version| version >= sequence))
}

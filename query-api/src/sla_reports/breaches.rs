//! `GET /api/v1/reports/sla-breaches`: the breached activations of a period, oldest breach
//! first, cursor-paged, from `sla_metric` (partial index `sla_metric_breaches`, in paging
//! order).

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRef, Query, State};
use chrono::{DateTime, Utc};
use helpdesk_domain::sla::SlaMetric;
use helpdesk_platform::auth::{Authenticated, Verifier};
use helpdesk_platform::problem::Problem;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::{IntoParams, ToSchema};

use super::{invalid, may_read_reports, metric, period, start_of};
use crate::error::QueryError;

/// Breaches per page unless `limit` says otherwise.
const DEFAULT_LIMIT: i64 = 100;
/// Most breaches per page.
const MAX_LIMIT: i64 = 500;

/// Query parameters of the breach list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BreachParams {
    /// First day (UTC) a listed breach may fall on, `YYYY-MM-DD`.
    #[param(required = true)]
    pub from: Option<String>,
    /// Last day (UTC), inclusive; not before `from`.
    #[param(required = true)]
    pub to: Option<String>,
    /// Only this metric: `first_reply`, `next_reply` or `resolution`.
    pub metric: Option<String>,
    /// The `next` value of the previous page.
    pub cursor: Option<String>,
    /// Breaches per page, 1–500 (default 100).
    pub limit: Option<i64>,
}

/// A page of breached activations.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BreachPage {
    pub breaches: Vec<Breach>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next: Option<String>,
}

/// One breached activation of a metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Breach {
    pub ticket_id: String,
    pub metric: String,
    pub activation: i32,
    pub policy_id: String,
    pub policy_version: i64,
    pub target_minutes: i32,
    pub started_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    /// The due instant that passed.
    pub breached_at: DateTime<Utc>,
    /// When it was fulfilled after all, if it was.
    pub fulfilled_at: Option<DateTime<Utc>>,
    pub business_minutes: Option<i64>,
    /// When its target stopped applying, if it did.
    pub withdrawn_at: Option<DateTime<Utc>>,
    /// The ticket's priority, group, assignee and channel when it breached.
    pub priority: String,
    pub group_id: Option<String>,
    pub assignee: Option<String>,
    pub channel: String,
}

/// Breached SLA metrics.
///
/// Oldest breach first (ties by ticket, metric, activation), cursor-paged. For managers,
/// auditors and admins.
#[utoipa::path(
    get, path = "/api/v1/reports/sla-breaches", tag = "reports",
    security(("bearer" = [])),
    params(BreachParams),
    responses(
        (status = 200, description = "A page of breaches", body = BreachPage),
        (status = 400, description = "Missing or invalid from or to, invalid metric, cursor or limit, or from after to", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, expired or invalid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a manager, auditor or admin", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn breaches<S>(
    State(state): State<S>,
    Authenticated(principal): Authenticated,
    params: Result<Query<BreachParams>, QueryRejection>,
) -> Result<Json<BreachPage>, QueryError>
where
    S: Clone + Send + Sync + 'static,
    PgPool: FromRef<S>,
    Arc<Verifier>: FromRef<S>,
{
    may_read_reports(&principal)?;
    let Query(params) = params?;
    let (from, to) = period(params.from.as_deref(), params.to.as_deref())?;
    let metric = metric(params.metric.as_deref())?;
    let limit = match params.limit {
        None => DEFAULT_LIMIT,
        Some(limit @ 1..=MAX_LIMIT) => limit,
        Some(_) => {
            return Err(invalid(
                "limit",
                &format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
    };
    let after = params.cursor.as_deref().map(decode_cursor).transpose()?;
    let mut breaches: Vec<Breach> = sqlx::query_as(
        "SELECT ticket_id, metric, activation, policy_id, policy_version, target_minutes, \
                started_at, due_at, breached_at, fulfilled_at, business_minutes, withdrawn_at, \
                priority, group_id, assignee, channel \
           FROM sla_metric \
          WHERE breached_at >= $1 AND breached_at < $2 AND ($3::text IS NULL OR metric = $3) \
            AND ($4::timestamptz IS NULL \
                 OR (breached_at, ticket_id, metric, activation) > ($4, $5, $6, $7)) \
          ORDER BY breached_at, ticket_id, metric, activation \
          LIMIT $8",
    )
    .bind(start_of(from))
    .bind(to.succ_opt().map(start_of))
    .bind(metric.map(SlaMetric::as_str))
    .bind(after.as_ref().map(|c| c.breached_at))
    .bind(after.as_ref().map(|c| c.ticket_id.clone()))
    .bind(after.as_ref().map(|c| c.metric.clone()))
    .bind(after.as_ref().map(|c| c.activation))
    .bind(limit + 1)
    .fetch_all(&PgPool::from_ref(&state))
    .await
    .map_err(QueryError::internal)?;
    let next = if breaches.len() as i64 > limit {
        breaches.truncate(usize::try_from(limit).unwrap_or_default());
        breaches.last().map(encode_cursor)
    } else {
        None
    };
    Ok(Json(BreachPage { breaches, next }))
}

/// Where a page of breaches ended.
#[derive(Debug, Clone)]
struct BreachCursor {
    breached_at: DateTime<Utc>,
    ticket_id: String,
    metric: String,
    activation: i32,
}

/// `<breached_at in µs since the epoch>~<metric>~<activation>~<ticket id>`.
fn encode_cursor(breach: &Breach) -> String {
    format!(
        "{}~{}~{}~{}",
        breach.breached_at.timestamp_micros(),
        breach.metric,
        breach.activation,
        breach.ticket_id
    )
}

fn decode_cursor(raw: &str) -> Result<BreachCursor, QueryError> {
    let bad = || invalid("cursor", "not a cursor this API returned");
    let mut parts = raw.splitn(4, '~');
    let (Some(micros), Some(metric), Some(activation), Some(ticket_id)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    Ok(BreachCursor {
        breached_at: micros
            .parse()
            .ok()
            .and_then(DateTime::from_timestamp_micros)
            .ok_or_else(bad)?,
        metric: metric.to_owned(),
        activation: activation.parse().map_err(|_| bad())?,
        ticket_id: ticket_id.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_cursor_reads_back() {
        let raw = "1795286041000123~first_reply~2~0193-ab~c";
        let cursor = decode_cursor(raw).unwrap();
        assert_eq!(cursor.breached_at.timestamp_micros(), 1_795_286_041_000_123);
        assert_eq!(cursor.ticket_id, "0193-ab~c");
        assert!(decode_cursor("garbage").is_err());
    }
}

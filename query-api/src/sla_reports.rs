//! SLA reports for managers, auditors and admins, served from the SLA read model that the
//! `sla` projection and the breach watcher keep (`migrations/20261121000006_sla.sql`).
//!
//! - `GET /api/v1/reports/sla-compliance`: per key of one dimension, how many activations of a
//!   metric were achieved or breached in a period, how many are still in progress, and the
//!   median and 90th percentile of their business minutes. Read from `sla_report_counts`
//!   (whole quarters from quarter rows, whole months from month rows, the edges from day rows)
//!   and the count changes not folded into them yet, so the cost follows the number of
//!   distinct counts, not of metrics. `Accept: text/csv`
//!   gives CSV.
//! - `GET /api/v1/reports/sla-breaches`: the breached activations of a period, oldest breach
//!   first, cursor-paged.
//!
//! Periods are whole UTC days, `from` and `to` inclusive. A metric counts in the period of its
//! outcome: the day it was fulfilled if it never breached (achieved), else the day it breached
//! (breached, even when fulfilled later; it counts once). `in_progress` counts activations
//! without an outcome yet (running or paused, not withdrawn) that *started* in the period, read
//! from the open rows of `sla_metric` through a partial index. Percentiles are over activations
//! with an outcome in the period that have been fulfilled (a breach not yet answered has no
//! duration), computed like Postgres's `percentile_cont` from the duration histogram, whose
//! buckets are exact below two hours and then a few percent wide
//! (`helpdesk_domain::sla::histogram`): each bucket is read as its midpoint, so a percentile is
//! exact when the durations it lies between are under 128 minutes, and otherwise within 1/64
//! (1.56 %) of the exact `percentile_cont`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRef, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Utc};
use helpdesk_domain::access::{self, Principal};
use helpdesk_domain::sla::{SlaMetric, histogram};
use helpdesk_platform::auth::{Authenticated, Verifier};
use helpdesk_platform::problem::Problem;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::{IntoParams, ToSchema};

use crate::error::QueryError;

mod breaches;
mod csv;

pub use breaches::{__path_breaches, breaches};
use csv::{csv_response, wants_csv};

/// Query parameters of the compliance report. Required ones are `Option` here so that a
/// missing one is answered with a `400` that names it.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ComplianceParams {
    /// First day of the period (UTC), `YYYY-MM-DD`.
    #[param(required = true)]
    pub from: Option<String>,
    /// Last day of the period (UTC), `YYYY-MM-DD`, inclusive; not before `from`.
    #[param(required = true)]
    pub to: Option<String>,
    /// `first_reply`, `next_reply` or `resolution`.
    #[param(required = true)]
    pub metric: Option<String>,
    /// `priority` (default), `group`, `assignee`, `policy` (the policy id) or `channel`.
    pub group_by: Option<String>,
}

/// The compliance of one metric in a period, per key of one dimension.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ComplianceReport {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub metric: SlaMetric,
    pub group_by: String,
    /// One row per key with anything to count, by key (`null`, no group or no assignee, last).
    pub rows: Vec<ComplianceRow>,
}

/// One key's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ComplianceRow {
    /// The dimension's value; `null` for tickets without a group or assignee.
    pub key: Option<String>,
    /// Activations with an outcome in the period: `achieved + breached`.
    pub total: u64,
    /// Fulfilled in the period, never breached.
    pub achieved: u64,
    /// Breached in the period (fulfilled later or not).
    pub breached: u64,
    /// Started in the period and without an outcome yet (running or paused).
    pub in_progress: u64,
    /// `achieved / total × 100`, two decimals; `null` when `total` is 0.
    pub compliance_pct: Option<f64>,
    /// Median business minutes of the fulfilled ones among `total` (continuous, as
    /// `percentile_cont`): exact when the durations it lies between are under 128 minutes,
    /// otherwise within 1.56 % (the histogram's buckets).
    pub median_business_minutes: Option<f64>,
    /// 90th percentile of the same, with the same precision.
    pub p90_business_minutes: Option<f64>,
}

/// SLA compliance per priority, group, assignee, policy or channel.
///
/// For managers, auditors and admins. Send `Accept: text/csv` for CSV with the same columns.
#[utoipa::path(
    get, path = "/api/v1/reports/sla-compliance", tag = "reports",
    security(("bearer" = [])),
    params(ComplianceParams),
    responses(
        (status = 200, description = "The report (JSON, or CSV with Accept: text/csv)",
         content((ComplianceReport = "application/json"), (String = "text/csv"))),
        (status = 400, description = "Missing or invalid from, to, metric or group_by, or from after to", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, expired or invalid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a manager, auditor or admin", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn compliance<S>(
    State(state): State<S>,
    Authenticated(principal): Authenticated,
    headers: HeaderMap,
    params: Result<Query<ComplianceParams>, QueryRejection>,
) -> Result<Response, QueryError>
where
    S: Clone + Send + Sync + 'static,
    PgPool: FromRef<S>,
    Arc<Verifier>: FromRef<S>,
{
    may_read_reports(&principal)?;
    let Query(params) = params?;
    let (from, to) = period(params.from.as_deref(), params.to.as_deref())?;
    let metric = metric(params.metric.as_deref())?.ok_or_else(|| invalid("metric", "required"))?;
    let group_by = group_by(params.group_by.as_deref())?;
    let rows = compliance_rows(&PgPool::from_ref(&state), metric, group_by, from, to).await?;
    let report = ComplianceReport {
        from,
        to,
        metric,
        group_by: group_by.to_owned(),
        rows,
    };
    Ok(if wants_csv(&headers) {
        csv_response(&report)
    } else {
        Json(report).into_response()
    })
}

/// Reads the counts of the period and the open activations, and folds them per key.
async fn compliance_rows(
    pool: &PgPool,
    metric: SlaMetric,
    group_by: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<ComplianceRow>, QueryError> {
    let mut tx = pool.begin().await.map_err(QueryError::internal)?;
    // A year's histogram can hold 100,000 (key, outcome, minutes) groups: let them hash in
    // memory rather than sort on disk.
    sqlx::query("SET LOCAL work_mem = '32MB'")
        .execute(&mut *tx)
        .await
        .map_err(QueryError::internal)?;
    let counts = outcome_counts(&mut tx, metric, group_by, from, to).await?;
    let open = open_counts(&mut tx, metric, group_by, from, to).await?;
    tx.commit().await.map_err(QueryError::internal)?;
    let mut keys: BTreeMap<String, Tally> = BTreeMap::new();
    for (key, outcome, minutes, count) in counts {
        let tally = keys.entry(key).or_default();
        let count = u64::try_from(count).unwrap_or_default();
        match outcome.as_str() {
            "achieved" => tally.achieved += count,
            _ => tally.breached += count,
        }
        if let Ok(minutes) = u64::try_from(minutes) {
            *tally.minutes.entry(minutes).or_default() += count;
        }
    }
    for (key, count) in open {
        keys.entry(key).or_default().in_progress += u64::try_from(count).unwrap_or_default();
    }
    let mut rows: Vec<ComplianceRow> = keys.into_iter().map(|(key, t)| t.row(key)).collect();
    rows.sort_by(|a, b| (a.key.is_none(), &a.key).cmp(&(b.key.is_none(), &b.key)));
    Ok(rows)
}

/// `(key, outcome, business_minutes, count)` summed over the period's slices: an index-only
/// scan of one primary-key range per slice, plus the changes the SLA writers appended that are
/// not folded into the counts yet (a few seconds' worth: docs/adr/0012-sla-report-count-changes.md),
/// read in the same statement, so each change is counted once, folded or not.
async fn outcome_counts(
    tx: &mut sqlx::PgConnection,
    metric: SlaMetric,
    group_by: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<(String, String, i64, i64)>, QueryError> {
    let mut granularities = Vec::new();
    let mut firsts = Vec::new();
    let mut lasts = Vec::new();
    for (granularity, first, last) in ranges(from, to) {
        granularities.push(granularity);
        firsts.push(first);
        lasts.push(last);
    }
    // sum over bigint accumulates in numeric; over float8 it is exact while a sum stays below
    // 2^53 and about a tenth faster on a year's rows.
    sqlx::query_as(
        "WITH r(granularity, first, last) AS ( \
             SELECT * FROM unnest($3::text[], $4::date[], $5::date[])) \
         SELECT key, outcome, business_minutes, sum(count)::bigint FROM ( \
             SELECT c.key, c.outcome, c.business_minutes, c.count::float8 AS count \
               FROM r JOIN sla_report_counts c \
                 ON c.metric = $1 AND c.dimension = $2 AND c.granularity = r.granularity \
                AND c.period BETWEEN r.first AND r.last \
             UNION ALL \
             SELECT c.key, c.outcome, c.business_minutes, c.count \
               FROM r JOIN sla_report_count_changes c \
                 ON c.metric = $1 AND c.dimension = $2 AND c.granularity = r.granularity \
                AND c.period BETWEEN r.first AND r.last) c \
          GROUP BY 1, 2, 3 \
         HAVING sum(count) <> 0",
    )
    .bind(metric.as_str())
    .bind(group_by)
    .bind(&granularities)
    .bind(&firsts)
    .bind(&lasts)
    .fetch_all(tx)
    .await
    .map_err(QueryError::internal)
}

/// `(key, count)` of the activations without an outcome, not withdrawn, started in the
/// period (partial index `sla_metric_in_progress`).
async fn open_counts(
    tx: &mut sqlx::PgConnection,
    metric: SlaMetric,
    group_by: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<(String, i64)>, QueryError> {
    sqlx::query_as(
        "SELECT CASE $2 WHEN 'priority' THEN priority WHEN 'group' THEN coalesce(group_id, '') \
                        WHEN 'assignee' THEN coalesce(assignee, '') WHEN 'policy' THEN policy_id \
                        ELSE channel END, count(*) \
           FROM sla_metric \
          WHERE metric = $1 AND outcome IS NULL AND withdrawn_at IS NULL \
            AND started_at >= $3 AND started_at < $4 \
          GROUP BY 1",
    )
    .bind(metric.as_str())
    .bind(group_by)
    .bind(start_of(from))
    .bind(to.succ_opt().map(start_of))
    .fetch_all(tx)
    .await
    .map_err(QueryError::internal)
}

/// One key's counts while they are read.
#[derive(Debug, Default)]
struct Tally {
    achieved: u64,
    breached: u64,
    in_progress: u64,
    /// Business minutes bucket (its lowest minute) → fulfilled activations.
    minutes: BTreeMap<u64, u64>,
}

impl Tally {
    fn row(self, key: String) -> ComplianceRow {
        let total = self.achieved + self.breached;
        let compliance = (total > 0)
            .then(|| (self.achieved as f64 * 100.0 / total as f64 * 100.0).round() / 100.0);
        ComplianceRow {
            key: (!key.is_empty()).then_some(key),
            total,
            achieved: self.achieved,
            breached: self.breached,
            in_progress: self.in_progress,
            compliance_pct: compliance,
            median_business_minutes: percentile(&self.minutes, 0.5),
            p90_business_minutes: percentile(&self.minutes, 0.9),
        }
    }
}

/// `percentile_cont(p)` of the durations a histogram (bucket → count) holds: the value at rank
/// `p × (n − 1)`, interpolated between its neighbours, each bucket read as its
/// [`histogram::representative`]. Buckets keep the order of durations, so the neighbours are
/// the buckets of the exact neighbours, and the interpolation is off by no more than they are.
pub fn percentile(counts: &BTreeMap<u64, u64>, p: f64) -> Option<f64> {
    let n: u64 = counts.values().sum();
    if n == 0 {
        return None;
    }
    let rank = p * (n - 1) as f64;
    let below = rank.floor();
    let lower = nth(counts, below as u64);
    let upper = nth(counts, rank.ceil() as u64);
    Some(lower + (upper - lower) * (rank - below))
}

/// The representative of the `k`-th smallest bucket (from 0) of a histogram.
fn nth(counts: &BTreeMap<u64, u64>, k: u64) -> f64 {
    let mut seen = 0;
    for (bucket, count) in counts {
        seen += count;
        if k < seen {
            return histogram::representative(*bucket);
        }
    }
    counts
        .keys()
        .next_back()
        .map_or(0.0, |bucket| histogram::representative(*bucket))
}

/// The period as ranges of count rows (each dated by the first day of its slice): whole
/// calendar quarters from quarter rows, whole months outside them from month rows, the rest (the
/// edges) from day rows. At most five ranges: days, months, quarters, months, days.
pub fn ranges(from: NaiveDate, to: NaiveDate) -> Vec<(&'static str, NaiveDate, NaiveDate)> {
    let mut ranges: Vec<(&'static str, NaiveDate, NaiveDate)> = Vec::new();
    let mut day = from;
    while day <= to {
        // The coarsest slice that starts on `day` and ends within the period.
        let (granularity, end) = [("quarter", quarter_from(day)), ("month", month_from(day))]
            .into_iter()
            .find_map(|(granularity, end)| {
                end.filter(|end| *end <= to).map(|end| (granularity, end))
            })
            .unwrap_or(("day", day));
        match ranges.last_mut() {
            Some((previous, _, last)) if *previous == granularity => *last = day,
            _ => ranges.push((granularity, day, day)),
        }
        let Some(next) = end.succ_opt() else { break };
        day = next;
    }
    ranges
}

/// The last day of the month that starts on `day`, if one does.
fn month_from(day: NaiveDate) -> Option<NaiveDate> {
    (day.day() == 1).then(|| last_of_month(day))
}

/// The last day of the calendar quarter that starts on `day`, if one does.
fn quarter_from(day: NaiveDate) -> Option<NaiveDate> {
    (day.day() == 1 && day.month0().is_multiple_of(3))
        .then(|| day.with_month0(day.month0() + 2))
        .flatten()
        .map(last_of_month)
}

fn last_of_month(day: NaiveDate) -> NaiveDate {
    let (year, month) = if day.month() == 12 {
        (day.year() + 1, 1)
    } else {
        (day.year(), day.month() + 1)
    };
    NaiveDate::from_ymd_opt(year, month, 1)
        .and_then(|next| next.pred_opt())
        .unwrap_or(NaiveDate::MAX)
}

pub(super) fn start_of(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(NaiveTime::MIN).and_utc()
}
/// SLA reports are for managers, auditors and admins (`access::may_read_reports`); agents and
/// customers are refused.
pub(super) fn may_read_reports(principal: &Principal) -> Result<(), QueryError> {
    if access::may_read_reports(principal) {
        Ok(())
    } else {
        Err(QueryError::Forbidden)
    }
}

pub(super) fn invalid(name: &'static str, detail: &str) -> QueryError {
    QueryError::InvalidParameter {
        name,
        detail: detail.to_owned(),
    }
}

/// `from` and `to`, both required, `from` not after `to`.
pub(super) fn period(
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(NaiveDate, NaiveDate), QueryError> {
    let day = |name: &'static str, raw: Option<&str>| {
        let raw = raw.ok_or_else(|| invalid(name, "required (YYYY-MM-DD)"))?;
        NaiveDate::parse_from_str(raw, "%Y-%m-%d")
            .ok()
            .filter(|day| day.succ_opt().is_some())
            .ok_or_else(|| invalid(name, "must be a date, YYYY-MM-DD"))
    };
    let (from, to) = (day("from", from)?, day("to", to)?);
    if from > to {
        return Err(invalid("to", "must not be before from"));
    }
    Ok((from, to))
}

pub(super) fn metric(raw: Option<&str>) -> Result<Option<SlaMetric>, QueryError> {
    raw.map(|raw| {
        SlaMetric::ALL
            .into_iter()
            .find(|metric| metric.as_str() == raw)
            .ok_or_else(|| invalid("metric", "must be first_reply, next_reply or resolution"))
    })
    .transpose()
}

fn group_by(raw: Option<&str>) -> Result<&'static str, QueryError> {
    let known = ["priority", "group", "assignee", "policy", "channel"];
    match raw {
        None => Ok("priority"),
        Some(raw) => known.into_iter().find(|k| *k == raw).ok_or_else(|| {
            invalid(
                "group_by",
                "must be priority, group, assignee, policy or channel",
            )
        }),
    }
}
#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn day(raw: &str) -> NaiveDate {
        raw.parse().unwrap()
    }

    #[test]
    fn a_period_reads_whole_months_from_month_rows_and_the_edges_from_day_rows() {
        assert_eq!(
            ranges(day("2026-01-15"), day("2026-04-02")),
            vec![
                ("day", day("2026-01-15"), day("2026-01-31")),
                ("month", day("2026-02-01"), day("2026-03-01")),
                ("day", day("2026-04-01"), day("2026-04-02")),
            ]
        );
        assert_eq!(
            ranges(day("2026-11-01"), day("2026-11-30")),
            vec![("month", day("2026-11-01"), day("2026-11-01"))]
        );
        assert_eq!(
            ranges(day("2026-11-21"), day("2026-11-21")),
            vec![("day", day("2026-11-21"), day("2026-11-21"))]
        );
    }

    #[test]
    fn whole_quarters_are_read_from_quarter_rows_and_the_months_around_them_from_month_rows() {
        assert_eq!(
            ranges(day("2025-11-23"), day("2026-11-22")),
            vec![
                ("day", day("2025-11-23"), day("2025-11-30")),
                ("month", day("2025-12-01"), day("2025-12-01")),
                ("quarter", day("2026-01-01"), day("2026-07-01")),
                ("month", day("2026-10-01"), day("2026-10-01")),
                ("day", day("2026-11-01"), day("2026-11-22")),
            ]
        );
        assert_eq!(
            ranges(day("2026-01-01"), day("2026-12-31")),
            vec![("quarter", day("2026-01-01"), day("2026-10-01"))]
        );
        assert_eq!(
            ranges(day("2026-02-01"), day("2026-06-29")),
            vec![
                ("month", day("2026-02-01"), day("2026-05-01")),
                ("day", day("2026-06-01"), day("2026-06-29")),
            ],
            "no quarter is whole"
        );
        // Up to the last day chrono can represent, which ends a quarter: one run, no overflow.
        assert_eq!(
            ranges(day("9999-10-01"), NaiveDate::MAX),
            vec![(
                "quarter",
                day("9999-10-01"),
                NaiveDate::from_ymd_opt(262_142, 10, 1).unwrap()
            )]
        );
    }

    #[test]
    fn percentiles_interpolate_like_percentile_cont() {
        let histogram = BTreeMap::from([(1, 1), (2, 2), (10, 1)]);
        // values 1 2 2 10: median between the 2s, p90 at rank 2.7 → 2 + 0.7 × 8
        assert_eq!(percentile(&histogram, 0.5), Some(2.0));
        let p90 = percentile(&histogram, 0.9).unwrap();
        assert!((p90 - 7.6).abs() < 1e-9, "{p90}");
        assert_eq!(percentile(&BTreeMap::new(), 0.5), None);
    }

    #[test]
    fn a_bucketed_duration_is_read_as_the_midpoint_of_its_bucket() {
        let bucket = histogram::bucket_of(1_237);
        let counts = BTreeMap::from([(bucket, 3)]);
        assert_eq!(
            percentile(&counts, 0.5),
            Some(histogram::representative(1_237))
        );
        assert_eq!(histogram::bounds(1_237), 1_216..=1_247);
        assert_eq!(percentile(&counts, 0.9), Some(1_231.5));
    }

    /// Postgres's `percentile_cont` over sorted durations.
    fn percentile_cont(sorted: &[u64], p: f64) -> f64 {
        let rank = p * (sorted.len() - 1) as f64;
        let (lower, upper) = (
            sorted[rank.floor() as usize] as f64,
            sorted[rank.ceil() as usize] as f64,
        );
        lower + (upper - lower) * (rank - rank.floor())
    }

    #[test]
    fn bucketed_percentiles_are_within_the_documented_error_of_percentile_cont() {
        // xorshift64: deterministic samples of every size, from minutes to months.
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for sample in 0..2_000 {
            let len = 1 + next() % 300;
            let scale = [100, 1_000, 20_000, 500_000][sample % 4];
            let mut durations: Vec<u64> = (0..len).map(|_| next() % scale).collect();
            durations.sort_unstable();
            let mut counts = BTreeMap::new();
            for minutes in &durations {
                *counts.entry(histogram::bucket_of(*minutes)).or_default() += 1;
            }
            for p in [0.5, 0.9] {
                let exact = percentile_cont(&durations, p);
                let ours = percentile(&counts, p).unwrap();
                let error = (ours - exact).abs();
                assert!(
                    error <= exact * histogram::MAX_RELATIVE_ERROR + 1e-9,
                    "p{p} of {durations:?}: {ours} against {exact}"
                );
                if durations.last() < Some(&histogram::EXACT_BELOW) {
                    assert!(error < 1e-9, "exact below the threshold: {durations:?}");
                }
            }
        }
    }
}

//! The SLA read model as plain data: a ticket's report dimensions, its `sla_metric` rows, and
//! the changes to the pre-aggregated report counts, plus [`TicketRows::record`], the one
//! function that turns SLA events into row and count changes.
//!
//! Pure (no I/O): the live projection, the breach watcher and the rebuild all go through
//! [`TicketRows::record`] and [`TicketRows::follow`], so they cannot disagree on what a row or a
//! count should be. The SQL that loads and saves these lives in `store`.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use helpdesk_domain::sla::{SlaEvent, SlaMetric, histogram};
use helpdesk_domain::ticket::{TicketEvent, TicketOpened};
use serde::{Deserialize, Serialize};

/// What the reports group a ticket by, as it stands: priority and channel as their wire names,
/// group and assignee when set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dims {
    /// `low`, `normal`, `high` or `urgent`.
    pub priority: String,
    /// The ticket's group.
    pub group_id: Option<String>,
    /// The ticket's assignee.
    pub assignee: Option<String>,
    /// `web`, `email`, `api`, `chat` or `phone`.
    pub channel: String,
}

impl Dims {
    /// The dimensions of a ticket right after it was opened.
    pub fn opened(opened: &TicketOpened) -> Dims {
        Dims {
            priority: wire_name(&opened.priority),
            group_id: opened.group.clone(),
            assignee: None,
            channel: wire_name(&opened.channel),
        }
    }

    /// Follows a ticket event (priority changes and assignments; nothing else moves them).
    pub fn observe(&mut self, event: &TicketEvent) {
        match event {
            TicketEvent::TicketPriorityChanged(change) => self.priority = wire_name(&change.to),
            TicketEvent::TicketAssigned(assigned) => {
                self.group_id.clone_from(&assigned.group);
                self.assignee.clone_from(&assigned.assignee);
            }
            _ => {}
        }
    }
}

/// How a measured activation ended up in the reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Fulfilled before its due instant, never breached.
    Achieved,
    /// Breached (fulfilled later or not).
    Breached,
}

impl Outcome {
    /// The wire name, as `sla_metric.outcome` holds it.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Achieved => "achieved",
            Outcome::Breached => "breached",
        }
    }
}

/// One row of `sla_metric`: one activation of one metric of one ticket that had a target.
///
/// Field names are the column names: rows are read from Postgres as JSON (`to_jsonb`) and
/// written as one array per column (`store::MetricColumns`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricRow {
    pub ticket_id: String,
    pub metric: SlaMetric,
    pub activation: u32,
    pub policy_id: String,
    pub policy_version: u64,
    pub target_minutes: u32,
    pub started_at: DateTime<Utc>,
    pub activated_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub paused: bool,
    pub fulfilled_at: Option<DateTime<Utc>>,
    pub business_minutes: Option<u64>,
    pub breached_at: Option<DateTime<Utc>>,
    pub withdrawn_at: Option<DateTime<Utc>>,
    pub outcome: Option<Outcome>,
    #[serde(flatten)]
    pub dims: Dims,
}

/// The report dimensions, in the order counts are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    Priority,
    Group,
    Assignee,
    Policy,
    Channel,
}

impl Dimension {
    /// Every dimension a count is kept under.
    pub const ALL: [Dimension; 5] = [
        Dimension::Priority,
        Dimension::Group,
        Dimension::Assignee,
        Dimension::Policy,
        Dimension::Channel,
    ];

    /// The wire name, as `sla_report_counts.dimension` holds it.
    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Priority => "priority",
            Dimension::Group => "group",
            Dimension::Assignee => "assignee",
            Dimension::Policy => "policy",
            Dimension::Channel => "channel",
        }
    }
}

/// The period sizes counts are kept at: a day, the month and the calendar quarter (each dated
/// by its first day).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    Day,
    Month,
    Quarter,
}

impl Granularity {
    /// The wire name, as `sla_report_counts.granularity` holds it.
    pub fn as_str(self) -> &'static str {
        match self {
            Granularity::Day => "day",
            Granularity::Month => "month",
            Granularity::Quarter => "quarter",
        }
    }

    /// Every granularity a count is kept at, with the period holding `day`.
    fn periods(day: NaiveDate) -> [(Granularity, NaiveDate); 3] {
        let month = day.with_day(1).unwrap_or(day);
        let quarter = month.with_month0(month.month0() / 3 * 3).unwrap_or(month);
        [
            (Granularity::Day, day),
            (Granularity::Month, month),
            (Granularity::Quarter, quarter),
        ]
    }
}

/// The key of one row of `sla_report_counts` (field names are its columns).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CountKey {
    pub metric: SlaMetric,
    pub dimension: Dimension,
    pub granularity: Granularity,
    pub period: NaiveDate,
    /// The dimension's value; `""` for no group or no assignee.
    pub key: String,
    pub outcome: Outcome,
    /// The histogram bucket of the business minutes measured, named by its lowest minute
    /// ([`histogram::bucket_of`]: the minutes themselves below two hours, then buckets about
    /// 3 % wide); `-1` while a breached activation is not fulfilled.
    pub business_minutes: i64,
}

/// Changes to `sla_report_counts`: a signed delta per row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    counts: BTreeMap<CountKey, i64>,
    /// Quarters are not counted (see [`Tally::without_quarters`]).
    without_quarters: bool,
}

impl Tally {
    /// A tally of the day and month counts only: what the rebuild keeps, because it sums each
    /// quarter's counts from its month rows once at the end.
    pub fn without_quarters() -> Tally {
        Tally {
            without_quarters: true,
            ..Tally::default()
        }
    }

    /// Count rows with a change.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Adds `delta` outcomes of `row`, dated `at`, under every dimension and granularity.
    fn count(
        &mut self,
        row: &MetricRow,
        outcome: Outcome,
        at: DateTime<Utc>,
        minutes: i64,
        delta: i64,
    ) {
        let periods = Granularity::periods(at.date_naive());
        for dimension in Dimension::ALL {
            let key = match dimension {
                Dimension::Priority => row.dims.priority.clone(),
                Dimension::Group => row.dims.group_id.clone().unwrap_or_default(),
                Dimension::Assignee => row.dims.assignee.clone().unwrap_or_default(),
                Dimension::Policy => row.policy_id.clone(),
                Dimension::Channel => row.dims.channel.clone(),
            };
            for (granularity, period) in periods {
                if self.without_quarters && granularity == Granularity::Quarter {
                    continue;
                }
                let entry = CountKey {
                    metric: row.metric,
                    dimension,
                    granularity,
                    period,
                    key: key.clone(),
                    outcome,
                    business_minutes: minutes,
                };
                *self.counts.entry(entry).or_default() += delta;
            }
        }
    }

    /// The rows that change, with their non-zero deltas.
    pub fn changes(&self) -> impl Iterator<Item = (&CountKey, i64)> {
        self.counts
            .iter()
            .filter(|(_, delta)| **delta != 0)
            .map(|(key, delta)| (key, *delta))
    }
}

/// The `sla_metric` rows of one ticket, and which of them changed since they were loaded.
#[derive(Debug, Clone, Default)]
pub struct TicketRows {
    ticket_id: String,
    rows: BTreeMap<(SlaMetric, u32), MetricRow>,
    loaded: BTreeMap<(SlaMetric, u32), MetricRow>,
}

impl TicketRows {
    /// The rows of `ticket_id` as stored.
    pub fn loaded(ticket_id: &str, rows: Vec<MetricRow>) -> TicketRows {
        let rows: BTreeMap<_, _> = rows
            .into_iter()
            .map(|row| ((row.metric, row.activation), row))
            .collect();
        TicketRows {
            ticket_id: ticket_id.to_owned(),
            loaded: rows.clone(),
            rows,
        }
    }

    /// Rows that differ from what was loaded (new ones included).
    pub fn changed(&self) -> Vec<&MetricRow> {
        self.rows
            .iter()
            .filter(|(key, row)| self.loaded.get(key) != Some(row))
            .map(|(_, row)| row)
            .collect()
    }

    /// Every row, in (metric, activation) order.
    pub fn all(&self) -> impl Iterator<Item = &MetricRow> {
        self.rows.values()
    }

    /// Open rows (no outcome, not withdrawn) take the ticket's dimensions as they are now.
    pub fn follow(&mut self, dims: &Dims) {
        for row in self.rows.values_mut() {
            if row.outcome.is_none() && row.withdrawn_at.is_none() && row.dims != *dims {
                row.dims = dims.clone();
            }
        }
    }

    /// Applies SLA events, in order, decided while the ticket had `dims`; the report count
    /// changes go to `tally`. Events about an activation without a row change nothing (as in
    /// the domain's clocks).
    pub fn record(&mut self, dims: &Dims, events: &[SlaEvent], tally: &mut Tally) {
        for event in events {
            self.record_one(dims, event, tally);
        }
    }

    fn record_one(&mut self, dims: &Dims, event: &SlaEvent, tally: &mut Tally) {
        let key = (event.metric(), event.activation());
        if let SlaEvent::Activated {
            metric,
            activation,
            policy,
            at,
            started_at,
            due_at,
            target_minutes,
        } = event
        {
            let row = self.rows.entry(key).or_insert_with(|| MetricRow {
                ticket_id: self.ticket_id.clone(),
                metric: *metric,
                activation: *activation,
                policy_id: policy.id.clone(),
                policy_version: policy.version,
                target_minutes: *target_minutes,
                started_at: *started_at,
                activated_at: *at,
                due_at: *due_at,
                paused: false,
                fulfilled_at: None,
                business_minutes: None,
                breached_at: None,
                withdrawn_at: None,
                outcome: None,
                dims: dims.clone(),
            });
            // Activated again after a withdrawal: a new measurement of the same activation.
            row.started_at = *started_at;
            row.activated_at = *at;
            row.due_at = *due_at;
            row.paused = false;
            row.withdrawn_at = None;
            if row.outcome.is_none() {
                row.policy_id.clone_from(&policy.id);
                row.policy_version = policy.version;
                row.target_minutes = *target_minutes;
                row.dims = dims.clone();
            }
            return;
        }
        let Some(row) = self.rows.get_mut(&key) else {
            return;
        };
        update(row, dims, event, tally);
    }
}

/// Every event but `Activated`, on an existing row. A row with an outcome keeps the policy,
/// target and dimensions it was counted under.
fn update(row: &mut MetricRow, dims: &Dims, event: &SlaEvent, tally: &mut Tally) {
    match event {
        SlaEvent::Activated { .. } => {}
        SlaEvent::Paused { .. } => row.paused = true,
        SlaEvent::Resumed { due_at, .. } => {
            row.paused = false;
            row.due_at = *due_at;
        }
        SlaEvent::Retargeted {
            policy,
            due_at,
            target_minutes,
            ..
        } => {
            row.due_at = *due_at;
            if row.outcome.is_none() {
                row.policy_id.clone_from(&policy.id);
                row.policy_version = policy.version;
                row.target_minutes = *target_minutes;
            }
        }
        SlaEvent::Fulfilled {
            at,
            business_minutes,
            ..
        } => {
            row.fulfilled_at = Some(*at);
            row.business_minutes = Some(*business_minutes);
            let minutes = bucket(*business_minutes);
            match (row.outcome, row.breached_at) {
                (None, _) => {
                    row.outcome = Some(Outcome::Achieved);
                    row.dims = dims.clone();
                    tally.count(row, Outcome::Achieved, *at, minutes, 1);
                }
                // Counted when it breached; now its duration is known.
                (Some(Outcome::Breached), Some(breached_at)) => {
                    tally.count(row, Outcome::Breached, breached_at, -1, -1);
                    tally.count(row, Outcome::Breached, breached_at, minutes, 1);
                }
                _ => {}
            }
        }
        SlaEvent::Breached { at, .. } => {
            row.breached_at = Some(*at);
            if row.outcome.is_none() {
                row.outcome = Some(Outcome::Breached);
                row.dims = dims.clone();
                tally.count(row, Outcome::Breached, *at, -1, 1);
            }
        }
        SlaEvent::Withdrawn { at, .. } => {
            row.withdrawn_at = Some(*at);
            if row.outcome.is_none() {
                row.dims = dims.clone();
            }
        }
    }
}

/// The count row a fulfilment of `minutes` business minutes goes to: its histogram bucket.
/// (`sla_metric` keeps the exact minutes; only the report counts are bucketed.)
fn bucket(minutes: u64) -> i64 {
    let clamped = minutes.min(i64::MAX as u64);
    // A bucket is never above the minutes it holds, so it fits an i64 too.
    i64::try_from(histogram::bucket_of(clamped)).unwrap_or(i64::MAX)
}

/// The snake_case wire name of an enum value (`"normal"`, `"email"`).
pub fn wire_name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use helpdesk_domain::sla::PolicyRef;

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_790_000_000 + minute * 60, 0).unwrap()
    }

    #[test]
    fn the_column_values_of_a_count_key_are_its_serde_names() {
        let name = |value: serde_json::Value| value.as_str().unwrap().to_owned();
        for dimension in Dimension::ALL {
            assert_eq!(
                name(serde_json::to_value(dimension).unwrap()),
                dimension.as_str()
            );
        }
        for granularity in [Granularity::Day, Granularity::Month, Granularity::Quarter] {
            assert_eq!(
                name(serde_json::to_value(granularity).unwrap()),
                granularity.as_str()
            );
        }
        for outcome in [Outcome::Achieved, Outcome::Breached] {
            assert_eq!(
                name(serde_json::to_value(outcome).unwrap()),
                outcome.as_str()
            );
        }
    }

    fn dims(priority: &str) -> Dims {
        Dims {
            priority: priority.into(),
            group_id: None,
            assignee: Some("agent-1".into()),
            channel: "web".into(),
        }
    }

    fn activated() -> SlaEvent {
        SlaEvent::Activated {
            metric: SlaMetric::FirstReply,
            activation: 1,
            policy: PolicyRef {
                id: "standard".into(),
                version: 1,
            },
            at: at(0),
            started_at: at(0),
            due_at: at(30),
            target_minutes: 30,
        }
    }

    /// The first reply, activation 1, fulfilled `minute` minutes in (24×7: as many business
    /// minutes).
    fn fulfilled_at(minute: i64) -> SlaEvent {
        SlaEvent::Fulfilled {
            metric: SlaMetric::FirstReply,
            activation: 1,
            at: at(minute),
            business_minutes: minute.unsigned_abs(),
        }
    }

    /// The first reply, activation 1, breached `minute` minutes in.
    fn breached_at(minute: i64) -> SlaEvent {
        SlaEvent::Breached {
            metric: SlaMetric::FirstReply,
            activation: 1,
            at: at(minute),
        }
    }

    fn day_counts(tally: &Tally) -> Vec<(String, Outcome, i64, i64)> {
        tally
            .changes()
            .filter(|(key, _)| {
                key.dimension == Dimension::Priority && key.granularity == Granularity::Day
            })
            .map(|(key, delta)| (key.key.clone(), key.outcome, key.business_minutes, delta))
            .collect()
    }

    #[test]
    fn an_outcome_counts_in_its_day_its_month_and_its_calendar_quarter() {
        let periods = |day: &str| {
            Granularity::periods(day.parse().unwrap()).map(|(_, period)| period.to_string())
        };
        assert_eq!(
            periods("2026-11-22"),
            ["2026-11-22", "2026-11-01", "2026-10-01"]
        );
        assert_eq!(
            periods("2026-03-31"),
            ["2026-03-31", "2026-03-01", "2026-01-01"]
        );
        assert_eq!(
            periods("2026-04-01"),
            ["2026-04-01", "2026-04-01", "2026-04-01"]
        );
        assert_eq!(
            periods("2026-09-30"),
            ["2026-09-30", "2026-09-01", "2026-07-01"]
        );
    }

    #[test]
    fn a_fulfilment_before_the_due_instant_counts_once_as_achieved_under_every_dimension() {
        let mut rows = TicketRows::loaded("t1", vec![]);
        let mut tally = Tally::default();
        let fulfilled = fulfilled_at(10);
        rows.record(&dims("normal"), &[activated(), fulfilled], &mut tally);

        assert_eq!(
            tally.changes().count(),
            15,
            "5 dimensions × day, month and quarter"
        );
        assert_eq!(
            day_counts(&tally),
            vec![("normal".into(), Outcome::Achieved, 10, 1)]
        );
        let row = rows.all().next().unwrap();
        assert_eq!(row.outcome, Some(Outcome::Achieved));
        assert_eq!(row.business_minutes, Some(10));
    }

    #[test]
    fn a_fulfilment_after_the_breach_moves_the_breach_count_to_its_minutes_under_the_old_dims() {
        let mut rows = TicketRows::loaded("t1", vec![]);
        let mut tally = Tally::default();
        let breached = breached_at(30);
        rows.record(&dims("normal"), &[activated(), breached], &mut tally);
        rows.follow(&dims("urgent"));
        let fulfilled = fulfilled_at(45);
        rows.record(&dims("urgent"), &[fulfilled], &mut tally);

        assert_eq!(
            day_counts(&tally),
            vec![("normal".into(), Outcome::Breached, 45, 1)],
            "the -1 bucket nets to zero"
        );
        assert_eq!(rows.all().next().unwrap().dims.priority, "normal");
    }

    #[test]
    fn a_long_fulfilment_is_counted_in_its_histogram_bucket_and_kept_exact_on_its_row() {
        let mut rows = TicketRows::loaded("t1", vec![]);
        let mut tally = Tally::default();
        let breached = breached_at(30);
        let fulfilled = fulfilled_at(1_237);
        rows.record(
            &dims("normal"),
            &[activated(), breached, fulfilled],
            &mut tally,
        );

        let bucket = histogram::bucket_of(1_237);
        assert!(bucket < 1_237 && histogram::bounds(bucket).contains(&1_237));
        assert_eq!(
            day_counts(&tally),
            vec![("normal".into(), Outcome::Breached, bucket as i64, 1)]
        );
        assert_eq!(rows.all().next().unwrap().business_minutes, Some(1_237));
    }

    #[test]
    fn open_rows_follow_the_ticket_and_closed_ones_keep_their_dimensions() {
        let mut rows = TicketRows::loaded("t1", vec![]);
        let mut tally = Tally::default();
        rows.record(&dims("normal"), &[activated()], &mut tally);
        rows.follow(&dims("high"));
        assert_eq!(rows.all().next().unwrap().dims.priority, "high");
        let withdrawn = SlaEvent::Withdrawn {
            metric: SlaMetric::FirstReply,
            activation: 1,
            at: at(5),
        };
        rows.record(&dims("low"), &[withdrawn], &mut tally);
        rows.follow(&dims("urgent"));
        assert_eq!(rows.all().next().unwrap().dims.priority, "low");
        assert!(
            tally.changes().next().is_none(),
            "a withdrawal counts nothing"
        );
    }

    #[test]
    fn only_changed_rows_are_written_back() {
        let mut rows = TicketRows::loaded("t1", vec![]);
        rows.record(&dims("normal"), &[activated()], &mut Tally::default());
        let stored: Vec<MetricRow> = rows.all().cloned().collect();
        let mut again = TicketRows::loaded("t1", stored);
        again.follow(&dims("normal"));
        assert!(again.changed().is_empty());
        again.follow(&dims("high"));
        assert_eq!(again.changed().len(), 1);
    }
}

//! Time on an SLA clock: business time of the policy's calendar, counted only while the
//! ticket's status lets the clock run.
//!
//! Everything is computed from the measurement's start and the ticket's status timeline, never
//! accumulated step by step, so a retarget, a late activation and a fulfilment all agree.

use chrono::{DateTime, TimeDelta, Utc};

use crate::sla::SlaPolicyDefinition;
use crate::sla::clock::{add_business_time, business_time_between};

use super::facts::StatusSince;

/// The stretches `[from, to)` of `[start, end)` during which the clock of `policy` runs.
fn running_spans<'a>(
    statuses: &'a [StatusSince],
    policy: &'a SlaPolicyDefinition,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> impl Iterator<Item = (DateTime<Utc>, DateTime<Utc>)> + 'a {
    let ends = statuses
        .iter()
        .skip(1)
        .map(|next| next.since)
        .chain(std::iter::once(DateTime::<Utc>::MAX_UTC));
    statuses
        .iter()
        .zip(ends)
        .filter(|(entry, _)| !policy.clock_stops_in(entry.status))
        .map(move |(entry, until)| (entry.since.max(start), until.min(end)))
        .filter(|(from, to)| from < to)
}

/// Business time on the clock between `start` and `end`: business time of the calendar, less
/// the time the status stopped the clock.
pub(super) fn running_time(
    statuses: &[StatusSince],
    policy: &SlaPolicyDefinition,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> TimeDelta {
    running_spans(statuses, policy, start, end)
        .map(|(from, to)| business_time_between(&policy.calendar, from, to))
        .sum()
}

/// The instant at which the clock of a measurement started at `start` reaches `target_minutes`,
/// as known at `now`.
///
/// If the target was reached before `now`, that past instant. Otherwise the clock's remaining
/// time is added from `now`: the real due instant while the clock runs, and the due instant
/// "if it ran again from now" while it is stopped. `None` beyond the clock's horizon.
pub(super) fn due_at(
    statuses: &[StatusSince],
    policy: &SlaPolicyDefinition,
    start: DateTime<Utc>,
    now: DateTime<Utc>,
    target_minutes: u32,
) -> Option<DateTime<Utc>> {
    let mut remaining = TimeDelta::minutes(i64::from(target_minutes));
    for (from, to) in running_spans(statuses, policy, start, now) {
        let elapsed = business_time_between(&policy.calendar, from, to);
        if elapsed >= remaining {
            return add_business_time(&policy.calendar, from, remaining);
        }
        remaining -= elapsed;
    }
    add_business_time(&policy.calendar, now.max(start), remaining)
}

//! SLA arithmetic: due instants and elapsed business time.

use chrono::{DateTime, TimeDelta, Utc};

use super::calendar::Calendar;
use super::errors::ClockError;
use super::periods::Periods;

/// How far ahead [`add_business_minutes`] looks for a due instant: ten years (3,653 days).
/// Beyond it the clock gives up rather than walk a calendar whose holidays leave no room.
pub const HORIZON_DAYS: i64 = 3_653;

/// The instant at which `minutes` business minutes have elapsed after `start`.
///
/// If `start` is outside business hours, counting begins with the next business period. The
/// result is the moment the last minute completes, so it may be the very end of a period
/// (Friday 17:30 plus 30 minutes in a 09:00–18:00 calendar is Friday 18:00, not Monday 09:00).
/// Adding zero minutes returns `start` itself, even outside business hours: a target of zero is
/// due at once. Seconds and sub-seconds of `start` are kept.
///
/// Fails with [`ClockError::BeyondHorizon`] when the due instant would lie more than
/// [`HORIZON_DAYS`] after `start`, whatever the calendar.
pub fn add_business_minutes(
    calendar: &Calendar,
    start: DateTime<Utc>,
    minutes: u32,
) -> Result<DateTime<Utc>, ClockError> {
    add_business_time(calendar, start, TimeDelta::minutes(i64::from(minutes)))
        .ok_or(ClockError::BeyondHorizon { minutes })
}

/// [`add_business_minutes`] for an exact duration: the instant at which `target` business time
/// has elapsed after `start`, or `None` beyond [`HORIZON_DAYS`]. A zero or negative `target`
/// returns `start`. The SLA engine needs it because time left on a paused clock is not a whole
/// number of minutes.
pub(crate) fn add_business_time(
    calendar: &Calendar,
    start: DateTime<Utc>,
    target: TimeDelta,
) -> Option<DateTime<Utc>> {
    if target <= TimeDelta::zero() {
        return Some(start);
    }
    let horizon = start
        .checked_add_signed(TimeDelta::days(HORIZON_DAYS))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let due = match calendar {
        Calendar::Always => start.checked_add_signed(target),
        Calendar::BusinessHours(business_hours) => {
            let mut remaining = target;
            Periods::new(business_hours, start, horizon).find_map(|period| {
                if remaining <= period.length() {
                    // Cannot overflow: the result is at most `period.end`.
                    return Some(period.start + remaining);
                }
                remaining -= period.length();
                None
            })
        }
    };
    due.filter(|due| *due <= horizon)
}

/// The business time elapsed in `[from, to)`, exact to the nanosecond; zero if `to <= from`.
///
/// The work grows with the number of days between `from` and `to`, not with the minutes.
pub fn business_time_between(
    calendar: &Calendar,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> TimeDelta {
    if to <= from {
        return TimeDelta::zero();
    }
    match calendar {
        Calendar::Always => to - from,
        Calendar::BusinessHours(business_hours) => Periods::new(business_hours, from, to)
            .map(|period| period.length())
            .sum(),
    }
}

/// The whole business minutes elapsed in `[from, to)`: [`business_time_between`] rounded down,
/// so 89 seconds of business time is 1 minute. Zero if `to <= from`.
pub fn business_minutes_between(
    calendar: &Calendar,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> i64 {
    business_time_between(calendar, from, to).num_minutes()
}

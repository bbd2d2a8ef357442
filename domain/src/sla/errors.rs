//! One variant per broken rule. Messages are lowercase and say what is wrong.

use chrono::Weekday;

use super::calendar::weekday_key;
use super::wall_time::WallTime;

/// A time of day that is not `HH:MM` between `00:00` and `24:00`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("time {0:?} is not HH:MM between 00:00 and 24:00")]
pub struct WallTimeError(pub(super) String);

/// Why a business-hours calendar is refused by [`Calendar::validate`](super::Calendar::validate).
///
/// Unknown time zones and malformed times never get this far: they cannot be represented, so
/// deserialization already rejects them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    /// An interval that does not end after it starts.
    #[error("{day} interval {index} ({start}–{end}) does not end after it starts", day = weekday_key(*.day))]
    EmptyInterval {
        /// The weekday whose list holds the interval.
        day: Weekday,
        /// Position of the interval in that list, from 0.
        index: usize,
        /// Its start.
        start: WallTime,
        /// Its end.
        end: WallTime,
    },
    /// An interval that starts before the previous interval of the same day has ended: the
    /// intervals overlap or are not listed in order.
    #[error(
        "{day} interval {index} starts at {start}, before the previous interval ends at {previous_end}; intervals must be in order and must not overlap",
        day = weekday_key(*.day)
    )]
    OutOfOrder {
        /// The weekday whose list holds the interval.
        day: Weekday,
        /// Position of the interval in that list, from 0.
        index: usize,
        /// Its start.
        start: WallTime,
        /// The end of the interval listed before it.
        previous_end: WallTime,
    },
    /// No weekday has any business hours, so no SLA target could ever fall due.
    #[error("the calendar has no business hours on any day of the week")]
    NoBusinessHours,
}

impl CalendarError {
    /// JSON Pointer (RFC 6901) to the offending part, relative to the calendar object, e.g.
    /// `/hours/mon/1`, so an API can report it inside its own request body.
    pub fn pointer(&self) -> String {
        match self {
            CalendarError::EmptyInterval { day, index, .. }
            | CalendarError::OutOfOrder { day, index, .. } => {
                format!("/hours/{}/{index}", weekday_key(*day))
            }
            CalendarError::NoBusinessHours => "/hours".to_owned(),
        }
    }
}

/// Why the SLA clock could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    /// The calendar does not hold the requested business time within
    /// [`HORIZON_DAYS`](super::HORIZON_DAYS) of the start (for example every business day for
    /// years is a holiday), so there is no due time worth reporting.
    #[error(
        "the calendar does not hold {minutes} business minutes within {days} days of the start",
        days = super::HORIZON_DAYS
    )]
    BeyondHorizon {
        /// The business minutes that were asked for.
        minutes: u32,
    },
}

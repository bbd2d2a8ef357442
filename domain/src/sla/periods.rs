//! The business periods of a calendar as real instants, in order.
//!
//! A business-hours calendar describes local wall-clock times; the clock needs stretches of real
//! time. An instant is business time when the zone's wall clock shows a date that is not a
//! holiday and a time inside one of that weekday's intervals. To find those instants we walk
//! real time one UTC day at a time and split each day where the zone's UTC offset changes
//! (daylight saving time). Inside such a segment the wall clock is the real clock plus a fixed
//! offset, so the local intervals map to real ones by subtracting the offset. Local times that a
//! spring-forward skips are simply never shown; those a fall-back repeats are shown, and count,
//! twice.
//!
//! Walking fixed UTC days (rather than starting wherever the caller starts) makes the periods a
//! property of the calendar alone, so sums over adjacent ranges agree exactly.

use std::collections::VecDeque;

use chrono::{
    DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeDelta, TimeZone, Utc,
};
use chrono_tz::Tz;

use super::calendar::{BusinessHours, WEEK};

/// A stretch `[start, end)` of real time that is business time; `start < end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Period {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Period {
    pub fn length(self) -> TimeDelta {
        self.end - self.start
    }
}

/// A calendar prepared for walking: each weekday's intervals sorted and merged (so even a
/// calendar that fails validation has one meaning, the union of its intervals) and the holidays
/// sorted for lookup.
struct Schedule {
    time_zone: Tz,
    /// Minute ranges `[start, end)` per weekday, Monday first; sorted, disjoint, non-empty.
    days: [Vec<(u16, u16)>; 7],
    holidays: Vec<NaiveDate>,
}

impl Schedule {
    fn new(calendar: &BusinessHours) -> Schedule {
        let days = WEEK.map(|day| {
            let mut ranges: Vec<(u16, u16)> = calendar
                .hours
                .on(day)
                .iter()
                .map(|i| {
                    (
                        i.start.minutes_since_midnight(),
                        i.end.minutes_since_midnight(),
                    )
                })
                .filter(|(start, end)| start < end)
                .collect();
            ranges.sort_unstable();
            merge_overlapping(ranges)
        });
        let mut holidays = calendar.holidays.clone();
        holidays.sort_unstable();
        Schedule {
            time_zone: calendar.time_zone,
            days,
            holidays,
        }
    }

    /// The minute ranges that are business time on a local date.
    fn ranges_on(&self, date: NaiveDate) -> &[(u16, u16)] {
        if self.holidays.binary_search(&date).is_ok() {
            return &[];
        }
        &self.days[date.weekday().num_days_from_monday() as usize]
    }
}

fn merge_overlapping(sorted: Vec<(u16, u16)>) -> Vec<(u16, u16)> {
    let mut merged: Vec<(u16, u16)> = Vec::with_capacity(sorted.len());
    for (start, end) in sorted {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
}

/// The business periods of a calendar that meet `[from, until)`, clipped to it, in order.
pub(super) struct Periods {
    schedule: Schedule,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    /// The next UTC day to expand; `None` once past `until` or the end of representable time.
    next_day: Option<NaiveDate>,
    pending: VecDeque<Period>,
}

impl Periods {
    pub fn new(calendar: &BusinessHours, from: DateTime<Utc>, until: DateTime<Utc>) -> Periods {
        Periods {
            schedule: Schedule::new(calendar),
            from,
            until,
            next_day: Some(from.date_naive()),
            pending: VecDeque::new(),
        }
    }

    /// Expands the next UTC day into `pending`; false when there is nothing left to expand.
    fn expand_next_day(&mut self) -> bool {
        let Some(day) = self.next_day else {
            return false;
        };
        let day_start = day.and_time(NaiveTime::MIN).and_utc();
        if day_start >= self.until {
            self.next_day = None;
            return false;
        }
        let expanded = periods_of_utc_day(&self.schedule, day_start, &mut self.pending);
        self.next_day = expanded.and_then(|()| day.succ_opt());
        true
    }
}

impl Iterator for Periods {
    type Item = Period;

    fn next(&mut self) -> Option<Period> {
        loop {
            while let Some(period) = self.pending.pop_front() {
                let start = period.start.max(self.from);
                let end = period.end.min(self.until);
                if start < end {
                    return Some(Period { start, end });
                }
            }
            if !self.expand_next_day() {
                return None;
            }
        }
    }
}

/// Appends the business periods of the UTC day starting at `day_start`, in order. `None` when
/// the day reaches past the representable range (the periods found so far are kept).
fn periods_of_utc_day(
    schedule: &Schedule,
    day_start: DateTime<Utc>,
    out: &mut VecDeque<Period>,
) -> Option<()> {
    let day_end = day_start.checked_add_signed(TimeDelta::days(1))?;
    let mut segment_start = day_start;
    while segment_start < day_end {
        let offset = utc_offset(schedule.time_zone, segment_start);
        let segment_end = next_offset_change(schedule.time_zone, segment_start, day_end, offset);
        periods_of_segment(schedule, segment_start, segment_end, offset, out)?;
        segment_start = segment_end;
    }
    Some(())
}

/// How far the zone's wall clock is ahead of UTC at `instant`.
fn utc_offset(zone: Tz, instant: DateTime<Utc>) -> TimeDelta {
    let offset = zone.offset_from_utc_datetime(&instant.naive_utc()).fix();
    TimeDelta::seconds(i64::from(offset.local_minus_utc()))
}

/// The first instant in `(start, end)` where the UTC offset differs from `offset` (which holds at
/// `start`), or `end`. Offsets change on whole seconds, so a binary search over seconds finds the
/// exact transition. Two transitions that cancel out within one UTC day would go unnoticed; a
/// scan of every zone in the tz database over 1970–2040 found none.
fn next_offset_change(
    zone: Tz,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    offset: TimeDelta,
) -> DateTime<Utc> {
    let one_second = TimeDelta::seconds(1);
    let mut unchanged = start;
    let mut changed = end - one_second;
    if utc_offset(zone, changed) == offset {
        return end;
    }
    // Invariant: the offset at `unchanged` is `offset`, the one at `changed` is not.
    while changed - unchanged > one_second {
        let middle = unchanged + TimeDelta::seconds((changed - unchanged).num_seconds() / 2);
        if utc_offset(zone, middle) == offset {
            unchanged = middle;
        } else {
            changed = middle;
        }
    }
    changed
}

/// Appends the business periods within `[start, end)`, a stretch of real time during which the
/// wall clock runs `offset` ahead of UTC.
fn periods_of_segment(
    schedule: &Schedule,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    offset: TimeDelta,
    out: &mut VecDeque<Period>,
) -> Option<()> {
    let local_start = start.naive_utc().checked_add_signed(offset)?;
    let local_end = end.naive_utc().checked_add_signed(offset)?;
    let mut date = local_start.date();
    loop {
        let midnight = date.and_time(NaiveTime::MIN);
        if midnight >= local_end {
            return Some(());
        }
        for &(from_minute, to_minute) in schedule.ranges_on(date) {
            let open = midnight.checked_add_signed(TimeDelta::minutes(from_minute.into()))?;
            let close = midnight.checked_add_signed(TimeDelta::minutes(to_minute.into()))?;
            let open = open.max(local_start);
            let close = close.min(local_end);
            if open < close {
                out.push_back(Period {
                    start: to_utc(open, offset)?,
                    end: to_utc(close, offset)?,
                });
            }
        }
        date = date.succ_opt()?;
    }
}

fn to_utc(local: NaiveDateTime, offset: TimeDelta) -> Option<DateTime<Utc>> {
    Some(local.checked_sub_signed(offset)?.and_utc())
}

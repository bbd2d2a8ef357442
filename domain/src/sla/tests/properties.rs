//! Properties of the clock over random calendars, zones and instants in 2026–2027, checked
//! against each other and against a minute-by-minute count on the wall clock.

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Timelike, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;

use super::utc;
use crate::sla::{
    BusinessHours, Calendar, ClockError, HORIZON_DAYS, Interval, WallTime, WeeklyHours,
    add_business_minutes, business_minutes_between, business_time_between,
};

/// Zones with ordinary DST (Berlin, New York), southern-hemisphere and half-hour DST (Lord
/// Howe), a half-hour offset without DST (Kolkata), and transitions at local midnight (Havana)
/// including a fall-back from 00:00 to 23:00 of the previous day (Beirut).
const ZONES: &[&str] = &[
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "America/Havana",
    "Asia/Beirut",
];

fn wall_time(minutes: u16) -> WallTime {
    WallTime::new((minutes / 60) as u8, (minutes % 60) as u8).unwrap()
}

/// Up to three intervals of a day, cut at random minutes with a bias for whole hours (so
/// midnight, 24:00 and the DST hours come up often).
fn day_hours() -> impl Strategy<Value = Vec<Interval>> {
    let cut = prop_oneof![3 => 0u16..=1440, 1 => (0u16..=24).prop_map(|hour| hour * 60)];
    prop::collection::btree_set(cut, 0..=6).prop_map(|cuts| {
        let cuts: Vec<u16> = cuts.into_iter().collect();
        cuts.chunks_exact(2)
            .map(|pair| Interval {
                start: wall_time(pair[0]),
                end: wall_time(pair[1]),
            })
            .collect()
    })
}

fn business_hours() -> impl Strategy<Value = Calendar> {
    let zone = prop::sample::select(ZONES).prop_map(|name| name.parse::<Tz>().unwrap());
    let week = prop::array::uniform7(day_hours());
    let first = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    let holidays = prop::collection::vec(
        (0i64..730).prop_map(move |day| first + TimeDelta::days(day)),
        0..15,
    );
    (zone, week, holidays)
        .prop_map(
            |(time_zone, [mon, tue, wed, thu, fri, sat, sun], holidays)| {
                let hours = WeeklyHours {
                    mon,
                    tue,
                    wed,
                    thu,
                    fri,
                    sat,
                    sun,
                };
                Calendar::BusinessHours(BusinessHours {
                    time_zone,
                    hours,
                    holidays,
                })
            },
        )
        .prop_filter("the week needs business hours", |calendar| {
            calendar.validate().is_ok()
        })
}

fn calendar() -> impl Strategy<Value = Calendar> {
    prop_oneof![1 => Just(Calendar::Always), 9 => business_hours()]
}

/// An instant with nanoseconds, anywhere in 2026–2027 or, half the time, in the weeks around
/// the spring and autumn transitions.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    let anywhere = (utc("2026-01-01T00:00:00Z"), 730);
    let windows = [
        (utc("2026-03-01T00:00:00Z"), 45),
        (utc("2026-09-25T00:00:00Z"), 50),
        (utc("2027-03-01T00:00:00Z"), 45),
        (utc("2027-09-25T00:00:00Z"), 50),
    ];
    let window = prop_oneof![Just(anywhere), prop::sample::select(windows.to_vec())];
    (window, 0f64..1.0, 0u32..1_000_000_000).prop_map(|((start, days), fraction, nanos)| {
        let seconds = (fraction * (days * 86_400) as f64) as i64;
        start + TimeDelta::seconds(seconds) + TimeDelta::nanoseconds(nanos.into())
    })
}

fn whole_minute(instant: DateTime<Utc>) -> DateTime<Utc> {
    instant.with_second(0).unwrap().with_nanosecond(0).unwrap()
}

/// Whether the minute starting at `instant` is business time, read off the wall clock.
fn is_business_minute(calendar: &Calendar, instant: DateTime<Utc>) -> bool {
    let Calendar::BusinessHours(business_hours) = calendar else {
        return true;
    };
    let local = instant
        .with_timezone(&business_hours.time_zone)
        .naive_local();
    let minute = (local.hour() * 60 + local.minute()) as u16;
    !business_hours.holidays.contains(&local.date())
        && business_hours
            .hours
            .on(local.weekday())
            .iter()
            .any(|interval| {
                interval.start.minutes_since_midnight() <= minute
                    && minute < interval.end.minutes_since_midnight()
            })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn measuring_up_to_the_due_time_gives_back_the_minutes_added(
        calendar in calendar(), start in instant(), minutes in 0u32..=50_000,
    ) {
        match add_business_minutes(&calendar, start, minutes) {
            Ok(due) => {
                prop_assert!(due >= start);
                let elapsed = business_time_between(&calendar, start, due);
                prop_assert_eq!(elapsed, TimeDelta::minutes(minutes.into()));
                prop_assert_eq!(business_minutes_between(&calendar, start, due), i64::from(minutes));
            }
            Err(ClockError::BeyondHorizon { .. }) => {
                let horizon = start + TimeDelta::days(HORIZON_DAYS);
                prop_assert!(business_minutes_between(&calendar, start, horizon) < minutes.into());
            }
        }
    }

    #[test]
    fn more_minutes_are_never_due_earlier(
        calendar in calendar(), start in instant(), a in 0u32..=50_000, b in 0u32..=50_000,
    ) {
        let (fewer, more) = (a.min(b), a.max(b));
        match (add_business_minutes(&calendar, start, fewer), add_business_minutes(&calendar, start, more)) {
            (Ok(earlier), Ok(later)) => prop_assert!(earlier <= later),
            (Err(_), later) => prop_assert!(later.is_err()),
            (Ok(_), Err(_)) => {}
        }
    }

    #[test]
    fn business_time_adds_up_over_adjacent_ranges(
        calendar in calendar(),
        a in instant(),
        first in 0i64..20 * 86_400_000,
        second in 0i64..20 * 86_400_000,
    ) {
        let b = a + TimeDelta::milliseconds(first);
        let c = b + TimeDelta::milliseconds(second);
        let whole = business_time_between(&calendar, a, c);
        prop_assert_eq!(
            business_time_between(&calendar, a, b) + business_time_between(&calendar, b, c),
            whole
        );
        prop_assert!(whole >= TimeDelta::zero() && whole <= c - a);
    }

    #[test]
    fn business_minutes_add_up_over_whole_minute_ranges(
        calendar in calendar(), a in instant(), first in 0i64..30_000, second in 0i64..30_000,
    ) {
        let a = whole_minute(a);
        let b = a + TimeDelta::minutes(first);
        let c = b + TimeDelta::minutes(second);
        let whole = business_minutes_between(&calendar, a, c);
        prop_assert_eq!(
            business_minutes_between(&calendar, a, b) + business_minutes_between(&calendar, b, c),
            whole
        );
        prop_assert!(whole <= first + second);
    }

    #[test]
    fn business_minutes_match_a_minute_by_minute_count_on_the_wall_clock(
        calendar in calendar(), start in instant(), minutes in 0i64..3 * 24 * 60,
    ) {
        let start = whole_minute(start);
        let counted = (0..minutes)
            .filter(|minute| is_business_minute(&calendar, start + TimeDelta::minutes(*minute)))
            .count() as i64;
        let end = start + TimeDelta::minutes(minutes);
        prop_assert_eq!(business_minutes_between(&calendar, start, end), counted);
    }
}

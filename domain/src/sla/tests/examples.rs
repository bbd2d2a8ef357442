//! Worked examples: office hours, holidays, lunch breaks, night shifts and 24×7.

use chrono::{Datelike, NaiveDate, TimeDelta, Weekday};
use chrono_tz::Europe::Berlin;
use chrono_tz::Tz;
use serde_json::json;

use super::{at, calendar, utc};
use crate::sla::{
    Calendar, ClockError, HORIZON_DAYS, add_business_minutes, business_minutes_between,
    business_time_between,
};

/// Monday to Friday 09:00–18:00 in Berlin, with the given holidays.
fn berlin_office(holidays: &[&str]) -> Calendar {
    let day = json!([{ "start": "09:00", "end": "18:00" }]);
    calendar(json!({
        "kind": "business_hours",
        "time_zone": "Europe/Berlin",
        "hours": { "mon": day, "tue": day, "wed": day, "thu": day, "fri": day },
        "holidays": holidays,
    }))
}

#[test]
fn a_ticket_opened_friday_evening_is_due_monday_morning() {
    // Given office hours Mon–Fri 09:00–18:00 and a 30-minute first-reply target,
    let office = berlin_office(&[]);
    // when a ticket arrives on Friday 2026-06-05 at 17:55,
    let opened = at(Berlin, "2026-06-05 17:55");
    // then 5 minutes run on Friday and 25 on Monday.
    let due = add_business_minutes(&office, opened, 30).unwrap();
    assert_eq!(due, at(Berlin, "2026-06-08 09:25"));
    assert_eq!(business_minutes_between(&office, opened, due), 30);
}

#[test]
fn a_holiday_monday_pushes_the_due_time_to_tuesday() {
    let office = berlin_office(&["2026-06-08"]);
    let opened = at(Berlin, "2026-06-05 17:55");
    let due = add_business_minutes(&office, opened, 30).unwrap();
    assert_eq!(due, at(Berlin, "2026-06-09 09:25"));
}

#[test]
fn a_ticket_opened_on_the_weekend_starts_counting_on_monday() {
    let office = berlin_office(&[]);
    let due = add_business_minutes(&office, at(Berlin, "2026-06-06 11:00"), 30).unwrap();
    assert_eq!(due, at(Berlin, "2026-06-08 09:30"));
}

#[test]
fn a_target_that_ends_with_the_day_is_due_at_closing_time() {
    let office = berlin_office(&[]);
    let due = add_business_minutes(&office, at(Berlin, "2026-06-05 17:30"), 30).unwrap();
    assert_eq!(due, at(Berlin, "2026-06-05 18:00"));
}

#[test]
fn a_zero_minute_target_is_due_at_once_even_outside_business_hours() {
    let office = berlin_office(&[]);
    let saturday = at(Berlin, "2026-06-06 11:00");
    assert_eq!(
        add_business_minutes(&office, saturday, 0).unwrap(),
        saturday
    );
}

#[test]
fn seconds_of_the_start_are_kept() {
    let office = berlin_office(&[]);
    let opened = at(Berlin, "2026-06-05 17:59:30");
    let due = add_business_minutes(&office, opened, 1).unwrap();
    assert_eq!(due, at(Berlin, "2026-06-08 09:00:30"));
    let elapsed = business_time_between(&office, opened, at(Berlin, "2026-06-08 09:01"));
    assert_eq!(elapsed, TimeDelta::seconds(90));
    assert_eq!(business_minutes_between(&office, opened, due), 1);
}

#[test]
fn a_lunch_break_does_not_count() {
    // Given Mon–Fri 09:00–12:00 and 13:00–17:00 in UTC,
    let day = json!([{ "start": "09:00", "end": "12:00" }, { "start": "13:00", "end": "17:00" }]);
    let office = calendar(json!({
        "kind": "business_hours",
        "time_zone": "UTC",
        "hours": { "mon": day, "tue": day, "wed": day, "thu": day, "fri": day },
    }));
    // then 60 minutes from 11:30 end at 13:30,
    let due = add_business_minutes(&office, utc("2026-06-08T11:30:00Z"), 60).unwrap();
    assert_eq!(due, utc("2026-06-08T13:30:00Z"));
    // and a full day holds 7 hours.
    let day_minutes = business_minutes_between(
        &office,
        utc("2026-06-08T00:00:00Z"),
        utc("2026-06-09T00:00:00Z"),
    );
    assert_eq!(day_minutes, 7 * 60);
}

#[test]
fn a_night_shift_across_midnight_counts_as_one_stretch() {
    // Given Monday 22:00–24:00 and Tuesday 00:00–02:00 in Berlin (2026-06-08 is a Monday),
    let night = calendar(json!({
        "kind": "business_hours",
        "time_zone": "Europe/Berlin",
        "hours": {
            "mon": [{ "start": "22:00", "end": "24:00" }],
            "tue": [{ "start": "00:00", "end": "02:00" }],
        },
    }));
    let elapsed = business_minutes_between(
        &night,
        at(Berlin, "2026-06-08 21:00"),
        at(Berlin, "2026-06-09 03:00"),
    );
    assert_eq!(elapsed, 240);
    let monday_ten_pm = at(Berlin, "2026-06-08 22:00");
    let due = add_business_minutes(&night, monday_ten_pm, 150).unwrap();
    assert_eq!(due, at(Berlin, "2026-06-09 00:30"));
    let due = add_business_minutes(&night, monday_ten_pm, 240).unwrap();
    assert_eq!(due, at(Berlin, "2026-06-09 02:00"));
}

#[test]
fn around_the_clock_adds_and_subtracts_plainly() {
    let always = calendar(json!({ "kind": "always" }));
    let start = utc("2026-06-06T11:00:30.250Z");
    let due = add_business_minutes(&always, start, 100_000).unwrap();
    assert_eq!(due, start + TimeDelta::minutes(100_000));
    let end = start + TimeDelta::seconds(90);
    assert_eq!(
        business_time_between(&always, start, end),
        TimeDelta::seconds(90)
    );
    assert_eq!(business_minutes_between(&always, start, end), 1);
}

#[test]
fn time_running_backwards_is_no_business_time() {
    let office = berlin_office(&[]);
    let later = at(Berlin, "2026-06-08 12:00");
    let earlier = at(Berlin, "2026-06-08 10:00");
    assert_eq!(business_minutes_between(&office, later, earlier), 0);
    let always = Calendar::Always;
    assert_eq!(business_minutes_between(&always, later, earlier), 0);
}

#[test]
fn a_hundred_thousand_minutes_span_the_expected_number_of_working_days() {
    // 100,000 minutes at 540 a day are 185 working days and 100 minutes: 37 weeks, then
    // Monday 09:00 + 100 minutes.
    let office = calendar(json!({
        "kind": "business_hours",
        "time_zone": "UTC",
        "hours": {
            "mon": [{ "start": "09:00", "end": "18:00" }],
            "tue": [{ "start": "09:00", "end": "18:00" }],
            "wed": [{ "start": "09:00", "end": "18:00" }],
            "thu": [{ "start": "09:00", "end": "18:00" }],
            "fri": [{ "start": "09:00", "end": "18:00" }],
        },
    }));
    let monday = utc("2026-01-05T09:00:00Z");
    let due = add_business_minutes(&office, monday, 100_000).unwrap();
    assert_eq!(due, monday + TimeDelta::weeks(37) + TimeDelta::minutes(100));
}

#[test]
fn a_calendar_of_holidays_gives_up_after_ten_years() {
    // Given a calendar open only on Mondays, and every Monday for eleven years a holiday,
    let first_monday = NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
    let mondays: Vec<String> = (0..52 * 11)
        .map(|week| (first_monday + TimeDelta::weeks(week)).to_string())
        .collect();
    assert_eq!(first_monday.weekday(), Weekday::Mon);
    let closed = calendar(json!({
        "kind": "business_hours",
        "time_zone": "Europe/Berlin",
        "hours": { "mon": [{ "start": "09:00", "end": "17:00" }] },
        "holidays": mondays,
    }));
    // then no due time is found,
    let start = at(Berlin, "2026-01-01 12:00");
    let error = add_business_minutes(&closed, start, 1).unwrap_err();
    assert_eq!(error, ClockError::BeyondHorizon { minutes: 1 });
    assert_eq!(
        error.to_string(),
        "the calendar does not hold 1 business minutes within 3653 days of the start"
    );
    // and around the clock the horizon holds as well.
    let ten_years_and_a_day = u32::try_from((HORIZON_DAYS + 1) * 24 * 60).unwrap();
    assert!(add_business_minutes(&Calendar::Always, start, ten_years_and_a_day).is_err());
}

#[test]
fn the_far_end_of_time_is_an_error_not_a_panic() {
    let office = berlin_office(&[]);
    let end_of_time = chrono::DateTime::<chrono::Utc>::MAX_UTC;
    assert!(add_business_minutes(&office, end_of_time, 1).is_err());
    assert!(add_business_minutes(&Calendar::Always, end_of_time, 1).is_err());
    let start = end_of_time - TimeDelta::days(3);
    assert!(business_minutes_between(&office, start, end_of_time) <= 3 * 24 * 60);
}

#[test]
fn any_zone_works_the_same_way() {
    let sydney: Tz = "Australia/Sydney".parse().unwrap();
    let office = calendar(json!({
        "kind": "business_hours",
        "time_zone": "Australia/Sydney",
        "hours": { "fri": [{ "start": "09:00", "end": "18:00" }], "mon": [{ "start": "09:00", "end": "18:00" }] },
    }));
    let due = add_business_minutes(&office, at(sydney, "2026-06-05 17:55"), 30).unwrap();
    assert_eq!(due, at(sydney, "2026-06-08 09:25"));
}

#[test]
fn a_calendar_that_fails_validation_still_counts_the_union_of_its_hours() {
    // Overlapping and unordered intervals are refused by `validate`, but the clock never
    // double-counts them.
    let sloppy: Calendar = serde_json::from_value(json!({
        "kind": "business_hours",
        "time_zone": "UTC",
        "hours": { "mon": [
            { "start": "13:00", "end": "18:00" },
            { "start": "09:00", "end": "14:00" },
            { "start": "17:00", "end": "09:00" },
        ] },
    }))
    .unwrap();
    assert!(sloppy.validate().is_err());
    let monday = (utc("2026-06-08T00:00:00Z"), utc("2026-06-09T00:00:00Z"));
    assert_eq!(
        business_minutes_between(&sloppy, monday.0, monday.1),
        9 * 60
    );
}

//! Daylight saving time: business hours are wall-clock hours, counted in real time.
//!
//! In 2026 Europe/Berlin springs forward on Sunday 29 March (02:00 CET → 03:00 CEST, at 01:00
//! UTC) and falls back on Sunday 25 October (03:00 CEST → 02:00 CET, at 01:00 UTC).

use chrono::{Offset, TimeZone};
use chrono_tz::Europe::Berlin;
use serde_json::json;

use super::{at, calendar, utc};
use crate::sla::{Calendar, add_business_minutes, business_minutes_between};

/// Sundays 01:00–05:00 in Berlin: the hours that contain both 2026 transitions.
fn sunday_early_shift() -> Calendar {
    calendar(json!({
        "kind": "business_hours",
        "time_zone": "Europe/Berlin",
        "hours": { "sun": [{ "start": "01:00", "end": "05:00" }] },
    }))
}

/// Sundays with the given hours in Berlin.
fn sunday(start: &str, end: &str) -> Calendar {
    calendar(json!({
        "kind": "business_hours",
        "time_zone": "Europe/Berlin",
        "hours": { "sun": [{ "start": start, "end": end }] },
    }))
}

fn utc_offset_hours(instant: &str) -> i32 {
    Berlin
        .offset_from_utc_datetime(&utc(instant).naive_utc())
        .fix()
        .local_minus_utc()
        / 3600
}

#[test]
fn the_2026_transition_dates_are_the_ones_these_tests_assume() {
    assert_eq!(utc_offset_hours("2026-03-29T00:59:59Z"), 1);
    assert_eq!(utc_offset_hours("2026-03-29T01:00:00Z"), 2);
    assert_eq!(utc_offset_hours("2026-10-25T00:59:59Z"), 2);
    assert_eq!(utc_offset_hours("2026-10-25T01:00:00Z"), 1);
}

#[test]
fn spring_forward_leaves_three_real_hours_in_one_to_five() {
    let shift = sunday_early_shift();
    let minutes = business_minutes_between(
        &shift,
        at(Berlin, "2026-03-28 12:00"),
        at(Berlin, "2026-03-29 12:00"),
    );
    assert_eq!(minutes, 180);
}

#[test]
fn fall_back_leaves_five_real_hours_in_one_to_five() {
    let shift = sunday_early_shift();
    let minutes = business_minutes_between(
        &shift,
        at(Berlin, "2026-10-24 12:00"),
        at(Berlin, "2026-10-25 12:00"),
    );
    assert_eq!(minutes, 300);
}

#[test]
fn adding_across_spring_forward_lands_on_the_real_instant() {
    let shift = sunday_early_shift();
    let saturday = at(Berlin, "2026-03-28 12:00");
    // 01:00 CET is 00:00 UTC; two real hours later the clock shows 04:00 CEST.
    let due = add_business_minutes(&shift, saturday, 120).unwrap();
    assert_eq!(due, utc("2026-03-29T02:00:00Z"));
    assert_eq!(due, at(Berlin, "2026-03-29 04:00"));
    // The shift holds 180 minutes; the 181st is the first of the next Sunday.
    let due = add_business_minutes(&shift, saturday, 180).unwrap();
    assert_eq!(due, at(Berlin, "2026-03-29 05:00"));
    let due = add_business_minutes(&shift, saturday, 181).unwrap();
    assert_eq!(due, at(Berlin, "2026-04-05 01:01"));
}

#[test]
fn adding_across_fall_back_counts_the_repeated_hour() {
    let shift = sunday_early_shift();
    let saturday = at(Berlin, "2026-10-24 12:00");
    // 01:00 CEST is 23:00 UTC; 150 real minutes later the clock shows 02:30 the second time.
    let due = add_business_minutes(&shift, saturday, 150).unwrap();
    assert_eq!(due, utc("2026-10-25T01:30:00Z"));
    let due = add_business_minutes(&shift, saturday, 300).unwrap();
    assert_eq!(due, at(Berlin, "2026-10-25 05:00"));
}

#[test]
fn hours_inside_the_skipped_hour_hold_no_time() {
    let skipped = sunday("02:00", "03:00");
    let day = (
        at(Berlin, "2026-03-28 12:00"),
        at(Berlin, "2026-03-29 12:00"),
    );
    assert_eq!(business_minutes_between(&skipped, day.0, day.1), 0);
    // An interval starting in the gap starts when the clock jumps to 03:00 CEST.
    let from_the_gap = sunday("02:30", "04:00");
    assert_eq!(business_minutes_between(&from_the_gap, day.0, day.1), 60);
    let due = add_business_minutes(&from_the_gap, day.0, 1).unwrap();
    assert_eq!(due, utc("2026-03-29T01:01:00Z"));
}

#[test]
fn hours_inside_the_repeated_hour_count_both_times_the_clock_shows_them() {
    let repeated = sunday("02:00", "02:30");
    let day = (
        at(Berlin, "2026-10-24 12:00"),
        at(Berlin, "2026-10-25 12:00"),
    );
    assert_eq!(business_minutes_between(&repeated, day.0, day.1), 60);
    // The first pass is 00:00–00:30 UTC, the second 01:00–01:30 UTC.
    let due = add_business_minutes(&repeated, day.0, 31).unwrap();
    assert_eq!(due, utc("2026-10-25T01:01:00Z"));
}

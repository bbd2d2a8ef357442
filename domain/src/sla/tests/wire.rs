//! The calendar's JSON shape and the rules a calendar must follow.

use chrono::Weekday;
use serde_json::json;

use crate::sla::{BusinessHours, Calendar, CalendarError, Interval, WallTime, WeeklyHours};

fn parse(json: serde_json::Value) -> Result<Calendar, String> {
    serde_json::from_value(json).map_err(|error| error.to_string())
}

/// A Berlin calendar with the given Monday hours.
fn monday(hours: serde_json::Value) -> Calendar {
    parse(json!({
        "kind": "business_hours",
        "time_zone": "Europe/Berlin",
        "hours": { "mon": hours },
    }))
    .unwrap()
}

fn time(text: &str) -> WallTime {
    text.parse().unwrap()
}

#[test]
fn a_business_hours_calendar_reads_and_writes_the_documented_shape() {
    let json = json!({
        "kind": "business_hours",
        "time_zone": "Europe/Berlin",
        "hours": {
            "mon": [{ "start": "09:00", "end": "12:00" }, { "start": "13:00", "end": "18:00" }],
            "sat": [{ "start": "22:00", "end": "24:00" }],
        },
        "holidays": ["2026-12-25"],
    });
    let calendar = parse(json.clone()).unwrap();
    let Calendar::BusinessHours(business_hours) = &calendar else {
        panic!("expected business hours, got {calendar:?}");
    };
    assert_eq!(business_hours.time_zone, chrono_tz::Europe::Berlin);
    assert_eq!(
        business_hours.hours.on(Weekday::Sat),
        [Interval {
            start: time("22:00"),
            end: WallTime::END_OF_DAY
        }]
    );
    assert!(business_hours.hours.on(Weekday::Sun).is_empty());
    assert_eq!(serde_json::to_value(&calendar).unwrap(), json);
}

#[test]
fn an_around_the_clock_calendar_is_just_its_kind() {
    let calendar = parse(json!({ "kind": "always" })).unwrap();
    assert_eq!(calendar, Calendar::Always);
    assert_eq!(
        serde_json::to_value(&calendar).unwrap(),
        json!({ "kind": "always" })
    );
    assert_eq!(calendar.validate(), Ok(()));
}

#[test]
fn a_calendar_built_in_code_validates_like_one_read_from_json() {
    let mut hours = WeeklyHours::default();
    hours.on_mut(Weekday::Wed).push(Interval {
        start: time("08:00"),
        end: time("16:30"),
    });
    let calendar = Calendar::BusinessHours(BusinessHours {
        time_zone: chrono_tz::America::New_York,
        hours,
        holidays: vec![],
    });
    assert_eq!(calendar.validate(), Ok(()));
}

#[test]
fn it_rejects_an_unknown_time_zone_by_name() {
    let error = parse(json!({
        "kind": "business_hours",
        "time_zone": "Europe/Atlantis",
        "hours": { "mon": [{ "start": "09:00", "end": "18:00" }] },
    }))
    .unwrap_err();
    assert!(
        error.contains("unknown time zone \"Europe/Atlantis\""),
        "{error}"
    );
}

#[test]
fn it_rejects_times_that_are_not_hh_mm_within_the_day() {
    for bad in ["9:00", "24:30", "12:60", "09:00:00", "noon"] {
        let error = parse(json!({
            "kind": "business_hours",
            "time_zone": "UTC",
            "hours": { "mon": [{ "start": bad, "end": "18:00" }] },
        }))
        .unwrap_err();
        assert!(
            error.contains("is not HH:MM between 00:00 and 24:00"),
            "{bad}: {error}"
        );
    }
}

#[test]
fn it_rejects_unknown_fields_and_misspelt_days() {
    for json in [
        json!({ "kind": "business_hours", "time_zone": "UTC", "hours": { "monday": [] } }),
        json!({ "kind": "business_hours", "time_zone": "UTC", "hours": {}, "holiday": [] }),
        json!({ "kind": "sometimes" }),
    ] {
        assert!(parse(json.clone()).is_err(), "{json}");
    }
}

#[test]
fn it_rejects_an_interval_that_does_not_end_after_it_starts() {
    let calendar = monday(json!([{ "start": "18:00", "end": "09:00" }]));
    let error = calendar.validate().unwrap_err();
    assert_eq!(
        error,
        CalendarError::EmptyInterval {
            day: Weekday::Mon,
            index: 0,
            start: time("18:00"),
            end: time("09:00"),
        }
    );
    assert_eq!(
        error.to_string(),
        "mon interval 0 (18:00–09:00) does not end after it starts"
    );
    assert_eq!(error.pointer(), "/hours/mon/0");
    let zero_length = monday(json!([{ "start": "09:00", "end": "09:00" }]));
    assert!(matches!(
        zero_length.validate(),
        Err(CalendarError::EmptyInterval { .. })
    ));
}

#[test]
fn it_rejects_overlapping_intervals() {
    let calendar = monday(json!([
        { "start": "09:00", "end": "13:00" },
        { "start": "12:00", "end": "18:00" },
    ]));
    let error = calendar.validate().unwrap_err();
    assert_eq!(error.pointer(), "/hours/mon/1");
    assert_eq!(
        error.to_string(),
        "mon interval 1 starts at 12:00, before the previous interval ends at 13:00; \
         intervals must be in order and must not overlap"
    );
}

#[test]
fn it_rejects_intervals_out_of_order() {
    let calendar = monday(json!([
        { "start": "13:00", "end": "18:00" },
        { "start": "09:00", "end": "12:00" },
    ]));
    assert!(matches!(
        calendar.validate(),
        Err(CalendarError::OutOfOrder { index: 1, .. })
    ));
}

#[test]
fn it_accepts_back_to_back_intervals() {
    let calendar = monday(json!([
        { "start": "09:00", "end": "12:00" },
        { "start": "12:00", "end": "24:00" },
    ]));
    assert_eq!(calendar.validate(), Ok(()));
}

#[test]
fn it_rejects_a_week_without_business_hours() {
    let calendar = parse(json!({
        "kind": "business_hours",
        "time_zone": "UTC",
        "hours": { "mon": [], "sun": [] },
    }))
    .unwrap();
    let error = calendar.validate().unwrap_err();
    assert_eq!(error, CalendarError::NoBusinessHours);
    assert_eq!(
        error.to_string(),
        "the calendar has no business hours on any day of the week"
    );
    assert_eq!(error.pointer(), "/hours");
}

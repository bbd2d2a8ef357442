//! Specifications of the SLA clock, policies and engine. Every calendar is spelled out as the
//! JSON an API would receive, so the tests double as examples of the wire shape.

mod dst;
mod engine;
mod examples;
mod policy;
mod properties;
mod wire;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::Calendar;

/// A calendar from its JSON form; it must pass validation.
fn calendar(json: serde_json::Value) -> Calendar {
    let calendar: Calendar = serde_json::from_value(json).unwrap();
    calendar.validate().unwrap();
    calendar
}

/// The instant a wall clock in `zone` shows `local` (`YYYY-MM-DD HH:MM[:SS]`); the local time
/// must be unambiguous.
fn at(zone: Tz, local: &str) -> DateTime<Utc> {
    let format = if local.len() > 16 {
        "%Y-%m-%d %H:%M:%S"
    } else {
        "%Y-%m-%d %H:%M"
    };
    let naive = NaiveDateTime::parse_from_str(local, format).unwrap();
    zone.from_local_datetime(&naive).single().unwrap().to_utc()
}

/// An instant written in RFC 3339.
fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

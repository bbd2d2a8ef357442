//! When the SLA clock runs: around the clock, or during business hours in a time zone.

use chrono::{NaiveDate, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::errors::CalendarError;
use super::wall_time::WallTime;

/// When SLA time passes.
///
/// On the wire the calendar is an object tagged by `kind`:
///
/// ```json
/// { "kind": "always" }
/// ```
///
/// ```json
/// {
///   "kind": "business_hours",
///   "time_zone": "Europe/Berlin",
///   "hours": {
///     "mon": [{ "start": "09:00", "end": "12:00" }, { "start": "13:00", "end": "18:00" }],
///     "fri": [{ "start": "09:00", "end": "16:00" }]
///   },
///   "holidays": ["2026-12-25", "2026-12-26"]
/// }
/// ```
///
/// Deserialization rejects unknown fields, unknown time zones and times that are not `HH:MM`;
/// call [`Calendar::validate`] for the rules that span several fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Calendar {
    /// 24×7: every instant counts, there are no holidays.
    Always,
    /// Only the listed local hours count, except on holidays.
    BusinessHours(BusinessHours),
}

impl Calendar {
    /// Checks the rules deserialization cannot: each day's intervals are non-empty, in order and
    /// disjoint, and the week has some business time. Reports the first broken rule.
    pub fn validate(&self) -> Result<(), CalendarError> {
        match self {
            Calendar::Always => Ok(()),
            Calendar::BusinessHours(business_hours) => business_hours.validate(),
        }
    }
}

/// Business hours: weekly local opening hours in one time zone, minus holidays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BusinessHours {
    /// IANA time zone name, e.g. `Europe/Berlin`. The hours and holidays are read on this
    /// zone's wall clock, daylight saving time included.
    #[serde(with = "time_zone_name")]
    #[cfg_attr(feature = "json-schema", schemars(with = "String"))]
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "Europe/Berlin"))]
    pub time_zone: Tz,
    /// Opening hours per weekday.
    pub hours: WeeklyHours,
    /// Local dates (`YYYY-MM-DD`) with no business time at all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holidays: Vec<NaiveDate>,
}

impl BusinessHours {
    fn validate(&self) -> Result<(), CalendarError> {
        for day in WEEK {
            check_day(day, self.hours.on(day))?;
        }
        if WEEK.iter().all(|day| self.hours.on(*day).is_empty()) {
            return Err(CalendarError::NoBusinessHours);
        }
        Ok(())
    }
}

fn check_day(day: Weekday, intervals: &[Interval]) -> Result<(), CalendarError> {
    let mut previous_end = WallTime::MIDNIGHT;
    for (index, interval) in intervals.iter().enumerate() {
        let Interval { start, end } = *interval;
        if start >= end {
            return Err(CalendarError::EmptyInterval {
                day,
                index,
                start,
                end,
            });
        }
        if start < previous_end {
            return Err(CalendarError::OutOfOrder {
                day,
                index,
                start,
                previous_end,
            });
        }
        previous_end = end;
    }
    Ok(())
}

/// The days of the week, Monday first.
pub(super) const WEEK: [Weekday; 7] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
    Weekday::Sat,
    Weekday::Sun,
];

/// The wire key of a weekday in [`WeeklyHours`]: `mon`, `tue`, …
pub(super) fn weekday_key(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "mon",
        Weekday::Tue => "tue",
        Weekday::Wed => "wed",
        Weekday::Thu => "thu",
        Weekday::Fri => "fri",
        Weekday::Sat => "sat",
        Weekday::Sun => "sun",
    }
}

/// Opening hours for each day of the week. A missing or empty day is closed.
///
/// Intervals are listed in order and do not overlap. An interval ending at `24:00` followed by
/// one starting at `00:00` the next day is one continuous stretch (a night shift).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WeeklyHours {
    /// Monday.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mon: Vec<Interval>,
    /// Tuesday.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tue: Vec<Interval>,
    /// Wednesday.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wed: Vec<Interval>,
    /// Thursday.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thu: Vec<Interval>,
    /// Friday.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fri: Vec<Interval>,
    /// Saturday.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sat: Vec<Interval>,
    /// Sunday.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sun: Vec<Interval>,
}

impl WeeklyHours {
    /// The intervals of one weekday.
    pub fn on(&self, day: Weekday) -> &[Interval] {
        match day {
            Weekday::Mon => &self.mon,
            Weekday::Tue => &self.tue,
            Weekday::Wed => &self.wed,
            Weekday::Thu => &self.thu,
            Weekday::Fri => &self.fri,
            Weekday::Sat => &self.sat,
            Weekday::Sun => &self.sun,
        }
    }

    /// The intervals of one weekday, for building a calendar in code.
    pub fn on_mut(&mut self, day: Weekday) -> &mut Vec<Interval> {
        match day {
            Weekday::Mon => &mut self.mon,
            Weekday::Tue => &mut self.tue,
            Weekday::Wed => &mut self.wed,
            Weekday::Thu => &mut self.thu,
            Weekday::Fri => &mut self.fri,
            Weekday::Sat => &mut self.sat,
            Weekday::Sun => &mut self.sun,
        }
    }
}

/// Local opening hours `[start, end)` on one day, e.g. `{"start": "09:00", "end": "18:00"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Interval {
    /// Opening time, `HH:MM` from `00:00` to `23:59`.
    #[cfg_attr(
        feature = "json-schema",
        schemars(
            with = "String",
            regex(pattern = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$")
        )
    )]
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = String, pattern = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$", example = "09:00")
    )]
    pub start: WallTime,
    /// Closing time, `HH:MM` up to `24:00`; after the start.
    #[cfg_attr(
        feature = "json-schema",
        schemars(
            with = "String",
            regex(pattern = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$")
        )
    )]
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = String, pattern = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$", example = "18:00")
    )]
    pub end: WallTime,
}

/// Serde for [`Tz`] as its IANA name, with an error that names the bad value.
mod time_zone_name {
    use chrono_tz::Tz;
    use serde::{Deserialize, Deserializer, Serializer, de};

    pub(super) fn serialize<S: Serializer>(zone: &Tz, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(zone.name())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Tz, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(|_| {
            de::Error::custom(format!(
                "unknown time zone {name:?}: expected an IANA name such as \"Europe/Berlin\""
            ))
        })
    }
}

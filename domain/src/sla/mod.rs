//! The SLA clock: business calendars and the arithmetic of business time.
//!
//! A target such as "first reply within 4 business hours" only runs while the team works. A
//! [`Calendar`] says when that is; [`add_business_minutes`] turns a start and a target into a
//! due instant; [`business_time_between`] and [`business_minutes_between`] measure how much
//! business time has passed. Everything is pure: instants come in as arguments, nothing reads a
//! clock, and the calendar is plain data that can travel in a command or an event.
//!
//! # What counts as business time
//!
//! An instant is business time when the calendar zone's wall clock shows a date that is not a
//! holiday and a time inside one of that weekday's intervals. Everything else follows:
//!
//! - Counting is in real elapsed time. On a spring-forward day a local 01:00–05:00 holds 180
//!   real minutes, on a fall-back day 300.
//! - A local time skipped by spring-forward never shows, so an interval edge inside the gap
//!   acts as the instant the clock jumps to.
//! - A local time repeated by fall-back shows twice and counts twice: an interval that spans the
//!   repeated hour starts at the earliest occurrence of its start and ends at the latest
//!   occurrence of its end; one that lies inside the repeated hour counts both passes.
//! - `22:00`–`24:00` on Monday followed by `00:00`–`02:00` on Tuesday is one continuous stretch.
//! - A holiday is a whole local date.
//!
//! # Conventions
//!
//! - Adding zero minutes returns the start itself, even outside business hours.
//! - A due instant may be the very end of a business period (Friday 18:00, not Monday 09:00).
//! - Elapsed time is exact ([`chrono::TimeDelta`]); whole minutes are rounded down.
//! - [`add_business_minutes`] looks at most [`HORIZON_DAYS`] (ten years) ahead and reports
//!   [`ClockError::BeyondHorizon`] beyond that, so a calendar made of holidays cannot hang it.
//! - The clock walks business periods day by day, never minute by minute. A calendar that fails
//!   [`Calendar::validate`] still has one meaning (the union of its intervals), but callers
//!   should validate calendars when they accept them.
//!
//! On top of the clock: [`policy`] (which target applies to which ticket, as an event-sourced
//! aggregate with versions) and [`engine`] (a ticket's clocks as metric events: activated,
//! paused, resumed, retargeted, fulfilled, breached, withdrawn). The decisions behind both are
//! in `docs/adr/0008-sla-clock-and-engine.md`.

mod calendar;
mod clock;
pub mod engine;
mod errors;
pub mod histogram;
mod metric;
mod periods;
pub mod policy;
mod wall_time;

pub use calendar::{BusinessHours, Calendar, Interval, WeeklyHours};
pub use clock::{
    HORIZON_DAYS, add_business_minutes, business_minutes_between, business_time_between,
};
pub use engine::{SlaEngineError, SlaEvent, TicketSla};
pub use errors::{CalendarError, ClockError, WallTimeError};
pub use metric::SlaMetric;
pub use policy::{
    AppliesTo, MetricTargets, PolicyRef, PriorityTargets, SlaPolicy, SlaPolicyCommand,
    SlaPolicyCreated, SlaPolicyDefinition, SlaPolicyError, SlaPolicyEvent, SlaPolicyUpdated,
    select_policy,
};
pub use wall_time::WallTime;

#[cfg(test)]
mod tests;

//! The parsed form of a search query: what every backend translates into its own query.
//!
//! The text grammar lives in [`crate::parse`] and `docs/search.md`. By the time a query gets
//! here, everything relative has been resolved: `assignee:me` is the caller's id, `updated<7d`
//! an absolute time range, `status<solved` the set of statuses before `solved`.

use chrono::{DateTime, Utc};
use helpdesk_domain::ticket::{Channel, Priority, Status};

use crate::sla::SlaState;

/// A whole query: every clause must hold (AND).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub clauses: Vec<Clause>,
}

/// One condition, possibly negated (`-tags:spam`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    pub negated: bool,
    pub condition: Condition,
}

/// What a clause asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// A word of free text: matches subject, description, public replies, requester name and
    /// email, and (for staff) internal notes. Case-insensitive; analysed into tokens the same
    /// way the text was.
    Word(String),
    /// An exact phrase in one of the same fields.
    Phrase(String),
    /// The ticket's status is one of these.
    Status(Vec<Status>),
    /// The ticket's priority is one of these.
    Priority(Vec<Priority>),
    /// Assigned to this agent (`None`: unassigned).
    Assignee(Option<String>),
    /// Routed to this group (`None`: no group).
    Group(Option<String>),
    /// Carries this tag.
    Tag(String),
    /// Asked by this customer id.
    RequesterId(String),
    /// Asked by this (lower-cased) email address.
    RequesterEmail(String),
    Channel(Channel),
    /// Created within the range.
    Created(TimeRange),
    /// Last changed within the range.
    Updated(TimeRange),
    /// Solved within the range (tickets never solved, or reopened since, do not match).
    Solved(TimeRange),
    /// The ticket's SLA state is this one (staff only: see [`ParseContext::include_internal`]).
    Sla(SlaState),
}

/// A half-open time range `[from, until)`; either end may be open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    /// Inclusive.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive.
    pub until: Option<DateTime<Utc>>,
}

/// What a query may resolve against: the caller, what the caller may see, and the current
/// time.
#[derive(Debug, Clone)]
pub struct ParseContext {
    /// The caller's id (`assignee:me`).
    pub me: String,
    /// "Now" for relative times (`updated<7d`).
    pub now: DateTime<Utc>,
    /// Whether the caller may see internal information (staff and auditors, as for internal
    /// notes). Without it, staff-only fields (`sla:`) are refused with a parse error.
    pub include_internal: bool,
}

/// A query that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at character {position}: {message}")]
pub struct ParseError {
    /// 0-based offset, in characters, of where the problem starts.
    pub position: usize,
    pub message: String,
}

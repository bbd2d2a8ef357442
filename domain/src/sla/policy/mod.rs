//! SLA policies: which tickets get which targets, counted in which calendar.
//!
//! - `definition`: what an administrator writes (scope, targets per priority, calendar, pause
//!   statuses);
//! - `validate`: the rules on its values, reported as field violations;
//! - `selection`: which policy applies to a ticket, and [`PolicyRef`], the id and version SLA
//!   events cite;
//! - `commands`, `events`, `errors`, `aggregate`: the event-sourced [`SlaPolicy`], where every
//!   change is a new version (the aggregate sequence).
//!
//! What does *not* live here: running the clocks of a ticket (see [`engine`](super::engine)).

mod aggregate;
mod commands;
mod definition;
mod errors;
mod events;
mod selection;
mod validate;

pub use aggregate::SlaPolicy;
pub use commands::SlaPolicyCommand;
pub use definition::{
    AppliesTo, MetricTargets, PriorityTargets, SlaPolicyDefinition, default_pause_statuses,
};
pub use errors::SlaPolicyError;
pub use events::{SlaPolicyCreated, SlaPolicyEvent, SlaPolicyUpdated};
pub use selection::{PolicyRef, select_policy};
pub use validate::MAX_TARGET_MINUTES;

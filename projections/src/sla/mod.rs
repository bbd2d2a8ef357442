//! SLA read side: the policies in force, folded from the event store; the `sla` projection,
//! which decides each ticket event's SLA events and keeps the SLA tables; the breach watcher;
//! and the rebuild, which replays the stored SLA events instead of deciding them again.
//!
//! - [`policies`]: the current version of every policy;
//! - [`model`]: rows, dimensions and report counts as plain data, and how SLA events change
//!   them (pure, shared by every writer);
//! - [`store`]: the SQL of `sla_state`, `sla_metric`, the report counts and of appending
//!   `TicketSla` events;
//! - [`projection`]: the live projection;
//! - [`watcher`]: records breaches that fall due between ticket events;
//! - [`folder`]: folds the report count changes writers append into the report counts;
//! - [`rebuild`]: the SLA read model from the stored events, in one transaction, filled into
//!   copies of the tables (`shadow`) that replace them at commit.
//!
//! The reports that read these tables are in the query API (`query-api/src/sla_reports.rs`).

pub mod folder;
pub mod model;
pub mod policies;
pub mod projection;
pub mod rebuild;
mod shadow;
pub mod store;
pub mod watcher;

pub use folder::{CountFolder, FoldStats};
pub use projection::{BATCH_ENOUGH, NAME, SlaProjection};
pub use watcher::BreachWatcher;

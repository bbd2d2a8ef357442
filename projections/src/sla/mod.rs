//! SLA read side: the policies in force, folded from the event store.

pub mod policies;

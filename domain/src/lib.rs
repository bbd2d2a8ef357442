//! The helpdesk's pure core: the ticket aggregate, its commands and events, and the rules that
//! decide whether a command may happen.
//!
//! Nothing in this crate performs I/O, reads a clock or draws random numbers (invariant 5 in the
//! design brief). Time, ids and the acting user arrive inside the command; the aggregate only
//! decides which events follow from it. Everything here is therefore tested with plain
//! given/when/then tests and no runtime.
//!
//! `access` holds the authorization policy as pure decisions (who may see or do what), so every
//! API consults the same rules.
//!
//! What does *not* live here: HTTP, persistence, token verification, the event envelope on the
//! wire.

pub mod access;
pub mod actor;
pub mod sla;
pub mod ticket;
pub mod validation;

pub use access::{Access, AgentScope, Principal};
pub use actor::{Actor, Role};

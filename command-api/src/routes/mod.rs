//! HTTP routes of the command API. Handlers are thin: extract, build a command, execute, map.

pub mod health;
pub mod requests;
pub mod responses;
pub mod search_admin;
pub mod sla_policies;
pub mod tickets;

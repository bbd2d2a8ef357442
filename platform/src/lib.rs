//! Shared plumbing for every helpdesk process: typed configuration, telemetry, and the
//! connections to Postgres (including creating the database and running migrations) and NATS.
//!
//! No business rules live here; the API crates and the CLI compose these pieces.

pub mod audit;
pub mod auth;
pub mod config;
pub mod db;
pub mod event_log;
pub mod nats;
pub mod overload;
pub mod pipeline;
pub mod problem;
pub mod telemetry;

pub use config::{AuthConfig, Config, ConfigError, RealtimeConfig, SearchConfig, Secret};

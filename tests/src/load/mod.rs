//! The load generator's parts (`helpdesk-load`, issue 9), shared with the other benchmarks.
//!
//! - [`commands`]: the command mix (one open to four follow-ups) and how a command is sent;
//! - [`driver`]: open loop at a rate (latency from the intended send time) and closed loop at
//!   a concurrency; [`record`]: their per-command figures;
//! - [`ws`]: WebSocket clients of the real-time feed and the response → push latency;
//! - [`probe`]: the response → searchable latency;
//! - [`server`]: starting the release `helpdesk up`, tokens, cleanup;
//! - [`process`]: memory and CPU from `/proc`; [`stats`]: percentiles and histograms;
//! - [`jetstream`]: the raw JetStream baseline; [`run`]: one run end to end;
//!   [`report`] and [`section`]: its JSON and Markdown, and the section of
//!   `docs/benchmarks.md` that `bench/perf.sh` rewrites.
//!
//! Nothing here is used by the product; these are tools, and they stop (panic or exit) on
//! set-up failures instead of recovering.

use std::sync::OnceLock;
use std::time::Instant;

pub mod commands;
pub mod driver;
pub mod jetstream;
pub mod probe;
pub mod process;
pub mod record;
pub mod report;
pub mod run;
pub mod section;
pub mod server;
pub mod stats;
pub mod ws;

static BASE: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the first call: one clock for commands, pushes and baselines (call it
/// once at start-up to fix the origin).
pub fn now_ns() -> u64 {
    BASE.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

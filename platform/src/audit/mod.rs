//! Tamper evidence for the event store: re-walking the per-aggregate hash chains, and anchors.
//!
//! Every event row carries `hash = SHA-256(previous hash ‖ canonical text)`, computed by a
//! Postgres trigger when it is appended (migration `20261121000005_event_hash_chain.sql`;
//! the canonical form is documented in docs/audit-hash-chain.md). This module checks a store
//! against those hashes:
//!
//! - [`verify_store`] walks every aggregate in batches (over key ranges on several connections)
//!   and reports the first broken link of each (an edited event, a missing sequence, a
//!   rewritten hash), then checks the latest anchor;
//! - [`verify_aggregate`] does the walk for one aggregate (the HTTP endpoint);
//! - [`write_anchor`] / [`anchor_if_due`] append an `AuditAnchored` event hashing every chain
//!   head, which is what makes a deleted tail (or a deleted aggregate) detectable.
//!
//! The hashes are recomputed by the same SQL function the trigger uses (one definition), from
//! the stored fields of every row, so every payload is re-read; the chain bookkeeping (which
//! link is the first broken one, and why) happens here.

mod anchor;
mod rows;
mod verify;
mod walk;

pub use anchor::{AnchorCheck, WrittenAnchor, anchor_if_due, check_latest_anchor, write_anchor};
pub use verify::{AggregateReport, Progress, StoreReport, verify_aggregate, verify_store};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What is wrong at a broken link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ChainProblem {
    /// The event's stored fields no longer hash to its stored hash, while the next event still
    /// chains from that hash: the event was edited after it was appended.
    HashMismatch,
    /// A sequence of the aggregate is absent: the event was deleted.
    MissingEvent,
    /// The event's stored hash is not the one the next event was chained onto (the hash was
    /// rewritten, or events were replaced or renumbered).
    BrokenChain,
    /// The latest anchor's hash over all chain heads no longer matches: an aggregate lost its
    /// newest events, or disappeared.
    AnchorMismatch,
}

impl ChainProblem {
    /// The stable name printed in reports: `hash-mismatch`, `missing-event`, ….
    pub fn as_str(self) -> &'static str {
        match self {
            ChainProblem::HashMismatch => "hash-mismatch",
            ChainProblem::MissingEvent => "missing-event",
            ChainProblem::BrokenChain => "broken-chain",
            ChainProblem::AnchorMismatch => "anchor-mismatch",
        }
    }
}

impl std::fmt::Display for ChainProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The first broken link of one aggregate's chain (or of the anchor check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    /// The aggregate's type, e.g. `Ticket`.
    pub aggregate_type: String,
    /// The aggregate's id.
    pub aggregate_id: String,
    /// The sequence where the chain breaks (for `anchor-mismatch`, the anchor event's).
    pub sequence: i64,
    /// What is wrong there.
    pub problem: ChainProblem,
    /// A human explanation.
    pub detail: String,
}

impl std::fmt::Display for BrokenLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} sequence {}: {}: {}",
            self.aggregate_type, self.aggregate_id, self.sequence, self.problem, self.detail
        )
    }
}

/// Lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

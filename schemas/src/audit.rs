//! The one event the helpdesk writes outside the domain: `AuditAnchored` v1, a checkpoint of the
//! event store's hash chains (see docs/audit-hash-chain.md).
//!
//! An anchor is stored as aggregate `AuditAnchor`/`anchor` and published like every other
//! event, so a copy outside the database (the stream, an exported feed) can later prove that no
//! aggregate lost its newest events: a deleted tail leaves a shorter chain that is still intact,
//! but it changes the heads the anchor hashed.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The aggregate type of anchors.
pub const ANCHOR_AGGREGATE_TYPE: &str = "AuditAnchor";
/// The aggregate id of anchors (one chain of anchors per store).
pub const ANCHOR_AGGREGATE_ID: &str = "anchor";
/// The event type of an anchor.
pub const ANCHOR_EVENT_TYPE: &str = "AuditAnchored";
/// The version of [`AuditAnchored`].
pub const ANCHOR_EVENT_VERSION: &str = "1";

/// A checkpoint over every chain head: what the store held when the anchor was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AuditAnchored {
    /// The anchor covers exactly the events whose writing transaction id is below this one
    /// (every such transaction had finished when the anchor was written, so that set of events
    /// can no longer grow).
    pub below_tx_id: i64,
    /// The highest global position among the covered events (0 when none).
    pub position: i64,
    /// How many aggregates have covered events.
    pub aggregates: i64,
    /// Lower-case hex SHA-256 over the covered chain heads, one line per aggregate in byte
    /// order of (aggregate_type, aggregate_id): the jsonb text of
    /// `[aggregate_type, aggregate_id, sequence, hex hash]` followed by a newline.
    pub heads_hash: String,
}

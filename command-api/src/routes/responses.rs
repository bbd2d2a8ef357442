//! Response bodies of the command endpoints.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A command was accepted and its events are stored.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CommandAccepted {
    /// The ticket id.
    pub id: String,
    /// The ticket's version after the command; also sent as `ETag: "<version>"`.
    pub version: u64,
    /// Global position of the last event written. Pass it as `min_position` to read endpoints
    /// to wait until they reflect this write.
    pub position: i64,
    /// The new interaction's id (only for `POST …/interactions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interaction_id: Option<String>,
}

/// Health and readiness.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`, or `unavailable` when a dependency is down.
    pub status: String,
    /// Per dependency: `ok` or why not.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub checks: std::collections::BTreeMap<String, String>,
}

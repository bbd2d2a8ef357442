//! The three things an SLA measures, in Zendesk's vocabulary.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What an SLA target measures.
///
/// - `first_reply`: from the ticket's opening to the first public reply by an agent;
/// - `next_reply`: from a public customer reply (after the first reply) to the next public
///   agent reply;
/// - `resolution`: from opening (or reopening) to the ticket becoming `solved`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SlaMetric {
    /// First reply time.
    FirstReply,
    /// Next reply time.
    NextReply,
    /// Resolution time (Zendesk's requester wait time, with our pause statuses).
    Resolution,
}

impl SlaMetric {
    /// Every metric, in the order the engine reports them.
    pub const ALL: [SlaMetric; 3] = [
        SlaMetric::FirstReply,
        SlaMetric::NextReply,
        SlaMetric::Resolution,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            SlaMetric::FirstReply => "first_reply",
            SlaMetric::NextReply => "next_reply",
            SlaMetric::Resolution => "resolution",
        }
    }
}

impl fmt::Display for SlaMetric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

//! Request bodies of the command endpoints. Unknown fields are rejected (422), so a typo never
//! silently does nothing. The rules on each field are enforced by the ticket aggregate and
//! listed in the API guide (`docs/api-guide.md`).

use helpdesk_domain::ticket::{Channel, Priority, Status, Visibility};
use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;

/// Open a ticket.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenTicketRequest {
    /// One line, 1–200 characters after trimming, no control characters.
    #[schema(example = "Printer on fire")]
    pub subject: String,
    /// At most 64 KiB of UTF-8; no control characters other than newline and tab (CRLF is
    /// stored as LF).
    #[serde(default)]
    pub description: String,
    /// Defaults to `normal`.
    #[serde(default = "default_priority")]
    pub priority: Priority,
    /// Defaults to `api`.
    #[serde(default = "default_channel")]
    pub channel: Channel,
    /// The customer asking for help. Customers may omit it (they are the requester) and may
    /// not name anyone else; staff must give it.
    #[serde(default)]
    pub requester: Option<RequesterRequest>,
    /// Lowercase `[a-z0-9_-]{1,50}`, at most 50; duplicates are dropped.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Group to route the ticket to (1–100 characters).
    #[serde(default)]
    pub group: Option<String>,
}

fn default_priority() -> Priority {
    Priority::Normal
}

fn default_channel() -> Channel {
    Channel::Api
}

/// The customer asking for help.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequesterRequest {
    /// Stable customer id, 1–100 characters.
    pub customer_id: String,
    /// Display name, at most 200 characters.
    #[serde(default)]
    pub name: Option<String>,
    /// Contact address.
    #[serde(default)]
    pub email: Option<String>,
}

/// Change the status.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeStatusRequest {
    /// The new status. Allowed moves: `new` → `open`, `pending`, `on_hold` or `solved`;
    /// freely between `open`, `pending` and `on_hold`; any of those → `solved`; `solved` →
    /// `open` (reopen) or `closed`. `closed` is final. The current status is rejected.
    pub status: Status,
}

/// Change the priority.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePriorityRequest {
    /// The new priority; the current one is rejected.
    pub priority: Priority,
}

/// Assign or unassign. Per field: absent leaves it, `null` unassigns, a string assigns.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignRequest {
    /// Agent id (1–100 characters) or `null`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    pub assignee: Option<Option<String>>,
    /// Group id (1–100 characters) or `null`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    pub group: Option<Option<String>>,
}

/// Distinguishes an absent field (`None`, via `default`) from an explicit `null`
/// (`Some(None)`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Add and/or remove tags. Tags already present (added) or absent (removed) are ignored; a
/// request that changes nothing is rejected; a ticket holds at most 50 tags.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeTagsRequest {
    /// Tags to add, lowercase `[a-z0-9_-]{1,50}`.
    #[serde(default)]
    pub add: Vec<String>,
    /// Tags to remove.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// Add a reply or an internal note, written by the caller.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddInteractionRequest {
    /// 1 byte to 64 KiB, not blank, no control characters other than newline and tab.
    pub body: String,
    /// `public` (default) or `internal`; only agents may write internal notes.
    #[serde(default = "default_visibility")]
    pub visibility: Visibility,
}

fn default_visibility() -> Visibility {
    Visibility::Public
}

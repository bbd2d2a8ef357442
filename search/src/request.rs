//! A search as the backends receive it, and what they answer.

use std::collections::HashMap;

use crate::document::{TicketDocument, priority_rank, status_rank};
use crate::query::Query;

/// Facets counted on every search: the document field each is counted over.
pub const FACETS: [&str; 6] = ["status", "priority", "assignee", "group", "tags", "channel"];
/// Buckets returned per facet (the most frequent first).
pub const FACET_SIZE: usize = 50;
/// Bucket value of tickets without an assignee or group.
pub const NONE_BUCKET: &str = "none";

/// Which tickets the caller may see at all; applied before the query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every ticket (staff with full scope, auditors).
    All,
    /// Only this customer's tickets.
    Customer(String),
    /// Tickets of these groups, and tickets without a group (agents scoped to their groups).
    Groups(Vec<String>),
}

/// The field results are ordered by. Ties are broken by `opened_position`, ascending, so the
/// order is total and stable across pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SortField {
    UpdatedAt,
    CreatedAt,
    Priority,
    Status,
}

/// An order: a field and a direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sort {
    pub field: SortField,
    pub descending: bool,
}

impl Default for Sort {
    /// Most recently changed first.
    fn default() -> Self {
        Sort {
            field: SortField::UpdatedAt,
            descending: true,
        }
    }
}

impl Sort {
    /// Parses `updated_at`, `-updated_at`, `created_at`, `priority`, `status` (a leading `-`
    /// means descending).
    pub fn parse(raw: &str) -> Option<Sort> {
        let (descending, name) = match raw.strip_prefix('-') {
            Some(name) => (true, name),
            None => (false, raw),
        };
        let field = match name {
            "updated_at" => SortField::UpdatedAt,
            "created_at" => SortField::CreatedAt,
            "priority" => SortField::Priority,
            "status" => SortField::Status,
            _ => return None,
        };
        Some(Sort { field, descending })
    }

    /// The wire form (`-updated_at`).
    pub fn as_string(&self) -> String {
        let name = match self.field {
            SortField::UpdatedAt => "updated_at",
            SortField::CreatedAt => "created_at",
            SortField::Priority => "priority",
            SortField::Status => "status",
        };
        if self.descending {
            format!("-{name}")
        } else {
            name.to_owned()
        }
    }

    /// The indexed numeric field that holds the sort key.
    pub fn key_field(&self) -> &'static str {
        match self.field {
            SortField::UpdatedAt => "updated_us",
            SortField::CreatedAt => "created_us",
            SortField::Priority => "priority_rank",
            SortField::Status => "status_rank",
        }
    }

    /// A document's sort key.
    pub fn key_of(&self, document: &TicketDocument) -> i64 {
        match self.field {
            SortField::UpdatedAt => document.updated_at.timestamp_micros(),
            SortField::CreatedAt => document.created_at.timestamp_micros(),
            SortField::Priority => priority_rank(document.priority) as i64,
            SortField::Status => status_rank(document.status) as i64,
        }
    }

    /// The cursor that continues after `document`.
    pub fn cursor_after(&self, document: &TicketDocument) -> Cursor {
        Cursor {
            key: self.key_of(document),
            tie: document.opened_position,
        }
    }
}

/// Where the previous page ended: the last hit's sort key and tie-breaker (`search_after`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub key: i64,
    pub tie: i64,
}

impl Cursor {
    /// The opaque wire form, bound to the sort it was made for.
    pub fn encode(&self, sort: &Sort) -> String {
        format!("{}~{}~{}", sort.as_string(), self.key, self.tie)
    }

    /// Reads a cursor made by [`Cursor::encode`] for the same sort.
    pub fn decode(raw: &str, sort: &Sort) -> Result<Cursor, String> {
        let mut parts = raw.split('~');
        let (Some(made_for), Some(key), Some(tie), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("not a cursor this API returned".into());
        };
        if made_for != sort.as_string() {
            return Err(format!(
                "the cursor was made for sort={made_for}; repeat that sort or start over"
            ));
        }
        match (key.parse(), tie.parse()) {
            (Ok(key), Ok(tie)) => Ok(Cursor { key, tie }),
            _ => Err("not a cursor this API returned".into()),
        }
    }
}

/// A search.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub query: Query,
    pub scope: Scope,
    /// Whether internal-note text may match free text (staff and auditors only).
    pub include_internal: bool,
    pub sort: Sort,
    /// Continue after this hit.
    pub after: Option<Cursor>,
    /// Hits per page (1..=100 at the API).
    pub limit: usize,
}

/// One facet value and how many matching tickets carry it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct FacetCount {
    pub value: String,
    pub count: u64,
}

/// A page of results.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchResults {
    pub hits: Vec<TicketDocument>,
    /// Every ticket that matches, on all pages.
    pub total: u64,
    /// Per facet (see [`FACETS`]): counts over all matching tickets, most frequent first,
    /// then by value.
    pub facets: HashMap<String, Vec<FacetCount>>,
    /// Present when there may be more hits.
    pub next: Option<Cursor>,
}

/// Orders facet buckets: most frequent first, then by value; keeps [`FACET_SIZE`].
pub fn order_buckets(mut buckets: Vec<FacetCount>) -> Vec<FacetCount> {
    buckets.retain(|bucket| bucket.count > 0);
    buckets.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
    buckets.truncate(FACET_SIZE);
    buckets
}

//! Ticket search.
//!
//! - [`document`]: the one document per ticket, folded from its events;
//! - [`sla`]: the document's SLA part, folded from the ticket's `TicketSla` events, and the
//!   state `sla:` searches (`breached`, `active`, `paused`);
//! - [`query`] and [`parse`]: the agent query language (`status<solved tags:vip "refund"`);
//! - [`request`]: a search (query, visibility scope, sort, `search_after` cursor) and its page
//!   of hits with facet counts;
//! - [`backend`]: the trait both backends implement: [`tantivy_backend`] (embedded, the
//!   default) and [`elastic`] (a cluster, when `ELASTICSEARCH_URL` is set);
//! - [`conformance`]: the scenarios every backend must answer identically.

pub mod backend;
pub mod conformance;
pub mod document;

pub mod query;
pub mod request;
pub mod sla;
pub mod tantivy_backend;

pub use backend::{BackendError, SearchBackend};
pub use document::TicketDocument;
pub use query::{Clause, Condition, ParseContext, ParseError, Query, TimeRange};
pub use request::{Cursor, FacetCount, Scope, SearchRequest, SearchResults, Sort, SortField};
pub use sla::SlaState;

pub mod elastic;
pub mod parse;
pub mod projection;
pub mod rebuild;

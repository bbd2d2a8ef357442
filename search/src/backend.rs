//! The interface both search backends implement.

use std::collections::HashMap;

use async_trait::async_trait;

use crate::document::TicketDocument;
use crate::request::{SearchRequest, SearchResults};

/// Why a backend call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The backend cannot be reached or is overloaded: try again later.
    #[error("search backend unavailable: {0}")]
    Unavailable(String),
    /// The backend refused the request: a bug or a mapping problem, not worth retrying.
    #[error("search backend refused the request: {0}")]
    Rejected(String),
}

/// A search index of ticket documents.
///
/// Writes are versioned by [`TicketDocument::version`] (the ticket's and its SLA events
/// folded in): writing a document whose stored version is already at least as high changes
/// nothing, so replays, redeliveries and a rebuild running beside the live projector never move
/// a document backwards.
#[async_trait]
pub trait SearchBackend: Send + Sync + 'static {
    /// `tantivy` or `elasticsearch`.
    fn kind(&self) -> &'static str;

    /// The stored documents with these ids, as of the last completed write.
    async fn get(&self, ids: &[String]) -> Result<HashMap<String, TicketDocument>, BackendError>;

    /// Stores the documents durably; when it returns they are visible to [`search`]. `checkpoint`
    /// (the highest global position the batch reflects) is recorded with them where the backend
    /// can do so atomically.
    ///
    /// [`search`]: SearchBackend::search
    async fn write(
        &self,
        documents: Vec<TicketDocument>,
        checkpoint: Option<i64>,
    ) -> Result<(), BackendError>;

    /// The version (`last_sequence`) of ticket `id` that searches see now: for a backend whose
    /// reads are fresher than its searches (Elasticsearch's realtime get sees documents before
    /// the refresh that makes them searchable), the searchable one. What `min_position` waits on.
    async fn searchable_version(&self, id: &str) -> Result<Option<i64>, BackendError> {
        Ok(self
            .get(&[id.to_owned()])
            .await?
            .get(id)
            .map(|document| document.last_sequence))
    }

    /// Runs a search.
    async fn search(&self, request: &SearchRequest) -> Result<SearchResults, BackendError>;

    /// Removes every document.
    async fn clear(&self) -> Result<(), BackendError>;
}

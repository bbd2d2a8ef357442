//! Choosing the backend from configuration, and rebuilding the index without downtime.
//!
//! A rebuild replays the event store into a new generation (a new tantivy directory, a new
//! Elasticsearch physical index) while the serving one keeps answering, then switches:
//!
//! 1. replay everything into the new generation, ticket by ticket, up to a cut of the store
//!    (the long part; searches are unaffected);
//! 2. pause the live projector between two writes (when it runs in this process), replay what
//!    was committed meanwhile, and promote the new generation (directory swap / alias swap);
//! 3. replay once more what committed between that catch-up and the switch (only needed when
//!    the live projector runs in another process and could not be paused).
//!
//! Documents are versioned by the events folded into them (ticket and `TicketSla` sequences),
//! so the replays and the live projector never move a document backwards, whichever writes
//! first.

use std::sync::Arc;

use helpdesk_platform::SearchConfig;
use helpdesk_projections::ProjectionError;
use sqlx::PgPool;

use crate::backend::{BackendError, SearchBackend};
use crate::elastic::ElasticBackend;
use crate::projection::{SearchProjection, replay, replay_by_ticket};
use crate::tantivy_backend::TantivyBackend;

/// The configured search index.
#[derive(Debug, Clone)]
pub enum SearchIndex {
    Tantivy(Arc<TantivyBackend>),
    Elastic(Arc<ElasticBackend>),
}

impl SearchIndex {
    /// Elasticsearch when `ELASTICSEARCH_URL` is set, else tantivy under `SEARCH_INDEX_DIR`.
    pub async fn open(config: &SearchConfig, prefix: &str) -> Result<SearchIndex, BackendError> {
        match &config.elasticsearch_url {
            Some(url) => Ok(SearchIndex::Elastic(Arc::new(
                ElasticBackend::connect(url, prefix).await?,
            ))),
            None => {
                let dir = config.index_dir.clone();
                let backend = tokio::task::spawn_blocking(move || TantivyBackend::open(dir))
                    .await
                    .map_err(|e| BackendError::Unavailable(e.to_string()))??;
                Ok(SearchIndex::Tantivy(Arc::new(backend)))
            }
        }
    }

    /// The serving index as a backend.
    pub fn backend(&self) -> Arc<dyn SearchBackend> {
        match self {
            SearchIndex::Tantivy(backend) => backend.clone(),
            SearchIndex::Elastic(backend) => backend.clone(),
        }
    }
}

/// A generation being built.
enum Next {
    Tantivy(TantivyBackend),
    Elastic(ElasticBackend),
}

impl Next {
    fn backend(&self) -> &dyn SearchBackend {
        match self {
            Next::Tantivy(backend) => backend,
            Next::Elastic(backend) => backend,
        }
    }
}

/// Where a rebuild stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebuildStep {
    /// Events replayed into the new generation so far.
    Replayed(u64),
    /// The new generation serves.
    Promoted,
}

/// Rebuilds `index` from the event store without interrupting searches. `live` is the
/// projector of this process, paused for the final catch-up and switch; `None` when it runs
/// elsewhere (or not at all). Returns the number of events replayed.
pub async fn rebuild(
    pool: &PgPool,
    index: &SearchIndex,
    live: Option<&SearchProjection>,
    mut report: impl FnMut(RebuildStep) + Send,
) -> Result<u64, ProjectionError> {
    let next = match index {
        SearchIndex::Tantivy(serving) => {
            let serving = serving.clone();
            Next::Tantivy(
                tokio::task::spawn_blocking(move || serving.new_generation())
                    .await
                    .map_err(|e| ProjectionError::Unavailable(e.to_string()))?
                    .map_err(unavailable)?,
            )
        }
        SearchIndex::Elastic(serving) => {
            Next::Elastic(serving.new_generation().await.map_err(unavailable)?)
        }
    };
    let (cursor, replayed) = replay_by_ticket(pool, next.backend(), |done| {
        report(RebuildStep::Replayed(done))
    })
    .await?;
    let (pool_for_switch, index_for_switch) = (pool.clone(), index.clone());
    let switch = async move {
        let (cursor, caught_up) = replay(&pool_for_switch, next.backend(), cursor, |_| {}).await?;
        promote(&index_for_switch, next).await?;
        Ok::<_, ProjectionError>((cursor, caught_up))
    };
    let (cursor, caught_up) = match live {
        Some(projection) => projection.exclusive(switch).await.map_err(unavailable)??,
        None => switch.await?,
    };
    // Whatever another process's projector wrote to the old generation during the switch.
    let (_, after_switch) = replay(pool, index.backend().as_ref(), cursor, |_| {}).await?;
    report(RebuildStep::Promoted);
    Ok(replayed + caught_up + after_switch)
}

async fn promote(index: &SearchIndex, next: Next) -> Result<(), ProjectionError> {
    match (index, next) {
        (SearchIndex::Tantivy(serving), Next::Tantivy(next)) => {
            let serving = serving.clone();
            tokio::task::spawn_blocking(move || serving.promote(next))
                .await
                .map_err(|e| ProjectionError::Unavailable(e.to_string()))?
                .map_err(unavailable)
        }
        (SearchIndex::Elastic(serving), Next::Elastic(next)) => {
            serving.promote(&next).await.map_err(unavailable)
        }
        _ => Err(ProjectionError::Permanent(
            "the new generation is of another backend".into(),
        )),
    }
}

fn unavailable(error: BackendError) -> ProjectionError {
    match error {
        BackendError::Unavailable(reason) => ProjectionError::Unavailable(reason),
        BackendError::Rejected(reason) => ProjectionError::Permanent(reason),
    }
}

/// What a rebuild in this process is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RebuildState {
    /// No rebuild running (one may have finished).
    Idle,
    Running,
    /// The last rebuild failed; the previous generation still serves.
    Failed,
}

/// The state of the search index and of its latest rebuild.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct RebuildStatus {
    pub state: RebuildState,
    /// `tantivy` or `elasticsearch`.
    pub backend: String,
    /// The serving generation (`tickets_v<N>`), when known.
    pub generation: Option<u64>,
    /// Events replayed by the running or latest rebuild.
    pub replayed: u64,
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Why the latest rebuild failed.
    pub error: Option<String>,
}

/// Starts and reports rebuilds of the index this process serves, with its live projector
/// paused only for the final switch.
#[derive(Debug, Clone)]
pub struct SearchAdmin {
    pool: PgPool,
    index: SearchIndex,
    projection: SearchProjection,
    status: Arc<std::sync::Mutex<RebuildStatus>>,
}

/// A rebuild is already running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a rebuild of the search index is already running")]
pub struct AlreadyRunning;

impl SearchAdmin {
    /// Rebuilds of `index`, fed live by `projection`.
    pub fn new(pool: PgPool, index: SearchIndex, projection: SearchProjection) -> Self {
        let backend = index.backend().kind().to_owned();
        SearchAdmin {
            pool,
            index,
            projection,
            status: Arc::new(std::sync::Mutex::new(RebuildStatus {
                state: RebuildState::Idle,
                backend,
                generation: None,
                replayed: 0,
                started_at: None,
                finished_at: None,
                error: None,
            })),
        }
    }

    /// The current state, with the serving generation.
    pub async fn status(&self) -> RebuildStatus {
        let generation = match &self.index {
            SearchIndex::Tantivy(backend) => backend.generation_number().ok(),
            SearchIndex::Elastic(backend) => backend.serving_generation().await.ok().flatten(),
        };
        let mut status = self.snapshot();
        status.generation = generation;
        status
    }

    fn snapshot(&self) -> RebuildStatus {
        match self.status.lock() {
            Ok(status) => status.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn update(&self, change: impl FnOnce(&mut RebuildStatus)) {
        match self.status.lock() {
            Ok(mut status) => change(&mut status),
            Err(poisoned) => change(&mut poisoned.into_inner()),
        }
    }

    /// Starts a rebuild in the background, unless one is running.
    pub fn start(&self) -> Result<(), AlreadyRunning> {
        {
            let mut status = self.status.lock().map_err(|_| AlreadyRunning)?;
            if status.state == RebuildState::Running {
                return Err(AlreadyRunning);
            }
            status.state = RebuildState::Running;
            status.replayed = 0;
            status.started_at = Some(chrono::Utc::now());
            status.finished_at = None;
            status.error = None;
        }
        let admin = self.clone();
        tokio::spawn(async move {
            let progress = admin.clone();
            let outcome = rebuild(
                &admin.pool,
                &admin.index,
                Some(&admin.projection),
                move |step| {
                    if let RebuildStep::Replayed(done) = step {
                        progress.update(|status| status.replayed = done);
                    }
                },
            )
            .await;
            admin.update(|status| {
                status.finished_at = Some(chrono::Utc::now());
                match outcome {
                    Ok(replayed) => {
                        status.state = RebuildState::Idle;
                        status.replayed = replayed;
                    }
                    Err(error) => {
                        tracing::error!(%error, "search rebuild failed");
                        status.state = RebuildState::Failed;
                        status.error = Some(error.to_string());
                    }
                }
            });
        });
        Ok(())
    }
}

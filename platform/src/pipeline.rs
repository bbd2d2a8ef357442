//! The state of the event pipeline as operators see it: per projection, how far it got, how
//! much waits, and how many events it gave up on. Served at `GET /api/v1/projections` and as
//! gauges at `/metrics`, both from this one function.

use std::collections::HashMap;

use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::ToSchema;

/// Where the pipeline is: the NATS connection and prefix, and the projections it runs.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub nats: async_nats::Client,
    pub prefix: String,
    pub projections: Vec<String>,
}

/// One projection's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProjectionStatus {
    /// The projection's name.
    pub name: String,
    /// Highest global position it has applied (0 before the first event).
    pub last_position: i64,
    /// Events in the stream it has not acknowledged yet (pending + in flight); `null` when
    /// its consumer does not exist yet or NATS is unreachable.
    pub pending: Option<u64>,
    /// Events parked in its dead-letter subject; `null` when NATS is unreachable.
    pub dead_letters: Option<u64>,
}

impl Pipeline {
    /// The status of every projection. Database errors fail the call; NATS problems show as
    /// unknown (`None`) values, because this is what operators look at when NATS is down.
    pub async fn status(&self, pool: &PgPool) -> Result<Vec<ProjectionStatus>, sqlx::Error> {
        let positions: HashMap<String, i64> = sqlx::query_as::<_, (String, i64)>(
            "SELECT name, last_position FROM projection_checkpoint",
        )
        .fetch_all(pool)
        .await?
        .into_iter()
        .collect();
        let js = async_nats::jetstream::new(self.nats.clone());
        let dead_letters = self.dead_letter_counts(&js).await;
        let mut statuses = Vec::new();
        for name in &self.projections {
            statuses.push(ProjectionStatus {
                name: name.clone(),
                last_position: positions.get(name).copied().unwrap_or(0),
                pending: self.pending(&js, name).await,
                dead_letters: dead_letters.as_ref().map(|counts| {
                    let subject = crate::nats::dead_letter_subject(&self.prefix, name);
                    counts.get(&subject).copied().unwrap_or(0)
                }),
            });
        }
        Ok(statuses)
    }

    async fn pending(&self, js: &async_nats::jetstream::Context, name: &str) -> Option<u64> {
        let stream = js
            .get_stream(helpdesk_schemas::events_stream_name(&self.prefix))
            .await
            .ok()?;
        let info = stream
            .consumer_info(crate::nats::consumer_name(name))
            .await
            .ok()?;
        Some(info.num_pending + info.num_ack_pending as u64)
    }

    async fn dead_letter_counts(
        &self,
        js: &async_nats::jetstream::Context,
    ) -> Option<HashMap<String, u64>> {
        let Ok(stream) = js
            .get_stream(format!("{}_DLQ", self.prefix.to_uppercase()))
            .await
        else {
            // No dead-letter stream yet: nothing was ever dead-lettered, if NATS answers.
            return js.query_account().await.ok().map(|_| HashMap::new());
        };
        let subjects = stream
            .info_with_subjects(format!("{}.dlq.>", self.prefix))
            .await
            .ok()?;
        subjects
            .map_ok(|(subject, count)| (subject, count as u64))
            .try_collect()
            .await
            .ok()
    }
}

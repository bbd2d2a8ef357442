//! The relay: streams every committed event, in order and without gaps, into JetStream
//! (invariant 2).
//!
//! One relay per database is active: leadership is a Postgres advisory lock held on a dedicated
//! connection; a second relay waits for it and takes over when the first one's connection dies.
//! The leader reads batches after its `(tx_id, global_position)` cursor (see
//! `helpdesk_platform::event_log`),
//! publishes each event with `Nats-Msg-Id = <aggregate_type>:<aggregate_id>:<sequence>`,
//! awaits the acks in order, and only then moves the cursor. A crash anywhere means
//! re-publishing, which the stream's duplicate window drops: nothing is skipped, nothing is
//! doubled.
//!
//! It wakes at once when this process commits (a `Notify` fired by the command executor) and
//! polls as a backstop for writes from other processes. When committed events wait behind an
//! older transaction (one that has not committed: the read stops below the oldest running
//! one), nothing wakes it when that transaction ends, so it looks again after 2 ms, 4 ms, …
//! every 50 ms at most.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, message::PublishMessage};
use sqlx::{PgConnection, PgPool};
use tokio::sync::Notify;

use helpdesk_platform::event_log::{self as batch, Cursor, Pending};

use crate::metrics::Metrics;

/// Base of the advisory lock key that elects the relay leader (per database and prefix).
const LEADER_LOCK_BASE: i64 = 0x6865_6c70_6465_736b; // "helpdesk"
/// How often the lag is counted at most (with nothing after the cursor it is 0, not counted).
const LAG_EVERY: Duration = Duration::from_secs(1);
/// The first look again after a read found committed events held back by an older
/// transaction; each further one waits twice as long, up to `HELD_BACK_LAST_RETRY` (or the
/// poll interval when that is shorter): two small queries 20 times a second while a long
/// transaction lasts, and its events out at most 50 ms after it ends.
const HELD_BACK_FIRST_RETRY: Duration = Duration::from_millis(2);
const HELD_BACK_LAST_RETRY: Duration = Duration::from_millis(50);
/// The shortest time from the start of one round to the start of the next. Woken by every
/// commit, a relay that keeps up would otherwise read, publish and checkpoint one or two
/// events at a time, three or four round trips each; waiting out the rest of this gathers
/// what commits meanwhile into one batch, for at most this much more latency.
const MIN_ROUND: Duration = Duration::from_millis(5);
/// Pause after a failure before trying again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// How the relay runs.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// `HELPDESK_NATS_PREFIX`.
    pub prefix: String,
    /// Backstop poll interval (`HELPDESK_RELAY_POLL_MS`).
    pub poll_interval: Duration,
    /// Most events read and published per round trip.
    pub batch_size: i64,
}

/// Why the relay stopped leading for a moment.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("JetStream: {0}")]
    JetStream(String),
}

/// The relay task.
pub struct Relay {
    pool: PgPool,
    jetstream: jetstream::Context,
    settings: RelaySettings,
    wakeup: Arc<Notify>,
    metrics: Arc<Metrics>,
}

impl Relay {
    /// Wires a relay.
    pub fn new(
        pool: PgPool,
        nats: async_nats::Client,
        settings: RelaySettings,
        wakeup: Arc<Notify>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Relay {
            pool,
            jetstream: jetstream::new(nats),
            settings,
            wakeup,
            metrics,
        }
    }

    /// Runs forever: wins leadership, relays, and after any failure starts over from the
    /// stored checkpoint.
    pub async fn run(self) {
        loop {
            let mut lock = match self.become_leader().await {
                Ok(lock) => lock,
                Err(error) => {
                    tracing::warn!(%error, "relay could not contend for leadership");
                    tokio::time::sleep(RETRY_AFTER).await;
                    continue;
                }
            };
            tracing::info!("relay is the leader");
            if let Err(error) = self.lead(&mut lock).await {
                tracing::warn!(%error, "relay failed; resuming from the checkpoint");
            }
            tokio::time::sleep(RETRY_AFTER).await;
        }
    }

    /// Waits until this relay holds the leader lock, on a connection of its own.
    async fn become_leader(&self) -> Result<PgConnection, RelayError> {
        let mut connection = self.pool.acquire().await?.detach();
        loop {
            // One leader per (database, prefix): hashtext is stable across servers.
            let won: bool =
                sqlx::query_scalar("SELECT pg_try_advisory_lock($1 # hashtext($2)::bigint)")
                    .bind(LEADER_LOCK_BASE)
                    .bind(&self.settings.prefix)
                    .fetch_one(&mut connection)
                    .await?;
            if won {
                return Ok(connection);
            }
            tokio::time::sleep(self.settings.poll_interval).await;
        }
    }

    async fn lead(&self, lock: &mut PgConnection) -> Result<(), RelayError> {
        self.ensure_stream().await?;
        let checkpoint = format!("jetstream:{}", self.settings.prefix);
        let mut cursor = batch::load_checkpoint(&mut *lock, &checkpoint).await?;
        let mut lag_measured = Instant::now();
        let mut held_back_retry: Option<Duration> = None;
        let mut round_started = Instant::now();
        loop {
            tokio::time::sleep_until((round_started + MIN_ROUND).into()).await;
            round_started = Instant::now();
            // Every query of a round goes through the lock's own connection: no pool
            // acquisition (and no round trip testing the connection when it goes back), and
            // a read that succeeds is also the proof of leadership, the lock dying with its
            // connection.
            let pending = batch::next_batch(&mut *lock, cursor, self.settings.batch_size).await?;
            let Some(last) = pending.last().map(|p| p.cursor) else {
                // Committed events that the read did not return wait behind an older
                // transaction still running; its commit wakes nobody, so look again soon
                // (sooner than the poll, backing off while it lasts). Asked with one index
                // probe: a relay that keeps up asks after most of its reads.
                let held_back = match batch::any_after(&mut *lock, cursor).await {
                    Ok(held_back) => held_back,
                    Err(error) => {
                        tracing::debug!(%error, "could not look for held-back events");
                        false
                    }
                };
                if held_back {
                    self.measure_lag(cursor, &mut lag_measured).await;
                } else {
                    self.metrics.relay_lag(0);
                }
                held_back_retry = held_back.then(|| {
                    held_back_retry
                        .map_or(HELD_BACK_FIRST_RETRY, |retry| retry * 2)
                        .min(HELD_BACK_LAST_RETRY)
                        .min(self.settings.poll_interval)
                });
                self.wait_for_work(held_back_retry).await;
                continue;
            };
            held_back_retry = None;
            self.publish(&pending).await?;
            batch::save_checkpoint(&mut *lock, &checkpoint, last).await?;
            cursor = last;
            self.metrics
                .relay_published(pending.len() as u64, last.position);
            self.measure_lag(cursor, &mut lag_measured).await;
        }
    }

    async fn ensure_stream(&self) -> Result<(), RelayError> {
        helpdesk_platform::nats::ensure_events_stream(&self.jetstream, &self.settings.prefix)
            .await
            .map(|_| ())
            .map_err(RelayError::JetStream)
    }

    /// Publishes the batch, pipelined, and waits for every ack in order.
    async fn publish(&self, pending: &[Pending]) -> Result<(), RelayError> {
        let mut acks = Vec::with_capacity(pending.len());
        for event in pending {
            let envelope = &event.envelope;
            let payload =
                serde_json::to_vec(envelope).map_err(|e| RelayError::JetStream(e.to_string()))?;
            let message = PublishMessage::build()
                .payload(payload.into())
                .message_id(envelope.message_id());
            let ack = self
                .jetstream
                .send_publish(envelope.subject(&self.settings.prefix), message)
                .await
                .map_err(|e| RelayError::JetStream(e.to_string()))?;
            acks.push(ack);
        }
        for ack in acks {
            ack.await
                .map_err(|e| RelayError::JetStream(e.to_string()))?;
        }
        Ok(())
    }

    /// Waits for a commit of this process, or `retry`, or else the poll interval.
    async fn wait_for_work(&self, retry: Option<Duration>) {
        let poll = retry.unwrap_or(self.settings.poll_interval);
        tokio::select! {
            () = self.wakeup.notified() => {}
            () = tokio::time::sleep(poll) => {}
        }
    }

    /// Measures and reports the events committed after `cursor`, unless it did less than
    /// [`LAG_EVERY`] ago (`measured`): it is a count query.
    async fn measure_lag(&self, cursor: Cursor, measured: &mut Instant) {
        if measured.elapsed() < LAG_EVERY {
            return;
        }
        *measured = Instant::now();
        match batch::lag(&self.pool, cursor).await {
            Ok(lag) => self.metrics.relay_lag(lag),
            Err(error) => tracing::debug!(%error, "could not measure relay lag"),
        }
    }
}

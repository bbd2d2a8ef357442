//! The search probe: some opened tickets carry a word in their subject that no other ticket
//! has; right after the open is answered the probe searches for that word until the ticket is
//! found, which gives the lag from a command's response to its ticket being findable.
//!
//! The first search passes the command's `position` as `min_position`, so the server holds the
//! request until its index has the ticket (at most 5 s, then `503`, and the probe asks again):
//! no polling load, and the lag is measured to within one search's duration. A search that
//! comes back without the ticket (it must not) is repeated every 10 ms and counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::commands::{Api, Failure};
use super::now_ns;
use super::stats::{Histogram, Latency};

/// How long a probe looks before it gives up.
const PATIENCE: Duration = Duration::from_secs(30);

/// Probes in flight and their results.
pub struct Prober {
    api: Arc<Api>,
    /// Every how many opens one is probed (0: none).
    every: u64,
    lags: Mutex<Histogram>,
    started: AtomicU64,
    not_found: AtomicU64,
    empty_answers: AtomicU64,
    failed_searches: AtomicU64,
    tasks: Mutex<tokio::task::JoinSet<()>>,
}

/// The probe's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeReport {
    /// The share of opens probed.
    pub fraction: f64,
    pub probes: u64,
    /// Command response → the first search answer that holds the ticket.
    pub latency: Latency,
    /// Not found within 30 s.
    pub not_found: u64,
    /// Searches (with `min_position`) that answered without the ticket.
    pub empty_answers: u64,
    /// Searches that failed (other than `503 not-yet-consistent`).
    pub failed_searches: u64,
}

impl Prober {
    /// Probes `fraction` (0–1) of the opens, searching through `api`.
    pub fn new(api: Arc<Api>, fraction: f64) -> Prober {
        let every = if fraction > 0.0 {
            (1.0 / fraction.min(1.0)).round().max(1.0) as u64
        } else {
            0
        };
        Prober {
            api,
            every,
            lags: Mutex::default(),
            started: AtomicU64::new(0),
            not_found: AtomicU64::new(0),
            empty_answers: AtomicU64::new(0),
            failed_searches: AtomicU64::new(0),
            tasks: Mutex::default(),
        }
    }

    /// The unique word for ticket `serial`, when that ticket is probed.
    pub fn word_for(&self, serial: u64) -> Option<String> {
        if self.every == 0 || !serial.is_multiple_of(self.every) {
            return None;
        }
        let unique = uuid::Uuid::new_v4().simple().to_string();
        Some(format!("probe{}", &unique[..16]))
    }

    /// Starts looking for `word`, whose open answered at `answered` with `position`.
    pub fn start(self: &Arc<Self>, word: String, position: i64, answered: u64) {
        self.started.fetch_add(1, Ordering::Relaxed);
        let prober = self.clone();
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        while tasks.try_join_next().is_some() {}
        tasks.spawn(async move { prober.look_for(word, position, answered).await });
    }

    async fn look_for(&self, word: String, position: i64, answered: u64) {
        let deadline = answered + PATIENCE.as_nanos() as u64;
        loop {
            match self.api.search_total(&word, Some(position)).await {
                Ok(total) if total > 0 => {
                    let lag = now_ns().saturating_sub(answered);
                    self.lags
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .record(lag);
                    return;
                }
                Ok(_) => {
                    self.empty_answers.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(Failure::Status(503)) => {}
                Err(_) => {
                    self.failed_searches.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            if now_ns() > deadline {
                self.not_found.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    }

    /// Waits for the probes in flight (each gives up after 30 s) and reports.
    pub async fn finish(&self) -> ProbeReport {
        let mut tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        while tasks.join_next().await.is_some() {}
        ProbeReport {
            fraction: if self.every == 0 {
                0.0
            } else {
                1.0 / self.every as f64
            },
            probes: self.started.load(Ordering::Relaxed),
            latency: self
                .lags
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .summary(),
            not_found: self.not_found.load(Ordering::Relaxed),
            empty_answers: self.empty_answers.load(Ordering::Relaxed),
            failed_searches: self.failed_searches.load(Ordering::Relaxed),
        }
    }
}

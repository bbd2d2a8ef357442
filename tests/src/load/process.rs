//! What the processes of a benchmark cost, read from `/proc`: resident memory, CPU seconds per
//! process and per party (server, benchmark, Postgres, nats-server, the rest of the host), and
//! a sampler of resident memory over a run (is it flat, or growing?).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::stats::nan_as_null;

/// A line of `/proc/<pid>/status` (`VmRSS:`, `VmHWM:`) in megabytes (`NaN` when unreadable).
pub fn rss_mb(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// CPU seconds (user + system) of a process, from `/proc/<pid>/stat` (100 ticks a second).
pub fn cpu_seconds(pid: &str) -> f64 {
    let (user, system) = cpu_split(pid);
    user + system
}

/// User and system CPU seconds of a process.
pub fn cpu_split(pid: &str) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<f64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    let field = |i: usize| fields.get(i).copied().unwrap_or(0.0) / 100.0;
    (field(11), field(12))
}

/// The ids of every process named `name` (its `comm`).
pub fn pids_named(name: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == name)
        })
        .collect()
}

/// CPU seconds of every process named `name` (Postgres backends, nats-server).
pub fn cpu_of_all(name: &str) -> f64 {
    pids_named(name).iter().map(|pid| cpu_seconds(pid)).sum()
}

/// The nats-server serving `port` (its command line names the port), when there is one.
pub fn nats_server_pid(port: u16) -> Option<u32> {
    let port = port.to_string();
    pids_named("nats-server").into_iter().find_map(|pid| {
        let line = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let serves = line
            .split(|&b| b == 0)
            .any(|arg| arg == port.as_bytes() || arg.ends_with(format!(":{port}").as_bytes()));
        serves.then(|| pid.parse().ok()).flatten()
    })
}

/// CPU seconds so far, per party, and the host's busy and total ticks.
pub struct Usage {
    at: Instant,
    server: (f64, f64),
    bench: f64,
    postgres: f64,
    nats: f64,
    host_busy: f64,
    host_total: f64,
}

/// Cores used over an interval, and the host's busy share.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Cpu {
    /// The server process (user + system).
    pub server: f64,
    /// Of that, in the kernel.
    pub server_system: f64,
    /// The benchmark's own process.
    pub bench: f64,
    /// Every `postgres` process.
    pub postgres: f64,
    /// Every `nats-server` process.
    pub nats: f64,
    /// The host's busy share, 0–1.
    pub host: f64,
}

impl Cpu {
    /// Cores used by everything else on the host (other sessions' builds, the kernel's own).
    pub fn others(&self, cores: f64) -> f64 {
        (self.host * cores - self.server - self.bench - self.postgres - self.nats).max(0.0)
    }
}

impl Usage {
    /// CPU seconds so far of the server `server` (when given), this process, Postgres,
    /// nats-server and the host.
    pub fn now(server: Option<u32>) -> Usage {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let ticks: Vec<f64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .map(|f| f.parse().unwrap_or(0.0))
            .collect();
        let idle = ticks.get(3).unwrap_or(&0.0) + ticks.get(4).unwrap_or(&0.0);
        let total: f64 = ticks.iter().take(8).sum();
        Usage {
            at: Instant::now(),
            server: server.map_or((0.0, 0.0), |pid| cpu_split(&pid.to_string())),
            bench: cpu_seconds("self"),
            postgres: cpu_of_all("postgres"),
            nats: cpu_of_all("nats-server"),
            host_busy: total - idle,
            host_total: total,
        }
    }

    /// Cores used by each party between `before` and this reading.
    pub fn since(&self, before: &Usage) -> Cpu {
        let seconds = self.at.duration_since(before.at).as_secs_f64();
        Cpu {
            server: (self.server.0 + self.server.1 - before.server.0 - before.server.1) / seconds,
            server_system: (self.server.1 - before.server.1) / seconds,
            bench: (self.bench - before.bench) / seconds,
            postgres: (self.postgres - before.postgres) / seconds,
            nats: (self.nats - before.nats) / seconds,
            host: (self.host_busy - before.host_busy)
                / (self.host_total - before.host_total).max(1.0),
        }
    }
}

/// A process whose resident memory a run follows.
#[derive(Debug, Clone)]
pub struct Watched {
    /// What the report calls it (`helpdesk up`, `nats-server`, `helpdesk-load`).
    pub name: String,
    pub pid: u32,
}

/// Resident memory of one process over a run, sampled every second.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RssSeries {
    pub process: String,
    pub pid: u32,
    /// The length of the first and last windows compared: 60 s when the run lasts at least
    /// three minutes, else a fifth of the run.
    pub window_s: f64,
    #[serde(with = "nan_as_null")]
    pub first_window_mb: f64,
    #[serde(with = "nan_as_null")]
    pub last_window_mb: f64,
    #[serde(with = "nan_as_null")]
    pub peak_mb: f64,
    /// The anonymous part of the first and last windows (`RssAnon`: heap and stacks, not the
    /// mapped files, such as the search index, that the kernel may drop and read again).
    #[serde(with = "nan_as_null", default = "not_sampled")]
    pub anon_first_window_mb: f64,
    #[serde(with = "nan_as_null", default = "not_sampled")]
    pub anon_last_window_mb: f64,
    /// (seconds since the start, MB), one a second.
    pub samples: Vec<(f64, f64)>,
}

impl RssSeries {
    /// Last window's mean over the first's: about 1 when memory is flat.
    pub fn growth(&self) -> f64 {
        self.last_window_mb / self.first_window_mb
    }

    /// The same for the anonymous part.
    pub fn anon_growth(&self) -> f64 {
        self.anon_last_window_mb / self.anon_first_window_mb
    }
}

/// A figure missing from results written before it was sampled.
fn not_sampled() -> f64 {
    f64::NAN
}

/// Samples `VmRSS` and `RssAnon` of some processes every second until stopped.
pub struct RssSampler {
    running: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<Samples>>,
    watched: Vec<Watched>,
}

/// One process's samples: (seconds since the start, MB) of all resident memory and of its
/// anonymous part.
#[derive(Debug, Clone, Default)]
struct Samples {
    rss: Vec<(f64, f64)>,
    anon: Vec<(f64, f64)>,
}

impl RssSampler {
    /// Starts sampling.
    pub fn start(watched: Vec<Watched>) -> RssSampler {
        let running = Arc::new(AtomicBool::new(true));
        let pids: Vec<u32> = watched.iter().map(|w| w.pid).collect();
        let flag = running.clone();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut series = vec![Samples::default(); pids.len()];
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            while flag.load(Ordering::Relaxed) {
                tick.tick().await;
                let at = started.elapsed().as_secs_f64();
                for (pid, samples) in pids.iter().zip(&mut series) {
                    let (rss, anon) = (rss_mb(*pid, "VmRSS:"), rss_mb(*pid, "RssAnon:"));
                    if rss.is_finite() && anon.is_finite() {
                        samples.rss.push((at, rss));
                        samples.anon.push((at, anon));
                    }
                }
            }
            series
        });
        RssSampler {
            running,
            task,
            watched,
        }
    }

    /// Stops sampling; one series per watched process.
    pub async fn finish(self) -> Vec<RssSeries> {
        self.running.store(false, Ordering::Relaxed);
        let series = self.task.await.unwrap_or_default();
        self.watched
            .into_iter()
            .zip(series)
            .map(|(watched, samples)| summarize(watched, samples))
            .collect()
    }
}

fn summarize(watched: Watched, samples: Samples) -> RssSeries {
    let length = samples.rss.last().map_or(0.0, |s| s.0);
    let window = if length >= 180.0 { 60.0 } else { length / 5.0 };
    let mean = |series: &[(f64, f64)], pick: &dyn Fn(f64) -> bool| {
        let chosen: Vec<f64> = series.iter().filter(|s| pick(s.0)).map(|s| s.1).collect();
        chosen.iter().sum::<f64>() / chosen.len() as f64
    };
    let first = |series: &[(f64, f64)]| mean(series, &|t| t <= window.max(1.0));
    let last = |series: &[(f64, f64)]| mean(series, &|t| t >= length - window.max(1.0));
    let peak = samples.rss.iter().map(|s| s.1).fold(f64::NAN, f64::max);
    RssSeries {
        process: watched.name,
        pid: watched.pid,
        window_s: window,
        first_window_mb: first(&samples.rss),
        last_window_mb: last(&samples.rss),
        peak_mb: peak,
        anon_first_window_mb: first(&samples.anon),
        anon_last_window_mb: last(&samples.anon),
        samples: samples.rss,
    }
}

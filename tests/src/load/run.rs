//! One load run from start to end: start a product (or attach to one), connect the WebSocket
//! clients, drive the commands, wait for the last pushes and probes, and report.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::process::Child;

use super::commands::Api;
use super::driver::{Context, closed_loop, open_loop};
use super::now_ns;
use super::probe::Prober;
use super::process::{RssSampler, Usage, Watched, nats_server_pid};
use super::report::{Backlog, RunReport};
use super::server::{agent_token, cleanup, release_binary, start_server, token};
use super::ws::{PushReport, PushWatch};

/// How commands are driven.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// `rate` commands a second, on a fixed schedule.
    Open { rate: f64 },
    /// `concurrency` workers, each sending its next command when the last one answered.
    Closed { concurrency: usize },
}

/// The product to drive: started by the run, or already running.
#[derive(Debug, Clone)]
pub enum Target {
    /// Start the release `helpdesk up` beside this binary on a scratch database and NATS
    /// prefix, with extra environment.
    Start { env: Vec<(String, String)> },
    /// A running product at `url` that trusts tokens signed with `secret`; `pid`, when given,
    /// is followed for memory and CPU.
    Attach {
        url: String,
        secret: String,
        pid: Option<u32>,
        /// Its `HELPDESK_NATS_PREFIX`, to read its events stream.
        prefix: Option<String>,
    },
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub label: String,
    /// The command line, for the report.
    pub command: String,
    pub target: Target,
    pub mode: Mode,
    pub duration: Duration,
    pub ws_clients: usize,
    /// The share of opens the search probe follows (0 for none).
    pub search_probe: f64,
    /// Create an SLA policy that measures every ticket before the load starts.
    pub sla_policy: bool,
    /// Open loop: requests in flight at most.
    pub max_in_flight: usize,
}

/// A product started for the run, removed after it.
struct Started {
    child: Child,
    database: String,
    prefix: String,
    _data_dir: tempfile::TempDir,
}

/// Runs the load and reports.
pub async fn run(settings: Settings) -> RunReport {
    now_ns();
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (url, secret, pid, started) = prepare(&settings.target).await;
    let prefix = match (&settings.target, &started) {
        (Target::Attach { prefix, .. }, _) => prefix.clone(),
        (Target::Start { .. }, started) => started.as_ref().map(|s| s.prefix.clone()),
    };
    if settings.sla_policy {
        let manager = Api::new(&url, token(&secret, "manager", "manager-load"));
        create_sla_policy(&manager).await;
    }
    let api = Arc::new(Api::new(&url, agent_token(&secret, "agent-load")));
    let pushes = match settings.ws_clients {
        0 => None,
        n => Some(Arc::new(PushWatch::connect(&url, &secret, n).await)),
    };
    // With WebSocket clients, also the events stream: how much of their latency is the relay's.
    let stream = match (&prefix, settings.ws_clients) {
        (Some(prefix), 1..) => match PushWatch::on_stream(prefix).await {
            Ok(watch) => Some(Arc::new(watch)),
            Err(error) => {
                eprintln!("not reading the events stream: {error}");
                None
            }
        },
        _ => None,
    };
    let prober = (settings.search_probe > 0.0)
        .then(|| Arc::new(Prober::new(api.clone(), settings.search_probe)));
    let context = Arc::new(Context::new(
        api,
        pushes.clone(),
        stream.clone(),
        prober.clone(),
    ));
    let sampler = RssSampler::start(watched(pid));
    let (stop_watching, watching) = watch_backlog(url.clone());
    let before = Usage::now(pid);
    eprintln!(
        "{}: driving {:?} for {:?}",
        settings.label, settings.mode, settings.duration
    );
    match settings.mode {
        Mode::Open { rate } => {
            open_loop(
                context.clone(),
                rate,
                settings.duration,
                settings.max_in_flight,
            )
            .await;
        }
        Mode::Closed { concurrency } => {
            closed_loop(context.clone(), concurrency, settings.duration).await;
        }
    }
    let cpu = Usage::now(pid).since(&before);
    let _ = stop_watching.send(());
    let (most_behind, backlog) = watching.await.unwrap_or_default();
    let commands = context.recorder.report();
    drop(context);
    let searchable = match prober {
        Some(prober) => Some(prober.finish().await),
        None => None,
    };
    let pushes = finish(pushes).await;
    let stream = finish(stream).await;
    let rss = sampler.finish().await;
    if let Some(started) = started {
        stop(started).await;
    }
    let (rate, concurrency) = match settings.mode {
        Mode::Open { rate } => (Some(rate), None),
        Mode::Closed { concurrency } => (None, Some(concurrency)),
    };
    RunReport {
        label: settings.label,
        command: settings.command,
        started_at,
        mode: if rate.is_some() { "open" } else { "closed" }.into(),
        rate,
        concurrency,
        duration_s: settings.duration.as_secs_f64(),
        attached: matches!(settings.target, Target::Attach { .. }),
        commands,
        pushes,
        stream,
        searchable,
        rss,
        cpu,
        cores: std::thread::available_parallelism().map_or(2, |n| n.get()),
        backlog,
        most_behind,
    }
}

/// How often the run reads the server's backlog.
const BACKLOG_EVERY: Duration = Duration::from_secs(5);

/// Resolves to the most the server was behind during the run, and its backlog at the end.
type BacklogWatch = tokio::task::JoinHandle<(Option<Backlog>, Option<Backlog>)>;

/// The server's backlog now, from its `/metrics`.
async fn scrape_backlog(url: &str) -> Option<Backlog> {
    Backlog::from_metrics(&super::server::metrics_text(url).await?)
}

/// Reads the server's backlog every [`BACKLOG_EVERY`] until told to stop, then once more;
/// resolves to the most it was behind over all those scrapes, and the last scrape (`None`
/// where no scrape read one).
fn watch_backlog(url: String) -> (tokio::sync::oneshot::Sender<()>, BacklogWatch) {
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut most: Option<Backlog> = None;
        let mut tick = tokio::time::interval(BACKLOG_EVERY);
        loop {
            let stopping = tokio::select! {
                _ = &mut stopped => true,
                _ = tick.tick() => false,
            };
            let now = scrape_backlog(&url).await;
            if let Some(now) = &now {
                match &mut most {
                    Some(most) => most.keep_largest(now),
                    None => most = Some(now.clone()),
                }
            }
            if stopping {
                return (most, now);
            }
        }
    });
    (stop, task)
}

/// The product's URL, token secret and process id, and what to remove afterwards.
async fn prepare(target: &Target) -> (String, String, Option<u32>, Option<Started>) {
    match target {
        Target::Attach {
            url, secret, pid, ..
        } => (url.clone(), secret.clone(), *pid, None),
        Target::Start { env } => {
            let binary: PathBuf = release_binary();
            let server = crate::postgres_server_url();
            // Named, not created: `helpdesk up` creates and migrates it.
            let database = helpdesk_platform::db::scratch_database_url(&server)
                .await
                .expect("a scratch database name");
            let database = database.expose().to_owned();
            let prefix = crate::unique_prefix();
            let data_dir = tempfile::tempdir().expect("a data directory");
            let secret = format!("load-{}", uuid::Uuid::new_v4().simple());
            let (child, url) =
                start_server(&binary, &database, &prefix, data_dir.path(), &secret, env).await;
            let pid = child.id();
            // Let start-up work (migrations, consumers, the first relay poll) settle.
            tokio::time::sleep(Duration::from_secs(2)).await;
            let started = Started {
                child,
                database,
                prefix,
                _data_dir: data_dir,
            };
            (url, secret, pid, Some(started))
        }
    }
}

/// A 24×7 policy measuring first reply, next reply and resolution of every ticket, with
/// targets no run reaches (no breaches: the load measures the steady work of the SLA clocks).
async fn create_sla_policy(manager: &Api) {
    let targets = json!({"first_reply": 600, "next_reply": 600, "resolution": 6000});
    let policy = json!({
        "name": "Load",
        "position": 1,
        "targets": {"low": targets, "normal": targets, "high": targets, "urgent": targets},
        "calendar": {"kind": "always"},
    });
    let response = manager
        .client()
        .post(format!("{}/api/v1/sla-policies", manager.base()))
        .bearer_auth(manager.token())
        .json(&policy)
        .send()
        .await
        .expect("the SLA policy request is answered");
    assert!(
        response.status().is_success(),
        "creating the SLA policy: {}",
        response.status()
    );
}

/// The processes whose memory the run follows: the server (when known), the nats-server of
/// `NATS_URL` (when local) and this process.
fn watched(server: Option<u32>) -> Vec<Watched> {
    let mut watched = Vec::new();
    if let Some(pid) = server {
        watched.push(Watched {
            name: "helpdesk up".into(),
            pid,
        });
    }
    let port = crate::nats_url()
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or(4222);
    if let Some(pid) = nats_server_pid(port) {
        watched.push(Watched {
            name: "nats-server".into(),
            pid,
        });
    }
    watched.push(Watched {
        name: "helpdesk-load".into(),
        pid: std::process::id(),
    });
    watched
}

/// Waits for a watch's last pushes (at most 10 s of quiet) and reports it.
async fn finish(watch: Option<Arc<PushWatch>>) -> Option<PushReport> {
    let watch = watch?;
    watch.drain(Duration::from_secs(10)).await;
    Arc::try_unwrap(watch).ok().map(PushWatch::finish)
}

async fn stop(mut started: Started) {
    let _ = started.child.kill().await;
    if let Ok(nats) = async_nats::connect(crate::nats_url()).await {
        cleanup(
            &nats,
            &started.prefix,
            &crate::postgres_server_url(),
            &started.database,
        )
        .await;
    }
}

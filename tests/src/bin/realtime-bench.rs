//! Real-time feed benchmark: 1,000 WebSocket clients on one `helpdesk up`, commands driven
//! open-loop at 50, 200 and 1,000 per second, and for every (client, update) pair the time from
//! the command's HTTP response to the push arriving. Also the server's resident memory, where
//! the CPU goes, and two raw baselines measured in the same run: the same commands' events
//! reaching one ordered JetStream consumer (the bus the feed reads), and core NATS fanning a
//! message of the same size out to 1,000 connections at the same rate (the transport floor of
//! a 1,000-way fan-out on this host).
//!
//! Run (Postgres and NATS as for the tests; the benchmark starts the release `helpdesk` binary
//! that sits next to it, so build that first):
//!
//! ```sh
//! cargo build --release -p helpdesk
//! cargo run --release -p helpdesk-tests --bin realtime-bench
//! ```
//!
//! Prints Markdown tables for `docs/benchmarks.md`; diagnostics go to standard error.

#![allow(clippy::unwrap_used, clippy::print_stdout)] // a benchmark tool, not a service

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use helpdesk_query_api::realtime::protocol::ServerMessage;
use helpdesk_tests::load::now_ns;
use helpdesk_tests::load::process::{Cpu, Usage, rss_mb};
use helpdesk_tests::load::server::{
    agent_token, cleanup, metric, release_binary, require_open_files, start_server,
};
use helpdesk_tests::load::stats::{max_ms, percentile};
use helpdesk_tests::load::ws::{self, Socket, update_key};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::task::{JoinHandle, JoinSet};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

/// WebSocket clients on the one instance.
const CLIENTS: usize = 1_000;
/// Of those, how many follow `{"priorities":["urgent"]}` (a quarter of the tickets, from their
/// priority change on); the others follow `{}` (every ticket).
const URGENT_CLIENTS: usize = 50;
/// Command rates, one phase each (50/s is there to show the feed on a host that is not busy).
const RATES: [u32; 3] = [50, 200, 1_000];
/// How long each phase sends commands.
const PHASE: Duration = Duration::from_secs(12);
/// The time between two commands on the same ticket: open, then four follow-ups. A rate must
/// be a multiple of 25/s, so that every block of this length holds whole tickets.
const GAP: Duration = Duration::from_millis(200);
const STEPS: usize = 5;
/// How long a dropped client waits before it connects again.
const BACKOFF: Duration = Duration::from_secs(1);
const SECRET: &str = "realtime-bench-secret-realtime-bench-0123456789";

/// One update seen by a client (or by the JetStream baseline): ticket, version, arrival.
#[derive(Clone, Copy)]
struct Arrival {
    ticket: u128,
    version: u32,
    at: u64,
}

/// What one WebSocket client saw since the last harvest.
#[derive(Default)]
struct Log {
    arrivals: Vec<Arrival>,
    /// The server told it `resync` or closed it: it lost updates and connected again.
    resynced: bool,
}

struct Client {
    urgent: bool,
    log: Mutex<Log>,
}

/// Counters shared by every client.
#[derive(Default)]
struct Feed {
    updates: AtomicU64,
    update_bytes: AtomicU64,
    subscribed: AtomicUsize,
    other: AtomicU64,
    reasons: Mutex<HashMap<String, u64>>,
    sample: Mutex<Option<String>>,
}

/// A command answered with 2xx.
#[derive(Clone, Copy)]
struct Answer {
    ticket: u128,
    version: u32,
    sent: u64,
    answered: u64,
    /// The ticket was urgent at this version: the urgent-queue clients must get it too.
    urgent: bool,
}

#[derive(Default)]
struct Driven {
    answers: Vec<Answer>,
    failed: u64,
    skipped: u64,
    late: u64,
}

/// What the phases share.
struct Bench {
    http: Arc<Http>,
    pid: u32,
    port: u16,
    clients: Vec<Arc<Client>>,
    tasks: Vec<JoinHandle<()>>,
    feed: Arc<Feed>,
    stream_log: Arc<Mutex<Vec<Arrival>>>,
}

/// How commands are sent.
struct Http {
    client: reqwest::Client,
    base: String,
    token: String,
}

#[tokio::main]
async fn main() {
    now_ns(); // one clock for commands, pushes and baselines, from here
    let binary = preflight();
    let server_url = helpdesk_tests::postgres_server_url();
    // Named, not created: `helpdesk up` creates and migrates it with its own migrations.
    let database = helpdesk_platform::db::scratch_database_url(&server_url)
        .await
        .unwrap();
    let prefix = helpdesk_tests::unique_prefix();
    let data_dir = tempfile::tempdir().unwrap();
    let (child, base) = start_server(
        &binary,
        database.expose(),
        &prefix,
        data_dir.path(),
        SECRET,
        &[],
    )
    .await;
    let pid = child.id().unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_idle = rss_mb(pid, "VmRSS:");

    let nats = async_nats::connect(helpdesk_tests::nats_url())
        .await
        .unwrap();
    let stream_log: Arc<Mutex<Vec<Arrival>>> = Arc::default();
    tokio::spawn(watch_stream(
        nats.clone(),
        prefix.clone(),
        stream_log.clone(),
    ));
    let feed = Arc::new(Feed::default());
    let (clients, tasks) = connect_clients(&base, feed.clone()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_connected = rss_mb(pid, "VmRSS:");
    let port = base.rsplit(':').next().unwrap().parse().unwrap();
    let http = Arc::new(Http {
        client: reqwest::Client::new(),
        base,
        token: token("agent-bench"),
    });
    let bench = Bench {
        http,
        pid,
        port,
        clients,
        tasks,
        feed,
        stream_log,
    };

    let rates = rates();
    let mut phases = Vec::new();
    for &rate in &rates {
        phases.push(run_phase(&bench, rate).await);
    }
    let rss_peak = rss_mb(pid, "VmHWM:");
    let dropped = metric(&bench.http.base, "helpdesk_realtime_dropped_connections").await;
    for task in &bench.tasks {
        task.abort();
    }
    drop(child); // kill_on_drop: the server is gone before the raw fan-out runs
    tokio::time::sleep(Duration::from_secs(2)).await;
    let payload = phases[0].update_bytes;
    let mut fanouts = Vec::new();
    for &rate in &rates {
        fanouts.push(nats_fanout(rate, payload).await);
    }
    print_latency_table(&phases, &fanouts);
    print_delivery_table(&phases);
    print_cpu_table(&phases, &fanouts);
    print_memory_table(&phases, [rss_idle, rss_connected, rss_peak]);
    let serialize = serialization_us(&bench.feed);
    println!(
        "server-side drops (helpdesk_realtime_dropped_connections): {dropped}; average update \
         frame {payload} bytes; serializing one update frame takes {serialize:.2} µs here \
         (the server does it once per client and update)"
    );
    cleanup(&nats, &prefix, &server_url, database.expose()).await;
}

/// The command rates: `--rates 200,1000`, or [`RATES`].
fn rates() -> Vec<u32> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|arg| arg == "--rates") {
        Some(at) => args[at + 1]
            .split(',')
            .map(|r| r.parse().unwrap())
            .collect(),
        None => RATES.to_vec(),
    }
}

/// Checks what the benchmark needs before it starts anything; returns the `helpdesk` binary.
fn preflight() -> PathBuf {
    let binary = release_binary();
    require_open_files(4_096, "1,000 WebSockets and 1,000 NATS connections");
    binary
}

fn token(sub: &str) -> String {
    agent_token(SECRET, sub)
}

// ---------------------------------------------------------------------------------------------
// WebSocket clients

/// Starts every client (50 connecting at a time) and waits until all are subscribed.
async fn connect_clients(base: &str, feed: Arc<Feed>) -> (Vec<Arc<Client>>, Vec<JoinHandle<()>>) {
    let url = format!("{}/api/v1/realtime", base.replacen("http", "ws", 1));
    let gate = Arc::new(tokio::sync::Semaphore::new(50));
    let mut clients = Vec::new();
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let client = Arc::new(Client {
            urgent: i % (CLIENTS / URGENT_CLIENTS) == 0,
            log: Mutex::default(),
        });
        clients.push(client.clone());
        let (url, token) = (url.clone(), token(&format!("agent-{i}")));
        let (feed, gate) = (feed.clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await.unwrap();
            run_client(url, token, client, feed, permit).await;
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while feed.subscribed.load(Ordering::Relaxed) < CLIENTS {
        assert!(Instant::now() < deadline, "clients did not all subscribe");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (clients, tasks)
}

async fn open_socket(url: &str, token: &str, urgent: bool) -> Result<Socket, String> {
    let subscribe = if urgent {
        json!({"type": "subscribe", "id": "urgent", "queue": {"priorities": ["urgent"]}})
    } else {
        json!({"type": "subscribe", "id": "q", "queue": {}})
    };
    ws::open_socket(url, token, &subscribe).await
}

/// Connects, subscribes, and records every update; when the server drops it, connects again
/// after [`BACKOFF`] (as a real client would after `resync`), marking its log as lossy.
async fn run_client(
    url: String,
    token: String,
    client: Arc<Client>,
    feed: Arc<Feed>,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let mut permit = Some(permit);
    let mut failures = 0;
    loop {
        let mut socket = match open_socket(&url, &token, client.urgent).await {
            Ok(socket) => socket,
            Err(error) => {
                failures += 1;
                assert!(failures < 100, "cannot connect a client: {error}");
                tokio::time::sleep(BACKOFF).await;
                continue;
            }
        };
        if permit.take().is_some() {
            feed.subscribed.fetch_add(1, Ordering::Relaxed);
        }
        while let Some(frame) = socket.next().await {
            match frame {
                Ok(Message::Text(text)) => record(&client, &feed, text.as_str()),
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
        client.log.lock().unwrap().resynced = true;
        tokio::time::sleep(BACKOFF).await;
    }
}

fn record(client: &Client, feed: &Feed, text: &str) {
    let at = now_ns();
    if let Some((ticket, version)) = update_key(text) {
        let arrival = Arrival {
            ticket,
            version,
            at,
        };
        client.log.lock().unwrap().arrivals.push(arrival);
        feed.updates.fetch_add(1, Ordering::Relaxed);
        let bytes = text.len() as u64;
        if feed.update_bytes.fetch_add(bytes, Ordering::Relaxed) == 0 {
            *feed.sample.lock().unwrap() = Some(text.to_owned());
        }
        return;
    }
    let message: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    if message["type"] == "resync" {
        let reason = message["reason"].as_str().unwrap_or("?").to_owned();
        *feed.reasons.lock().unwrap().entry(reason).or_default() += 1;
        client.log.lock().unwrap().resynced = true;
    } else {
        feed.other.fetch_add(1, Ordering::Relaxed);
    }
}

/// The JetStream baseline: the product's event stream read as the feed reads it (one ordered
/// consumer), each event stamped on arrival.
async fn watch_stream(nats: async_nats::Client, prefix: String, log: Arc<Mutex<Vec<Arrival>>>) {
    let mut messages = ws::ticket_events(nats, &prefix).await.unwrap();
    while let Some(Ok(message)) = messages.next().await {
        let at = now_ns();
        if let Some((ticket, version)) = ws::stream_key(&message) {
            log.lock().unwrap().push(Arrival {
                ticket,
                version,
                at,
            });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Commands

/// One ticket's part of a phase: which steps it takes, when.
struct Plan {
    /// Its id, when it was opened before the phase.
    existing: Option<String>,
    urgent: bool,
    steps: Vec<(usize, Instant)>,
}

/// An open-loop schedule of exactly `rate` commands a second for [`PHASE`], one open to four
/// follow-ups. Time is cut into blocks of [`GAP`]; in block `b` the tickets of cohort `b`
/// open and those of cohorts `b-1` … `b-4` take their first … fourth follow-up, interleaved
/// slot by slot. The cohorts before the first block are opened before the phase, so the rate
/// and the mix hold from the first second.
fn schedule(rate: u32, start: Instant, existing: &[String]) -> Vec<Plan> {
    let width = rate as usize * GAP.as_millis() as usize / 1000;
    assert!(
        width > 0 && width.is_multiple_of(STEPS),
        "{rate}/s is not a multiple of 25/s"
    );
    let per_cohort = width / STEPS;
    let blocks = (PHASE.as_millis() / GAP.as_millis()) as i64;
    let nanos = 1_000_000_000 / u64::from(rate);
    let mut plans = Vec::new();
    for cohort in -(STEPS as i64 - 1)..blocks {
        for t in 0..per_cohort {
            let steps = (0..STEPS)
                .filter(|&step| (0..blocks).contains(&(cohort + step as i64)))
                .map(|step| {
                    let slot =
                        (cohort + step as i64) as u64 * width as u64 + (step + STEPS * t) as u64;
                    (step, start + Duration::from_nanos(slot * nanos))
                })
                .collect();
            let first = (cohort + STEPS as i64 - 1) as usize * per_cohort + t;
            plans.push(Plan {
                existing: (cohort < 0).then(|| existing[first].clone()),
                urgent: plans.len() % 4 == 0,
                steps,
            });
        }
    }
    plans
}

/// Opens `count` tickets at once (for a phase's first follow-ups); returns their ids.
async fn open_before(http: &Arc<Http>, count: usize) -> Vec<String> {
    let mut opening = JoinSet::new();
    for i in 0..count {
        let http = http.clone();
        opening.spawn(async move {
            let (method, path, body) = command(0, "", false, i);
            http.send(method, &path, body).await.unwrap().0
        });
    }
    opening.join_all().await
}

fn command(step: usize, ticket: &str, urgent: bool, serial: usize) -> (Method, String, Value) {
    let path = |what: &str| format!("/api/v1/tickets/{ticket}/{what}");
    match step {
        0 => (
            Method::POST,
            "/api/v1/tickets".into(),
            json!({"subject": format!("Printer on fire, floor {serial}"),
                   "description": "The printer on our floor is on fire again. Please send someone.",
                   "priority": "normal", "channel": "web",
                   "requester": {"customer_id": format!("cust-{}", serial % 500)}}),
        ),
        1 => {
            let priority = if urgent { "urgent" } else { "high" };
            (Method::PUT, path("priority"), json!({"priority": priority}))
        }
        2 => (Method::PUT, path("status"), json!({"status": "open"})),
        3 => (
            Method::POST,
            path("interactions"),
            json!({"body": "We are on it; a technician is on the way.", "visibility": "public"}),
        ),
        _ => (Method::PUT, path("tags"), json!({"add": ["printer"]})),
    }
}

static REPORTED_ERRORS: AtomicU64 = AtomicU64::new(0);

impl Http {
    /// Sends one command; the ticket id and version it answered, or `None` on any failure
    /// (the first few are printed).
    async fn send(&self, method: Method, path: &str, body: Value) -> Option<(String, u64)> {
        let outcome = async {
            let response = self
                .client
                .request(method, format!("{}{path}", self.base))
                .bearer_auth(&self.token)
                .json(&body)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            if !status.is_success() {
                return Err(format!("{status} {body}"));
            }
            let id = body["id"].as_str().ok_or("no id")?.to_owned();
            Ok::<_, String>((id, body["version"].as_u64().ok_or("no version")?))
        }
        .await;
        if let Err(error) = &outcome
            && REPORTED_ERRORS.fetch_add(1, Ordering::Relaxed) < 5
        {
            eprintln!("command {path} failed: {error}");
        }
        outcome.ok()
    }
}

/// Runs one ticket's plan: each step at its slot, or as soon as the previous step of the same
/// ticket was answered when that is later (counted as late).
async fn follow(http: Arc<Http>, plan: Plan, serial: usize, driven: Arc<Mutex<Driven>>) {
    let mut ticket = plan.existing;
    let mut urgent = false;
    for (position, &(step, at)) in plan.steps.iter().enumerate() {
        if position > 0 && Instant::now() > at {
            driven.lock().unwrap().late += 1;
        }
        tokio::time::sleep_until(at.into()).await;
        let id = ticket.clone().unwrap_or_default();
        let (method, path, body) = command(step, &id, plan.urgent, serial);
        let sent = now_ns();
        let outcome = http.send(method, &path, body).await;
        let answered = now_ns();
        let mut driven = driven.lock().unwrap();
        let Some((id, version)) = outcome else {
            driven.failed += 1;
            if ticket.is_none() {
                driven.skipped += (plan.steps.len() - 1) as u64;
                return;
            }
            continue;
        };
        urgent |= step == 1 && plan.urgent;
        driven.answers.push(Answer {
            ticket: Uuid::parse_str(&id).unwrap().as_u128(),
            version: version as u32,
            sent,
            answered,
            urgent,
        });
        ticket = Some(id);
    }
}

async fn drive(http: &Arc<Http>, rate: u32, existing: &[String]) -> Driven {
    let start = Instant::now() + Duration::from_millis(200);
    let driven: Arc<Mutex<Driven>> = Arc::default();
    let mut tickets = JoinSet::new();
    for (serial, plan) in schedule(rate, start, existing).into_iter().enumerate() {
        tickets.spawn(follow(http.clone(), plan, serial, driven.clone()));
    }
    tickets.join_all().await;
    std::mem::take(&mut *driven.lock().unwrap())
}

// ---------------------------------------------------------------------------------------------
// Phases

struct Phase {
    rate: u32,
    driven: Driven,
    pushes: Stats,
    stream: Stats,
    update_bytes: usize,
    rss_end: f64,
    cpu: Cpu,
    queues: Queues,
    /// The most events that reached the JetStream consumer within 100 ms.
    burst: usize,
    resyncs: HashMap<String, u64>,
}

/// Latencies of (client, update) pairs and how complete delivery was.
#[derive(Default)]
struct Stats {
    samples: Vec<u64>,
    early: u64,
    missing: u64,
    lost_to_resync: u64,
    resynced_clients: u64,
    unexpected: u64,
}

async fn run_phase(bench: &Bench, rate: u32) -> Phase {
    let per_cohort = rate as usize * GAP.as_millis() as usize / 1000 / STEPS;
    let existing = open_before(&bench.http, (STEPS - 1) * per_cohort).await;
    drain(bench, existing.len(), 0).await;
    harvest(bench);
    bench.feed.reasons.lock().unwrap().clear();
    let bytes_before = bench.feed.update_bytes.load(Ordering::Relaxed);
    let updates_before = bench.feed.updates.load(Ordering::Relaxed);

    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = tokio::spawn(sample_queues(bench.port, sampling.clone()));
    let cpu_before = Usage::now(Some(bench.pid));
    let driven = drive(&bench.http, rate, &existing).await;
    let cpu = Usage::now(Some(bench.pid)).since(&cpu_before);
    let rss_end = rss_mb(bench.pid, "VmRSS:");
    let urgent = driven.answers.iter().filter(|a| a.urgent).count();
    drain(bench, driven.answers.len(), urgent).await;
    sampling.store(false, Ordering::Relaxed);
    let queues = sampler.await.unwrap();
    let (logs, stream_log) = harvest(bench);
    let pushes = analyse(&driven.answers, &logs);
    let burst = largest_burst(&stream_log, Duration::from_millis(100));
    let stream_log = Log {
        arrivals: stream_log,
        resynced: false,
    };
    let stream = analyse(&driven.answers, &[(false, stream_log)]);
    let updates = bench.feed.updates.load(Ordering::Relaxed) - updates_before;
    let bytes = bench.feed.update_bytes.load(Ordering::Relaxed) - bytes_before;
    let other = bench.feed.other.swap(0, Ordering::Relaxed);
    if other + pushes.unexpected > 0 {
        eprintln!(
            "at {rate}/s: {} unexpected updates, {other} other messages",
            pushes.unexpected
        );
    }
    Phase {
        rate,
        driven,
        pushes,
        stream,
        update_bytes: (bytes / updates.max(1)) as usize,
        rss_end,
        cpu,
        queues,
        burst,
        resyncs: std::mem::take(&mut *bench.feed.reasons.lock().unwrap()),
    }
}

/// Waits until every client that was not dropped holds the updates of `answers` commands
/// (`urgent` of them for the urgent-queue clients) and the stream watcher holds as many
/// events, or until nothing arrived anywhere for 10 s.
async fn drain(bench: &Bench, answers: usize, urgent: usize) {
    let progress = || {
        let mut behind = 0;
        let mut held = bench.stream_log.lock().unwrap().len();
        behind += usize::from(held < answers);
        for client in &bench.clients {
            let log = client.log.lock().unwrap();
            let expected = if client.urgent { urgent } else { answers };
            behind += usize::from(!log.resynced && log.arrivals.len() < expected);
            held += log.arrivals.len();
        }
        (behind, held)
    };
    let mut last = progress();
    let mut quiet_since = Instant::now();
    while last.0 > 0 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = progress();
        if now.1 != last.1 {
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() > Duration::from_secs(10) {
            eprintln!("drain gave up with {} logs short", now.0);
            return;
        }
        last = now;
    }
}

/// Takes every client's log (with whether it belongs to an urgent-queue client) and the
/// stream watcher's, leaving them empty.
fn harvest(bench: &Bench) -> (Vec<(bool, Log)>, Vec<Arrival>) {
    let logs = bench
        .clients
        .iter()
        .map(|c| (c.urgent, std::mem::take(&mut *c.log.lock().unwrap())))
        .collect();
    (logs, std::mem::take(&mut *bench.stream_log.lock().unwrap()))
}

/// Matches every (client, update) pair to its command: the latency from the command's
/// response, and what each client should have had but did not.
fn analyse(answers: &[Answer], logs: &[(bool, Log)]) -> Stats {
    let index: HashMap<(u128, u32), usize> = answers
        .iter()
        .enumerate()
        .map(|(i, a)| ((a.ticket, a.version), i))
        .collect();
    let urgent_answers = answers.iter().filter(|a| a.urgent).count();
    let mut stats = Stats::default();
    let mut seen = vec![false; answers.len()];
    for (urgent_client, log) in logs {
        seen.fill(false);
        let mut received = 0;
        for arrival in &log.arrivals {
            let Some(&i) = index.get(&(arrival.ticket, arrival.version)) else {
                stats.unexpected += 1;
                continue;
            };
            if seen[i] || (*urgent_client && !answers[i].urgent) {
                stats.unexpected += 1;
                continue;
            }
            seen[i] = true;
            received += 1;
            let latency = arrival.at as i64 - answers[i].answered as i64;
            stats.early += u64::from(latency < 0);
            stats.samples.push(latency.max(0) as u64);
        }
        let expected = if *urgent_client {
            urgent_answers
        } else {
            answers.len()
        };
        let missing = (expected - received) as u64;
        if log.resynced {
            stats.lost_to_resync += missing;
            stats.resynced_clients += 1;
        } else {
            stats.missing += missing;
        }
    }
    stats
}

/// The most arrivals within any `window`.
fn largest_burst(arrivals: &[Arrival], window: Duration) -> usize {
    let mut times: Vec<u64> = arrivals.iter().map(|a| a.at).collect();
    times.sort_unstable();
    let window = window.as_nanos() as u64;
    let mut first = 0;
    let mut largest = 0;
    for (last, &at) in times.iter().enumerate() {
        while times[first] + window < at {
            first += 1;
        }
        largest = largest.max(last - first + 1);
    }
    largest
}

/// How long serializing one update frame takes (the server does it per client and update).
fn serialization_us(feed: &Feed) -> f64 {
    let Some(sample) = feed.sample.lock().unwrap().clone() else {
        return f64::NAN;
    };
    let message: ServerMessage = serde_json::from_str(&sample).unwrap();
    let started = Instant::now();
    let mut bytes = 0;
    for _ in 0..100_000 {
        bytes += message.to_json().len();
    }
    assert!(bytes > 0);
    started.elapsed().as_secs_f64() * 1e6 / 100_000.0
}

// ---------------------------------------------------------------------------------------------
// Raw baseline: core NATS fan-out to 1,000 connections

/// Publishes `rate` messages a second of `payload` bytes for [`PHASE`] to 1,000 connections
/// (one subscription each); latencies from publish to receipt, and the CPU it took.
async fn nats_fanout(rate: u32, payload: usize) -> (Stats, Cpu) {
    let subject = format!("rtbench.{}", Uuid::new_v4().simple());
    let fanout = Fanout::subscribe(&subject).await;
    let publisher = async_nats::connect(helpdesk_tests::nats_url())
        .await
        .unwrap();
    let total = PHASE.as_secs() * u64::from(rate);
    let nanos = 1_000_000_000 / u64::from(rate);
    let before = Usage::now(None);
    let start = tokio::time::Instant::now() + Duration::from_millis(200);
    for n in 0..total {
        tokio::time::sleep_until(start + Duration::from_nanos(n * nanos)).await;
        let mut body = format!("{:020}", now_ns()).into_bytes();
        body.resize(payload.max(20), b'x');
        publisher
            .publish(subject.clone(), body.into())
            .await
            .unwrap();
    }
    publisher.flush().await.unwrap();
    let cpu = Usage::now(None).since(&before);
    let expected = total * CLIENTS as u64;
    let samples = fanout.finish(expected, &publisher, &subject).await;
    let missing = expected.saturating_sub(samples.len() as u64);
    let stats = Stats {
        missing,
        samples,
        ..Stats::default()
    };
    (stats, cpu)
}

/// 1,000 core NATS connections with one subscription each, recording latencies.
struct Fanout {
    connections: Vec<async_nats::Client>,
    readers: JoinSet<()>,
    received: Arc<AtomicU64>,
    samples: Arc<Mutex<Vec<u64>>>,
    done: Arc<AtomicBool>,
}

impl Fanout {
    async fn subscribe(subject: &str) -> Fanout {
        let mut fanout = Fanout {
            connections: Vec::new(),
            readers: JoinSet::new(),
            received: Arc::default(),
            samples: Arc::default(),
            done: Arc::default(),
        };
        for _ in 0..CLIENTS {
            let client = async_nats::connect(helpdesk_tests::nats_url())
                .await
                .unwrap();
            let subscriber = client.subscribe(subject.to_owned()).await.unwrap();
            client.flush().await.unwrap();
            fanout.connections.push(client);
            let (received, samples) = (fanout.received.clone(), fanout.samples.clone());
            let done = fanout.done.clone();
            fanout
                .readers
                .spawn(read_fanout(subscriber, received, samples, done));
        }
        fanout
    }

    /// Waits until `expected` messages arrived (or none for 10 s); returns the latencies.
    async fn finish(
        mut self,
        expected: u64,
        publisher: &async_nats::Client,
        subject: &str,
    ) -> Vec<u64> {
        let mut last = 0;
        let mut quiet_since = Instant::now();
        while self.received.load(Ordering::Relaxed) < expected
            && quiet_since.elapsed() < Duration::from_secs(10)
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = self.received.load(Ordering::Relaxed);
            if now != last {
                (last, quiet_since) = (now, Instant::now());
            }
        }
        // Each reader stops at its next message: one more wakes them all.
        self.done.store(true, Ordering::Relaxed);
        let wake = vec![b'0'; 20];
        publisher
            .publish(subject.to_owned(), wake.into())
            .await
            .unwrap();
        publisher.flush().await.unwrap();
        let readers = std::mem::take(&mut self.readers);
        let _ = tokio::time::timeout(Duration::from_secs(10), readers.join_all()).await;
        std::mem::take(&mut *self.samples.lock().unwrap())
    }
}

async fn read_fanout(
    mut subscriber: async_nats::Subscriber,
    received: Arc<AtomicU64>,
    samples: Arc<Mutex<Vec<u64>>>,
    done: Arc<AtomicBool>,
) {
    let mut mine = Vec::new();
    while let Some(message) = subscriber.next().await {
        if done.load(Ordering::Relaxed) {
            break;
        }
        let at = now_ns();
        let sent: u64 = std::str::from_utf8(&message.payload[..20])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(at);
        mine.push(at.saturating_sub(sent));
        received.fetch_add(1, Ordering::Relaxed);
    }
    samples.lock().unwrap().extend(mine);
}

// ---------------------------------------------------------------------------------------------
// TCP buffers

/// Bytes waiting in TCP buffers of the WebSocket connections at their worst: unread in the
/// clients' receive buffers, and unsent in the server's send buffers.
#[derive(Default)]
struct Queues {
    client_unread: u64,
    server_unsent: u64,
}

/// Samples `/proc/net/tcp` every 200 ms while `running`: connections to and from `port`.
async fn sample_queues(port: u16, running: Arc<AtomicBool>) -> Queues {
    let mut worst = Queues::default();
    while running.load(Ordering::Relaxed) {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        let (mut unread, mut unsent) = (0, 0);
        for line in table.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let port_of = |address: &str| {
                let hex = address.rsplit(':').next().unwrap_or_default();
                u16::from_str_radix(hex, 16).unwrap_or(0)
            };
            let (Some(local), Some(remote), Some(queues)) =
                (fields.get(1), fields.get(2), fields.get(4))
            else {
                continue;
            };
            let (tx, rx) = queues.split_once(':').unwrap_or_default();
            let tx = u64::from_str_radix(tx, 16).unwrap_or(0);
            let rx = u64::from_str_radix(rx, 16).unwrap_or(0);
            if port_of(local) == port {
                unsent += tx;
            } else if port_of(remote) == port {
                unread += rx;
            }
        }
        worst.client_unread = worst.client_unread.max(unread);
        worst.server_unsent = worst.server_unsent.max(unsent);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    worst
}

// ---------------------------------------------------------------------------------------------
// Output

fn print_latency_table(phases: &[Phase], fanouts: &[(Stats, Cpu)]) {
    println!("| measurement | ours | raw baseline | ratio |");
    println!("|---|---|---|---|");
    for (phase, (fanout, _)) in phases.iter().zip(fanouts) {
        let rate = phase.rate;
        let mut ours = phase.pushes.samples.clone();
        let mut stream = phase.stream.samples.clone();
        let mut raw = fanout.samples.clone();
        let what = format!("command → push to 1,000 clients at {rate} commands/s");
        for (label, p) in [("p50", 0.5), ("p99", 0.99)] {
            let a = percentile(&mut ours, p);
            let b = percentile(&mut stream, p);
            let c = percentile(&mut raw, p);
            println!(
                "| {what}, {label} (ms) | {a:.1} | {b:.1} (command → JetStream, 1 consumer) | {:.1}× |",
                a / b
            );
            println!(
                "| {what}, {label} (ms) | {a:.1} | {c:.1} (core NATS → 1,000 connections) | {:.1}× |",
                a / c
            );
        }
        let (a, b, c) = (max_ms(&ours), max_ms(&stream), max_ms(&raw));
        println!("| {what}, max (ms) | {a:.1} | {b:.1} (JetStream) / {c:.1} (core NATS) | |");
    }
}

/// Resident memory of the server: idle, with the clients connected, after each phase, peak.
fn print_memory_table(phases: &[Phase], [idle, connected, peak]: [f64; 3]) {
    println!();
    println!("| server RSS (MB) | value |");
    println!("|---|---|");
    println!("| idle, after start-up | {idle:.1} |");
    println!("| 1,000 idle WebSocket connections, subscribed | {connected:.1} |");
    for phase in phases {
        println!(
            "| end of {} commands/s | {:.1} |",
            phase.rate, phase.rss_end
        );
    }
    println!("| peak (VmHWM) | {peak:.1} |");
    println!();
}

fn print_delivery_table(phases: &[Phase]) {
    println!();
    println!(
        "| rate (commands/s) | answered/s | command p50 / p99 (ms) | errors | late follow-ups | \
         (client, update) pushes | missing | lost to resync | resyncs | push before response |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for phase in phases {
        let driven = &phase.driven;
        let mut times: Vec<u64> = driven.answers.iter().map(|a| a.answered - a.sent).collect();
        let first = driven.answers.iter().map(|a| a.sent).min().unwrap_or(0);
        let last = driven.answers.iter().map(|a| a.answered).max().unwrap_or(0);
        let answered = driven.answers.len() as f64 / ((last - first) as f64 / 1e9);
        let mut resyncs: Vec<String> = phase
            .resyncs
            .iter()
            .map(|(reason, n)| format!("{n} \"{reason}\""))
            .collect();
        resyncs.sort();
        let pushes = &phase.pushes;
        println!(
            "| {} | {answered:.0} | {:.1} / {:.1} | {} failed, {} not sent | {} | {} | {} | {} | {} ({} clients) | {} |",
            phase.rate,
            percentile(&mut times, 0.5),
            percentile(&mut times, 0.99),
            driven.failed,
            driven.skipped,
            driven.late,
            pushes.samples.len(),
            pushes.missing,
            pushes.lost_to_resync,
            if resyncs.is_empty() {
                "0".into()
            } else {
                resyncs.join(", ")
            },
            pushes.resynced_clients,
            pushes.early,
        );
    }
}

/// Where the CPU went in each run, and whether bytes waited in TCP buffers (slow readers).
fn print_cpu_table(phases: &[Phase], fanouts: &[(Stats, Cpu)]) {
    println!();
    println!(
        "| run | CPU cores: server (of it kernel) / benchmark / Postgres / nats-server / others | \
         host busy | worst unread in clients / unsent in server (KiB) | largest burst on the bus \
         (events in 100 ms) | missing on the baseline |"
    );
    println!("|---|---|---|---|---|---|");
    let cores = std::thread::available_parallelism().map_or(2.0, |n| n.get() as f64);
    for (phase, (fanout, fanout_cpu)) in phases.iter().zip(fanouts) {
        let cpu = &phase.cpu;
        println!(
            "| ours, {} commands/s | {:.2} ({:.2}) / {:.2} / {:.2} / {:.2} / {:.2} | {:.0} % | {} / {} | {} | JetStream: {} |",
            phase.rate,
            cpu.server,
            cpu.server_system,
            cpu.bench,
            cpu.postgres,
            cpu.nats,
            cpu.others(cores),
            cpu.host * 100.0,
            phase.queues.client_unread / 1024,
            phase.queues.server_unsent / 1024,
            phase.burst,
            phase.stream.missing,
        );
        let cpu = fanout_cpu;
        println!(
            "| core NATS, {} msg/s | – / {:.2} / – / {:.2} / {:.2} | {:.0} % | | | core NATS: {} |",
            phase.rate,
            cpu.bench,
            cpu.nats,
            cpu.others(cores),
            cpu.host * 100.0,
            fanout.missing,
        );
    }
}

//! `helpdesk-load`: the load generator of issue 9. Drives the real HTTP and WebSocket APIs of
//! one `helpdesk up` with the helpdesk's command mix (one open to four follow-ups: status,
//! reply, assignment, tags; many tickets at once), open-loop at a rate or closed-loop at a
//! concurrency, and reports per command p50/p90/p99/max (open loop: from the intended send
//! time, so a slow server cannot hide behind a slow sender), the achieved rate, failures by
//! status, command response → WebSocket push and → searchable latencies, and the resident
//! memory of the server over the run.
//!
//! ```sh
//! cargo build --release -p helpdesk -p helpdesk-tests
//! # start a product of its own (the release `helpdesk` beside this binary), 100 commands/s:
//! helpdesk-load --mode open --rate 100 --duration 10s --ws-clients 5 --search-probe 0.1
//! helpdesk-load --mode closed --concurrency 16 --duration 60s --json closed.json
//! # drive one that runs already (its token secret; --pid to follow its memory):
//! helpdesk-load --url http://127.0.0.1:8080 --secret "$HELPDESK_JWT_SECRET" --rate 500
//! # the raw JetStream baseline, and the docs section of a `bench/perf.sh` results folder:
//! helpdesk-load baseline-jetstream --json jetstream.json
//! helpdesk-load report --dir /tmp/perf-results
//! ```
//!
//! Postgres and NATS as for the tests (`HELPDESK_TEST_DATABASE_URL`, `NATS_URL`). Markdown goes
//! to standard output, diagnostics to standard error.

#![allow(clippy::print_stdout)] // a benchmark tool: its tables are its output

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use helpdesk_tests::load::jetstream;
use helpdesk_tests::load::run::{Mode, Settings, Target, run};
use helpdesk_tests::load::section::{Machine, Results, render};

#[derive(Parser)]
#[command(
    name = "helpdesk-load",
    about = "Load generator for the helpdesk's HTTP and WebSocket APIs"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    load: LoadArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Raw JetStream baseline: publish and consume rates, publish → consume latency.
    BaselineJetstream {
        /// Messages published, then consumed.
        #[arg(long, default_value_t = 50_000)]
        messages: u64,
        /// Rate of the latency run (messages/s).
        #[arg(long, default_value_t = 1_000.0)]
        latency_rate: f64,
        /// Length of the latency run (`10s`, `1m`).
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        latency_for: Duration,
        /// Write the figures here as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Print the generated part of docs/benchmarks.md from a `bench/perf.sh` results folder.
    Report {
        /// The folder holding pgbench.json, jetstream.json and the runs' JSON.
        #[arg(long)]
        dir: PathBuf,
        /// A file with the commands that produced the results (shown in the section).
        #[arg(long)]
        commands: Option<PathBuf>,
        /// What was measured, e.g. `b9f90d9 + uncommitted changes`.
        #[arg(long, default_value = "")]
        commit: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LoopKind {
    Open,
    Closed,
}

#[derive(Args)]
struct LoadArgs {
    /// Drive the product at this URL (default: start the release `helpdesk up` beside this
    /// binary on a scratch database, and remove it afterwards).
    #[arg(long)]
    url: Option<String>,
    /// The HS256 secret the product at --url trusts (tokens are minted with it).
    #[arg(long, env = "HELPDESK_JWT_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// With --url: the server's process id, to follow its memory and CPU.
    #[arg(long)]
    pid: Option<u32>,
    /// With --url: the server's `HELPDESK_NATS_PREFIX`, to time its events' arrival on the
    /// events stream beside the WebSocket pushes.
    #[arg(long)]
    nats_prefix: Option<String>,
    /// `open`: a fixed rate whatever the answers; `closed`: workers that wait for answers.
    #[arg(long, value_enum, default_value = "open")]
    mode: LoopKind,
    /// Open loop: commands per second.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Closed loop: workers.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// How long to send commands (`60`, `60s`, `10m`).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// WebSocket clients following every ticket (response → push latency).
    #[arg(long, default_value_t = 0)]
    ws_clients: usize,
    /// Share of opens whose unique subject word is searched for until found (0–1).
    #[arg(long, default_value_t = 0.0)]
    search_probe: f64,
    /// Create an SLA policy measuring every ticket (24×7, first reply, next reply and
    /// resolution, targets far beyond the run) before the load starts, so the SLA projection
    /// does its full work: activations, metric rows, report counts and SLA events.
    #[arg(long)]
    sla_policy: bool,
    /// Open loop: requests in flight at most (later ones wait, and their wait counts).
    #[arg(long, default_value_t = 10_000)]
    max_in_flight: usize,
    /// Extra environment for the `helpdesk up` it starts (`NAME=value`, repeatable).
    #[arg(long = "server-env", value_parser = parse_env)]
    server_env: Vec<(String, String)>,
    /// The run's name in reports (default `open-<rate>` or `closed-<concurrency>`).
    #[arg(long)]
    label: Option<String>,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the Markdown here instead of standard output.
    #[arg(long)]
    markdown: Option<PathBuf>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("not a duration: {text}"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("unknown unit in {text}: use ms, s, m or h")),
    };
    Ok(Duration::from_secs_f64(seconds))
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected NAME=value, got {text}"))
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let outcome = match cli.command {
        None => load(cli.load).await,
        Some(Command::BaselineJetstream {
            messages,
            latency_rate,
            latency_for,
            json,
        }) => baseline_jetstream(messages, latency_rate, latency_for, json).await,
        Some(Command::Report {
            dir,
            commands,
            commit,
        }) => report(&dir, commands, &commit).await,
    };
    if let Err(error) = outcome {
        eprintln!("helpdesk-load: {error}");
        std::process::exit(1);
    }
}

async fn load(args: LoadArgs) -> Result<(), String> {
    if !(0.0..=1.0).contains(&args.search_probe) {
        return Err("--search-probe is a share of opens, 0 to 1".into());
    }
    let target = match args.url {
        Some(url) => Target::Attach {
            url,
            secret: args
                .secret
                .ok_or("--url needs --secret (or HELPDESK_JWT_SECRET)")?,
            pid: args.pid,
            prefix: args.nats_prefix,
        },
        None => Target::Start {
            env: args.server_env,
        },
    };
    let (mode, label) = match args.mode {
        LoopKind::Open if args.rate > 0.0 => (
            Mode::Open { rate: args.rate },
            format!("open-{:.0}", args.rate),
        ),
        LoopKind::Closed if args.concurrency > 0 => (
            Mode::Closed {
                concurrency: args.concurrency,
            },
            format!("closed-{}", args.concurrency),
        ),
        _ => return Err("--rate and --concurrency must be above 0".into()),
    };
    let needed = 256 + 2 * args.ws_clients as u64 + args.max_in_flight.min(4_096) as u64;
    helpdesk_tests::load::server::require_open_files(needed, "the connections of this run");
    let settings = Settings {
        label: args.label.unwrap_or(label),
        command: command_line(),
        target,
        mode,
        duration: args.duration,
        ws_clients: args.ws_clients,
        search_probe: args.search_probe,
        sla_policy: args.sla_policy,
        max_in_flight: args.max_in_flight.max(1),
    };
    let report = run(settings).await;
    if let Some(path) = args.json {
        let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(&path, json).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let markdown = report.markdown();
    match args.markdown {
        Some(path) => {
            std::fs::write(&path, markdown).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => print!("{markdown}"),
    }
    Ok(())
}

/// This process's command line, with the program's path shortened to its name.
fn command_line() -> String {
    let mut args: Vec<String> = std::env::args().collect();
    if let Some(first) = args.first_mut() {
        *first = "helpdesk-load".into();
    }
    args.join(" ")
}

async fn baseline_jetstream(
    messages: u64,
    latency_rate: f64,
    latency_for: Duration,
    json: Option<PathBuf>,
) -> Result<(), String> {
    helpdesk_tests::load::now_ns();
    let figures = jetstream::baseline(
        &helpdesk_tests::nats_url(),
        messages,
        latency_rate,
        latency_for,
    )
    .await?;
    let text = serde_json::to_string_pretty(&figures).map_err(|e| e.to_string())?;
    match json {
        Some(path) => {
            std::fs::write(&path, &text).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => println!("{text}"),
    }
    Ok(())
}

async fn report(
    dir: &std::path::Path,
    commands: Option<PathBuf>,
    commit: &str,
) -> Result<(), String> {
    let results = Results::read(dir)?;
    let commands = match commands {
        Some(path) => {
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => String::new(),
    };
    let machine = Machine {
        description: machine(commit).await,
    };
    let date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string();
    print!("{}", render(&results, &machine, &date, &commands));
    Ok(())
}

/// Cores, CPU, memory, OS, Postgres and nats-server versions, and what was built.
async fn machine(commit: &str) -> String {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory_gib = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0 / 1024.0);
    let os = read("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|l| l.trim_matches('"').to_owned())
        .unwrap_or_default();
    let kernel = read("/proc/sys/kernel/osrelease").trim().to_owned();
    let postgres = postgres_version().await;
    let nats = match async_nats::connect(helpdesk_tests::nats_url()).await {
        Ok(client) => client.server_info().version,
        Err(_) => "?".into(),
    };
    let mut text = format!(
        "{cores} cores ({model}), {memory_gib:.0} GiB, {os} (Linux {kernel}), PostgreSQL {postgres}, \
         nats-server {nats}; Postgres, NATS, the server and the load \
         generator all on this one host"
    );
    if !commit.is_empty() {
        text.push_str(&format!("; server built from {commit}"));
    }
    text
}

/// The server's version and, of the settings that shape these figures, those that differ from
/// Postgres's built-in defaults (`15.20 (autovacuum off, shared_buffers 128MB)`).
async fn postgres_version() -> String {
    const SETTINGS: &[&str] = &[
        "autovacuum",
        "fsync",
        "synchronous_commit",
        "full_page_writes",
        "commit_delay",
        "wal_level",
        "shared_buffers",
        "max_wal_size",
        "checkpoint_timeout",
        "work_mem",
        "jit",
    ];
    let url = helpdesk_platform::Secret::new(helpdesk_tests::postgres_server_url());
    let Ok(pool) = helpdesk_platform::db::connect(&url, 1).await else {
        return "?".into();
    };
    let version: Result<String, _> = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&pool)
        .await;
    let changed: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, current_setting(name) FROM pg_settings \
          WHERE name = ANY($1) AND setting IS DISTINCT FROM boot_val ORDER BY name",
    )
    .bind(SETTINGS)
    .fetch_all(&pool)
    .await
    .unwrap_or_default();
    pool.close().await;
    let version = version
        .map(|v| v.split_whitespace().next().unwrap_or_default().to_owned())
        .unwrap_or_else(|_| "?".into());
    let settings = match changed.is_empty() {
        true => "built-in defaults".to_owned(),
        false => changed
            .iter()
            .map(|(name, value)| format!("{name} {value}"))
            .collect::<Vec<_>>()
            .join(", "),
    };
    format!("{version} ({settings})")
}

//! The generated part of the "Load (issue 9)" section of `docs/benchmarks.md`: machine, date,
//! commands, and the results of one `bench/perf.sh` run with every figure beside the baseline
//! measured in the same run and their ratio. Reads the JSON files the run left in its results
//! folder:
//!
//! - `pgbench.json` (written by `bench/baselines.sh`): the read-then-insert baseline;
//! - `jetstream.json` (`helpdesk-load baseline-jetstream`): the raw JetStream baseline;
//! - `closed.json`, `open-2000.json`, `open-1000.json` and, with `--long`, `long.json`
//!   (`helpdesk-load --json`): the load phases.

use std::fmt::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::jetstream::JetStreamReport;
use super::report::{RunReport, ms};
use super::stats::Latency;

/// What `bench/baselines.sh` measured with pgbench.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PgbenchReport {
    /// The pgbench command line.
    pub command: String,
    pub clients: usize,
    pub duration_s: f64,
    /// Commands (pgbench transactions: one command's SQL each) per second.
    pub tps: f64,
    pub transactions: u64,
    pub failed: u64,
    /// Per command, from pgbench's transaction log.
    pub latency: Latency,
    /// What the script does besides postgres-es's own statements.
    pub includes: String,
}

/// Everything one `bench/perf.sh` run left behind.
pub struct Results {
    pub pgbench: PgbenchReport,
    pub jetstream: JetStreamReport,
    /// Closed loop at the pgbench concurrency (`closed.json`).
    pub closed: Option<RunReport>,
    /// Open loop at the sustained-rate target (`open-2000.json`).
    pub sustained: Option<RunReport>,
    /// Open loop with WebSocket clients and the search probe (`open-1000.json`).
    pub end_to_end: Option<RunReport>,
    /// The ten-minute memory run (`long.json`, with `--long`).
    pub long: Option<RunReport>,
}

fn read<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn read_run(dir: &Path, name: &str) -> Result<Option<RunReport>, String> {
    let path = dir.join(format!("{name}.json"));
    if !path.exists() {
        return Ok(None);
    }
    read(&path).map(Some)
}

impl Results {
    /// Reads a results folder.
    pub fn read(dir: &Path) -> Result<Results, String> {
        Ok(Results {
            pgbench: read(&dir.join("pgbench.json"))?,
            jetstream: read(&dir.join("jetstream.json"))?,
            closed: read_run(dir, "closed")?,
            sustained: read_run(dir, "open-2000")?,
            end_to_end: read_run(dir, "open-1000")?,
            long: read_run(dir, "long")?,
        })
    }

    /// The runs, in the order they ran.
    pub fn runs(&self) -> impl Iterator<Item = &RunReport> {
        [&self.closed, &self.sustained, &self.end_to_end, &self.long]
            .into_iter()
            .flatten()
    }
}

/// The host, as the section's first line describes it.
pub struct Machine {
    pub description: String,
}

/// A ratio with two decimals (`–` when either side is missing).
fn ratio(ours: f64, baseline: f64) -> String {
    let r = ours / baseline;
    if r.is_finite() {
        format!("{r:.2}")
    } else {
        "–".into()
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

/// The verdict of a latency target "at `rate`": a run that did not answer that rate (or
/// failed commands) misses it whatever its latencies. Queued behind an overloaded server, the
/// commands' responses arrive late and a push or a search can beat them, which would
/// otherwise read as a latency of zero.
fn verdict_at_rate(met: bool, rate: f64, answered_per_s: f64, failed: u64) -> String {
    if answered_per_s < 0.99 * rate || failed > 0 {
        format!(
            "**missed** ({rate:.0}/s not sustained: {answered_per_s:.0}/s answered, {failed} failed)"
        )
    } else {
        verdict(met).to_owned()
    }
}

/// The Markdown between the `perf:begin` and `perf:end` markers.
pub fn render(results: &Results, machine: &Machine, date: &str, commands: &str) -> String {
    let mut out = String::new();
    writeln!(
        out,
        "_Written by `bench/perf.sh` on {date}; do not edit by hand (run it again)._"
    )
    .ok();
    writeln!(out).ok();
    writeln!(out, "Machine: {}.", machine.description).ok();
    writeln!(out).ok();
    writeln!(out, "Commands (as run by `bench/perf.sh`):").ok();
    writeln!(out).ok();
    writeln!(out, "```sh\n{}\n```", commands.trim_end()).ok();
    writeln!(out).ok();
    out.push_str(&summary_table(results));
    for run in results.runs() {
        writeln!(out).ok();
        writeln!(out, "#### {}", run.label).ok();
        writeln!(out).ok();
        out.push_str(&run.markdown());
    }
    writeln!(out).ok();
    writeln!(out, "#### Baselines").ok();
    writeln!(out).ok();
    let pg = &results.pgbench;
    writeln!(
        out,
        "pgbench, {} clients for {:.0} s: {:.0} commands/s, {} transactions, {} failed; per command p50 / p90 / p99 / max {} / {} / {} / {} ms. Script: {}.",
        pg.clients,
        pg.duration_s,
        pg.tps,
        pg.transactions,
        pg.failed,
        ms(pg.latency.p50_ms),
        ms(pg.latency.p90_ms),
        ms(pg.latency.p99_ms),
        ms(pg.latency.max_ms),
        pg.includes
    )
    .ok();
    writeln!(out).ok();
    let js = &results.jetstream;
    writeln!(
        out,
        "JetStream, {} messages of {} bytes: published {:.0}/s (message ids, acks awaited per 256), consumed {:.0}/s (durable pull consumer, explicit acks); publish → ordered consumer at {:.0}/s p50 / p90 / p99 / max {} / {} / {} / {} ms.",
        js.messages,
        js.payload_bytes,
        js.publish_per_s,
        js.consume_per_s,
        js.latency_rate,
        ms(js.latency.p50_ms),
        ms(js.latency.p90_ms),
        ms(js.latency.p99_ms),
        ms(js.latency.max_ms)
    )
    .ok();
    out
}

fn summary_table(results: &Results) -> String {
    let mut out = String::new();
    let pg = &results.pgbench;
    let js = &results.jetstream;
    let pg_rate = format!("{:.0} (pgbench, {} clients)", pg.tps, pg.clients);
    writeln!(
        out,
        "| measurement | ours | raw baseline (same run) | ratio | target |"
    )
    .ok();
    writeln!(out, "|---|---|---|---|---|").ok();
    if let Some(run) = &results.closed {
        let c = &run.commands;
        let workers = run.concurrency.unwrap_or(0);
        let share = c.achieved_per_s / pg.tps;
        writeln!(
            out,
            "| commands/s through the HTTP API, closed loop, {workers} workers | {:.0} | {pg_rate} | {} | ≥ 0.50, {} |",
            c.achieved_per_s,
            ratio(c.achieved_per_s, pg.tps),
            verdict(share >= 0.5)
        )
        .ok();
        writeln!(
            out,
            "| failed commands, closed loop | {} | {} (pgbench failed) | | 0, {} |",
            c.failed,
            pg.failed,
            verdict(c.failed == 0)
        )
        .ok();
        latency_rows(
            &mut out,
            "command latency, closed loop",
            c.all().map(|a| a.latency),
            &pg.latency,
            "pgbench, per command",
            None,
        );
    }
    if let Some(run) = &results.sustained {
        let c = &run.commands;
        let rate = run.rate.unwrap_or(f64::NAN);
        let p99 = c.all().map_or(f64::NAN, |a| a.latency.p99_ms);
        writeln!(
            out,
            "| commands/s sustained, open loop at {rate:.0}/s for {:.0} s | {:.0} | {pg_rate} | {} | ≥ {rate:.0} with 0 failed, {} |",
            run.duration_s,
            c.achieved_per_s,
            ratio(c.achieved_per_s, pg.tps),
            verdict(c.achieved_per_s >= 0.99 * rate && c.failed == 0)
        )
        .ok();
        latency_rows(
            &mut out,
            &format!("command latency, open loop {rate:.0}/s"),
            c.all().map(|a| a.latency),
            &pg.latency,
            "pgbench, per command",
            Some(format!("p99 ≤ 50, {}", verdict(p99 <= 50.0))),
        );
    }
    if let Some(run) = &results.end_to_end {
        let rate = run.rate.unwrap_or(f64::NAN);
        let at_rate =
            |met| verdict_at_rate(met, rate, run.commands.achieved_per_s, run.commands.failed);
        let bus = format!("JetStream publish → consume at {:.0}/s", js.latency_rate);
        if let Some(p) = &run.pushes {
            latency_rows(
                &mut out,
                &format!(
                    "command response → WebSocket push, {} clients, {rate:.0}/s",
                    p.clients
                ),
                Some(p.latency),
                &js.latency,
                &bus,
                Some(format!(
                    "p99 ≤ 50, {}",
                    at_rate(p.latency.p99_ms <= 50.0 && p.missing == 0)
                )),
            );
        }
        if let Some(s) = &run.stream {
            latency_rows(
                &mut out,
                &format!(
                    "command response → on the events stream (the relay's share of both), {rate:.0}/s"
                ),
                Some(s.latency),
                &js.latency,
                &bus,
                None,
            );
        }
        if let Some(s) = &run.searchable {
            latency_rows(
                &mut out,
                &format!("command response → searchable, {rate:.0}/s"),
                Some(s.latency),
                &js.latency,
                &bus,
                Some(format!(
                    "p99 ≤ 1,000, {}",
                    at_rate(s.latency.p99_ms <= 1_000.0 && s.not_found == 0)
                )),
            );
        }
    }
    memory_rows(&mut out, results);
    out
}

/// p50 and p99 rows of `ours` against `baseline`.
fn latency_rows(
    out: &mut String,
    what: &str,
    ours: Option<Latency>,
    baseline: &Latency,
    baseline_name: &str,
    target: Option<String>,
) {
    let Some(ours) = ours else { return };
    for (label, a, b) in [
        ("p50", ours.p50_ms, baseline.p50_ms),
        ("p99", ours.p99_ms, baseline.p99_ms),
    ] {
        let target = if label == "p99" {
            target.clone().unwrap_or_default()
        } else {
            String::new()
        };
        writeln!(
            out,
            "| {what}, {label} (ms) | {} | {} ({baseline_name}) | {}× | {target} |",
            ms(a),
            ms(b),
            ratio(a, b)
        )
        .ok();
    }
}

/// Memory: the last window's RSS over the first's, per process, of the longest run.
fn memory_rows(out: &mut String, results: &Results) {
    let Some(run) = results
        .runs()
        .max_by(|a, b| a.duration_s.total_cmp(&b.duration_s))
    else {
        return;
    };
    let long = run.duration_s >= 300.0;
    for series in &run.rss {
        let growth = series.growth();
        let target = if long {
            format!("flat (≤ 1.10), {}", verdict(growth <= 1.10))
        } else {
            "flat over 10 minutes: run with `--long`".to_owned()
        };
        writeln!(
            out,
            "| RSS of {} over {} ({:.0} s windows), last / first (MB) | {} | {} (first window) | {:.2} | {target} |",
            series.process,
            run.label,
            series.window_s,
            ms(series.last_window_mb),
            ms(series.first_window_mb),
            growth,
        )
        .ok();
        writeln!(
            out,
            "| anonymous part of it (heap, not mapped files), last / first (MB) | {} | {} (first window) | {:.2} | what grows: the rest is mapped files |",
            ms(series.anon_last_window_mb),
            ms(series.anon_first_window_mb),
            series.anon_growth(),
        )
        .ok();
    }
}

#[cfg(test)]
mod tests {
    use super::verdict_at_rate;

    #[test]
    fn a_latency_target_at_a_rate_is_missed_when_the_rate_was_not_answered() {
        assert_eq!(verdict_at_rate(true, 1000.0, 995.0, 0), "met");
        assert_eq!(verdict_at_rate(false, 1000.0, 995.0, 0), "**missed**");
        assert_eq!(
            verdict_at_rate(true, 1000.0, 607.0, 0),
            "**missed** (1000/s not sustained: 607/s answered, 0 failed)"
        );
        assert_eq!(
            verdict_at_rate(true, 1000.0, 1000.0, 3),
            "**missed** (1000/s not sustained: 1000/s answered, 3 failed)"
        );
    }
}

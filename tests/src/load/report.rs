//! What one load run reports, as JSON (for `bench/perf.sh` and later comparison) and as
//! Markdown tables (for a person).

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::{Deserialize, Serialize};

use super::probe::ProbeReport;
use super::process::{Cpu, RssSeries};
use super::record::CommandsReport;
use super::stats::Latency;
use super::ws::PushReport;

/// Everything one run of `helpdesk-load` measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    /// A name for the run (`closed-16`, `open-2000`).
    pub label: String,
    /// The command line that ran it.
    pub command: String,
    /// When it started (RFC 3339, UTC).
    pub started_at: String,
    /// `open` or `closed`.
    pub mode: String,
    /// Target commands a second (open loop).
    pub rate: Option<f64>,
    /// Workers (closed loop).
    pub concurrency: Option<usize>,
    pub duration_s: f64,
    /// Whether it drove a product that was already running (else it started its own).
    pub attached: bool,
    pub commands: CommandsReport,
    pub pushes: Option<PushReport>,
    /// Command response → the event on the events stream (one ordered consumer), measured
    /// beside the WebSocket clients: the relay's share of their latency.
    #[serde(default)]
    pub stream: Option<PushReport>,
    pub searchable: Option<ProbeReport>,
    /// Resident memory of the server, the broker and the load generator over the run.
    pub rss: Vec<RssSeries>,
    /// Cores used during the run, per party.
    pub cpu: Cpu,
    pub cores: usize,
    /// How far the server's pipeline was behind when the load stopped.
    #[serde(default)]
    pub backlog: Option<Backlog>,
    /// The most it was behind in any of the scrapes taken while the load ran and at its end
    /// (each figure the largest of its own, so they need not come from one scrape).
    #[serde(default)]
    pub most_behind: Option<Backlog>,
}

/// The server's pipeline as the load stopped, from its `/metrics`: whether the read models
/// kept up with the commands, or only the command path did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Backlog {
    /// Events each projection's consumer had not acknowledged, by projection.
    pub projections: BTreeMap<String, i64>,
    /// Events committed and not yet published by the relay.
    pub relay: Option<i64>,
    /// Messages of the events stream the real-time feed had not handled.
    pub realtime: Option<i64>,
    /// Tickets the real-time feed had read from the store since start-up (summary-cache misses).
    pub summary_reads: Option<i64>,
}

impl Backlog {
    /// The backlog in a Prometheus text exposition; `None` when it holds none of its metrics.
    pub fn from_metrics(text: &str) -> Option<Backlog> {
        let mut backlog = Backlog::default();
        for line in text.lines() {
            let Some((name, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<i64>() else {
                continue;
            };
            if let Some(labels) = name.strip_prefix("helpdesk_projection_pending_events{") {
                let projection = labels
                    .trim_start_matches("projection=\"")
                    .trim_end_matches("\"}");
                backlog.projections.insert(projection.to_owned(), value);
            }
            match name {
                "helpdesk_relay_lag_events" => backlog.relay = Some(value),
                "helpdesk_realtime_lag" => backlog.realtime = Some(value),
                "helpdesk_realtime_summary_reads" => backlog.summary_reads = Some(value),
                _ => {}
            }
        }
        (backlog != Backlog::default()).then_some(backlog)
    }

    /// Takes the larger of each figure of `self` and `other`.
    pub fn keep_largest(&mut self, other: &Backlog) {
        for (name, pending) in &other.projections {
            let kept = self.projections.entry(name.clone()).or_insert(*pending);
            *kept = (*kept).max(*pending);
        }
        let larger = |a: Option<i64>, b: Option<i64>| a.max(b);
        self.relay = larger(self.relay, other.relay);
        self.realtime = larger(self.realtime, other.realtime);
        self.summary_reads = larger(self.summary_reads, other.summary_reads);
    }

    /// One sentence for the report, beginning with `lead`.
    fn sentence(&self, lead: &str) -> String {
        let figure = |value: Option<i64>| value.map_or_else(|| "–".to_owned(), |v| v.to_string());
        let projections: Vec<String> = self
            .projections
            .iter()
            .map(|(name, pending)| format!("{name} {pending}"))
            .collect();
        format!(
            "{lead}: projections {} events; relay {} events; real-time feed {} messages ({} \
             summary reads since start-up).",
            if projections.is_empty() {
                "–".to_owned()
            } else {
                projections.join(", ")
            },
            figure(self.relay),
            figure(self.realtime),
            figure(self.summary_reads)
        )
    }
}

/// `x.y` with one decimal, `–` for a figure that was not measured.
pub fn ms(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.1}")
    } else {
        "–".into()
    }
}

/// p50 / p90 / p99 / max in ms.
pub fn percentiles(latency: &Latency) -> String {
    format!(
        "{} / {} / {} / {}",
        ms(latency.p50_ms),
        ms(latency.p90_ms),
        ms(latency.p99_ms),
        ms(latency.max_ms)
    )
}

impl RunReport {
    /// How the load was shaped, in words.
    pub fn shape(&self) -> String {
        let mut shape = match (self.mode.as_str(), self.rate, self.concurrency) {
            ("open", Some(rate), _) => format!("open loop, {rate:.0} commands/s"),
            (_, _, Some(concurrency)) => format!("closed loop, {concurrency} workers"),
            _ => self.mode.clone(),
        };
        write!(shape, ", {:.0} s", self.duration_s).ok();
        if let Some(pushes) = &self.pushes {
            write!(shape, ", {} WebSocket clients", pushes.clients).ok();
        }
        if let Some(probe) = &self.searchable {
            write!(
                shape,
                ", search probe on {:.0} % of opens",
                probe.fraction * 100.0
            )
            .ok();
        }
        shape
    }

    /// The run as Markdown: a summary line and tables.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let c = &self.commands;
        writeln!(
            out,
            "**{}** ({}), started {}",
            self.label,
            self.shape(),
            self.started_at
        )
        .ok();
        writeln!(out).ok();
        write!(
            out,
            "Answered 2xx: {} commands, {:.0}/s; failed: {}",
            c.ok, c.achieved_per_s, c.failed
        )
        .ok();
        if self.mode == "open" {
            write!(
                out,
                "; late follow-ups: {}; sent behind schedule p50 / p99 / max: {} / {} / {} ms",
                c.late_follow_ups,
                ms(c.send_delay.p50_ms),
                ms(c.send_delay.p99_ms),
                ms(c.send_delay.max_ms)
            )
            .ok();
        }
        writeln!(out, ".").ok();
        writeln!(out).ok();
        out.push_str(&self.commands_table());
        if !c.failures.is_empty() {
            writeln!(out).ok();
            writeln!(out, "| failed command | count |").ok();
            writeln!(out, "|---|---|").ok();
            for (what, n) in &c.failures {
                writeln!(out, "| {what} | {n} |").ok();
            }
        }
        writeln!(out).ok();
        out.push_str(&self.observations_table());
        if let Some(most) = &self.most_behind {
            writeln!(out).ok();
            let lead = "Most behind while the load ran (scraped every 5 s and at the end)";
            writeln!(out, "{}", most.sentence(lead)).ok();
        }
        if let Some(backlog) = &self.backlog {
            writeln!(out).ok();
            writeln!(out, "{}", backlog.sentence("Behind when the load stopped")).ok();
        }
        writeln!(out).ok();
        out.push_str(&self.resources_table());
        out
    }

    fn commands_table(&self) -> String {
        let mut out = String::new();
        writeln!(
            out,
            "| command | answered 2xx | failed | latency from intended send p50 / p90 / p99 / max (ms) | service time p50 / p99 (ms) |"
        )
        .ok();
        writeln!(out, "|---|---|---|---|---|").ok();
        for kind in &self.commands.kinds {
            writeln!(
                out,
                "| {} | {} | {} | {} | {} / {} |",
                kind.kind,
                kind.ok,
                kind.failed,
                percentiles(&kind.latency),
                ms(kind.service.p50_ms),
                ms(kind.service.p99_ms),
            )
            .ok();
        }
        out
    }

    fn observations_table(&self) -> String {
        let mut out = String::new();
        if self.pushes.is_none() && self.searchable.is_none() {
            return out;
        }
        writeln!(
            out,
            "| end to end | samples | p50 / p90 / p99 / max (ms) | notes |"
        )
        .ok();
        writeln!(out, "|---|---|---|---|").ok();
        if let Some(p) = &self.pushes {
            writeln!(
                out,
                "| command response → WebSocket push ({} clients) | {} | {} | {} before the response, {} missing, {} unmatched, {} resyncs, {} drops |",
                p.clients,
                p.latency.count,
                percentiles(&p.latency),
                p.before_response,
                p.missing,
                p.unmatched,
                p.resyncs,
                p.drops
            )
            .ok();
        }
        if let Some(p) = &self.stream {
            writeln!(
                out,
                "| command response → on the events stream (one JetStream ordered consumer) | {} | {} | {} before the response, {} missing, {} unmatched |",
                p.latency.count,
                percentiles(&p.latency),
                p.before_response,
                p.missing,
                p.unmatched
            )
            .ok();
        }
        if let Some(s) = &self.searchable {
            writeln!(
                out,
                "| command response → found by search ({} probes) | {} | {} | {} not found in 30 s, {} empty answers, {} failed searches |",
                s.probes,
                s.latency.count,
                percentiles(&s.latency),
                s.not_found,
                s.empty_answers,
                s.failed_searches
            )
            .ok();
        }
        out
    }

    fn resources_table(&self) -> String {
        let mut out = String::new();
        writeln!(
            out,
            "| process | RSS first window (MB) | RSS last window (MB) | last / first | anonymous first / last (MB) | anonymous last / first | peak (MB) | window (s) |"
        )
        .ok();
        writeln!(out, "|---|---|---|---|---|---|---|---|").ok();
        for series in &self.rss {
            writeln!(
                out,
                "| {} | {} | {} | {:.2} | {} / {} | {:.2} | {} | {:.0} |",
                series.process,
                ms(series.first_window_mb),
                ms(series.last_window_mb),
                series.growth(),
                ms(series.anon_first_window_mb),
                ms(series.anon_last_window_mb),
                series.anon_growth(),
                ms(series.peak_mb),
                series.window_s
            )
            .ok();
        }
        let cpu = &self.cpu;
        writeln!(out).ok();
        writeln!(
            out,
            "CPU cores used: server {:.2} (kernel {:.2}), load generator {:.2}, Postgres {:.2}, nats-server {:.2}, others {:.2}; host busy {:.0} % of {} cores.",
            cpu.server,
            cpu.server_system,
            cpu.bench,
            cpu.postgres,
            cpu.nats,
            cpu.others(self.cores as f64),
            cpu.host * 100.0,
            self.cores
        )
        .ok();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backlog_is_read_from_the_servers_metrics() {
        let text = "# HELP helpdesk_relay_lag_events Events committed after the relay checkpoint\n\
                    helpdesk_relay_lag_events 7\n\
                    helpdesk_projection_pending_events{projection=\"sla\"} 1200\n\
                    helpdesk_projection_pending_events{projection=\"search\"} 3\n\
                    helpdesk_realtime_lag 0\n\
                    helpdesk_realtime_summary_reads 12\n\
                    helpdesk_realtime_summary_read_seconds 0.25\n";
        let backlog = Backlog::from_metrics(text).unwrap();
        assert_eq!(
            backlog.projections,
            BTreeMap::from([("search".to_owned(), 3), ("sla".to_owned(), 1200)])
        );
        assert_eq!(
            (backlog.relay, backlog.realtime, backlog.summary_reads),
            (Some(7), Some(0), Some(12))
        );
        assert_eq!(
            backlog.sentence("Behind when the load stopped"),
            "Behind when the load stopped: projections search 3, sla 1200 events; relay 7 \
             events; real-time feed 0 messages (12 summary reads since start-up)."
        );
        assert_eq!(Backlog::from_metrics("up 1\n"), None);
    }

    #[test]
    fn the_most_behind_keeps_the_largest_of_each_figure() {
        let mut most = Backlog {
            projections: BTreeMap::from([("sla".to_owned(), 10), ("search".to_owned(), 50)]),
            relay: Some(5),
            realtime: None,
            summary_reads: Some(1),
        };
        most.keep_largest(&Backlog {
            projections: BTreeMap::from([
                ("sla".to_owned(), 900),
                ("ticket_summary".to_owned(), 3),
            ]),
            relay: Some(2),
            realtime: Some(0),
            summary_reads: Some(4),
        });
        assert_eq!(
            most,
            Backlog {
                projections: BTreeMap::from([
                    ("search".to_owned(), 50),
                    ("sla".to_owned(), 900),
                    ("ticket_summary".to_owned(), 3)
                ]),
                relay: Some(5),
                realtime: Some(0),
                summary_reads: Some(4),
            }
        );
    }
}

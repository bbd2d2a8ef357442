//! What a load run's commands did: latency per kind of command, from the time the command was
//! meant to be sent (so a server that falls behind cannot hide it: no coordinated omission)
//! and from the time it was actually sent; failures by kind and status; the achieved rate.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::commands::{Failure, Kind};
use super::stats::{Histogram, Latency};

#[derive(Default)]
struct PerKind {
    from_intended: Histogram,
    from_sent: Histogram,
    failed: u64,
}

#[derive(Default)]
struct Tally {
    kinds: BTreeMap<Kind, PerKind>,
    send_delay: Histogram,
    failures: BTreeMap<(Kind, Failure), u64>,
    late: u64,
    first_intended: Option<u64>,
    last_answer: u64,
}

/// Collects the outcome of every command of a run (thread-safe).
#[derive(Default)]
pub struct Recorder {
    tally: Mutex<Tally>,
}

/// The times of one command, in `now_ns` nanoseconds.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// When the schedule meant to send it (for closed loops: when it was sent).
    pub intended: u64,
    pub sent: u64,
    pub answered: u64,
}

/// One kind of command's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KindReport {
    pub kind: String,
    /// Answered 2xx.
    pub ok: u64,
    pub failed: u64,
    /// From the intended send time to the response (what a client on that schedule waits).
    pub latency: Latency,
    /// From the actual send to the response (the server's service time alone).
    pub service: Latency,
}

/// Every command's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommandsReport {
    /// Per kind, in a ticket's order, then `all`.
    pub kinds: Vec<KindReport>,
    /// `"<kind> <status or cause>"` → count.
    pub failures: BTreeMap<String, u64>,
    /// Follow-ups sent after their intended time because the ticket's previous command had
    /// not been answered yet (open loop only).
    pub late_follow_ups: u64,
    /// From the intended send time to the actual send, over every command: how far the
    /// generator itself fell behind its schedule (a CPU-starved host, the in-flight limit, or
    /// a late follow-up waiting for its ticket's previous answer).
    pub send_delay: Latency,
    /// Commands answered 2xx per second, from the first intended send to the last answer.
    pub achieved_per_s: f64,
    pub ok: u64,
    pub failed: u64,
}

impl CommandsReport {
    /// The `all` row.
    pub fn all(&self) -> Option<&KindReport> {
        self.kinds.iter().find(|k| k.kind == "all")
    }
}

impl Recorder {
    /// Records a command's outcome.
    pub fn record(&self, kind: Kind, timing: Timing, outcome: Result<(), &Failure>) {
        let mut tally = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        let first = tally.first_intended.get_or_insert(timing.intended);
        *first = (*first).min(timing.intended);
        tally
            .send_delay
            .record(timing.sent.saturating_sub(timing.intended));
        let per = tally.kinds.entry(kind).or_default();
        match outcome {
            Ok(()) => {
                per.from_intended
                    .record(timing.answered.saturating_sub(timing.intended));
                per.from_sent
                    .record(timing.answered.saturating_sub(timing.sent));
                tally.last_answer = tally.last_answer.max(timing.answered);
            }
            Err(failure) => {
                per.failed += 1;
                *tally.failures.entry((kind, failure.clone())).or_default() += 1;
            }
        }
    }

    /// Counts a follow-up that had to wait for its ticket's previous answer.
    pub fn late(&self) {
        self.tally.lock().unwrap_or_else(|e| e.into_inner()).late += 1;
    }

    /// Commands answered 2xx so far.
    pub fn ok(&self) -> u64 {
        let tally = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        tally.kinds.values().map(|k| k.from_intended.count()).sum()
    }

    /// The figures so far.
    pub fn report(&self) -> CommandsReport {
        let tally = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        let mut kinds = Vec::new();
        let (mut all_intended, mut all_sent, mut failed) =
            (Histogram::default(), Histogram::default(), 0);
        for kind in Kind::ALL {
            let Some(per) = tally.kinds.get(&kind) else {
                continue;
            };
            all_intended.merge(&per.from_intended);
            all_sent.merge(&per.from_sent);
            failed += per.failed;
            kinds.push(KindReport {
                kind: kind.name().into(),
                ok: per.from_intended.count(),
                failed: per.failed,
                latency: per.from_intended.summary(),
                service: per.from_sent.summary(),
            });
        }
        let ok = all_intended.count();
        kinds.push(KindReport {
            kind: "all".into(),
            ok,
            failed,
            latency: all_intended.summary(),
            service: all_sent.summary(),
        });
        let span = tally
            .last_answer
            .saturating_sub(tally.first_intended.unwrap_or(0));
        CommandsReport {
            kinds,
            failures: tally
                .failures
                .iter()
                .map(|((kind, failure), n)| (format!("{} {}", kind.name(), failure.label()), *n))
                .collect(),
            late_follow_ups: tally.late,
            send_delay: tally.send_delay.summary(),
            achieved_per_s: ok as f64 / (span as f64 / 1e9),
            ok,
            failed,
        }
    }
}

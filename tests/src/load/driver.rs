//! Drives the command mix against the API, open-loop or closed-loop.
//!
//! **Open loop** (`rate` commands a second): command `i` is due at `start + i/rate`, whatever
//! happened to the others. Every fifth slot opens a ticket; the other slots take the next
//! follow-up of the ticket at the front of a queue of tickets in progress, which then goes to
//! the back. The queue is filled before the run with tickets spread over the four follow-up
//! steps (each follow-up is valid on a fresh ticket, in any order), long enough that a
//! ticket's commands are at least [`GAP`] apart; so the mix is one open to four follow-ups
//! from the first second, and hundreds of tickets are in progress at once. A follow-up whose
//! ticket's previous command is still unanswered waits for that answer (*late*). Latency is
//! measured from the slot's time, so waiting for a permit, for the previous answer or for a
//! busy connection pool all count.
//!
//! **Closed loop** (`concurrency` workers): each worker opens a ticket, takes its four
//! follow-ups, and starts over, sending each command as soon as the previous one answered.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::commands::{Accepted, Api, Failure, Kind, STEPS, request};
use super::now_ns;
use super::probe::Prober;
use super::record::{Recorder, Timing};
use super::ws::PushWatch;

/// The least time between two commands on the same ticket in the open loop.
pub const GAP: Duration = Duration::from_millis(200);

/// What a run sends to, and who watches the results.
pub struct Context {
    pub api: Arc<Api>,
    pub recorder: Recorder,
    pub pushes: Option<Arc<PushWatch>>,
    /// The reader of the events stream (the relay's share of the push latency).
    pub stream: Option<Arc<PushWatch>>,
    pub prober: Option<Arc<Prober>>,
    serials: AtomicU64,
}

impl Context {
    /// A run against `api`.
    pub fn new(
        api: Arc<Api>,
        pushes: Option<Arc<PushWatch>>,
        stream: Option<Arc<PushWatch>>,
        prober: Option<Arc<Prober>>,
    ) -> Context {
        Context {
            api,
            recorder: Recorder::default(),
            pushes,
            stream,
            prober,
            serials: AtomicU64::new(0),
        }
    }

    /// The watches awaiting the pushes of a command's event.
    fn watches(&self) -> impl Iterator<Item = &PushWatch> {
        self.pushes.iter().chain(&self.stream).map(Arc::as_ref)
    }

    fn next_serial(&self) -> u64 {
        self.serials.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends `kind` for ticket `id`, records it, and tells the observers.
    async fn run(
        &self,
        kind: Kind,
        id: &str,
        serial: u64,
        intended: u64,
    ) -> Result<Accepted, Failure> {
        let word = match (kind, &self.prober) {
            (Kind::Open, Some(prober)) => prober.word_for(serial),
            _ => None,
        };
        let (method, path, body) = request(kind, id, serial, word.as_deref());
        let sent = now_ns();
        let outcome = self.api.send(method, &path, &body).await;
        let answered = now_ns();
        let timing = Timing {
            intended,
            sent,
            answered,
        };
        self.recorder
            .record(kind, timing, outcome.as_ref().map(|_| ()));
        if let Ok(accepted) = &outcome {
            if let Ok(ticket) = Uuid::parse_str(&accepted.id) {
                for watch in self.watches() {
                    watch.answered(ticket.as_u128(), accepted.version as u32, answered);
                }
            }
            if let (Some(prober), Some(word)) = (&self.prober, word) {
                prober.start(word, accepted.position, answered);
            }
        }
        outcome
    }
}

/// How far a ticket has got in the open loop.
#[derive(Clone, Default)]
struct Progress {
    /// Steps answered (or given up).
    done: usize,
    id: Option<String>,
    /// Its open failed: its follow-ups are not sent.
    failed: bool,
}

struct Ticket {
    serial: u64,
    progress: watch::Sender<Progress>,
}

/// Runs the open loop: `rate` commands a second for `duration`, at most `max_in_flight`
/// requests at once (the rest wait, and their wait counts).
pub async fn open_loop(context: Arc<Context>, rate: f64, duration: Duration, max_in_flight: usize) {
    let queue_length = (rate * 0.8 * GAP.as_secs_f64()).ceil() as usize + 1;
    let mut queue = prepare_tickets(&context, queue_length).await;
    let permits = Arc::new(Semaphore::new(max_in_flight));
    let total = (rate * duration.as_secs_f64()).round() as u64;
    let start = Instant::now() + Duration::from_millis(200);
    let start_ns = now_ns() + 200_000_000;
    let mut tasks = JoinSet::new();
    for slot in 0..total {
        let offset = Duration::from_secs_f64(slot as f64 / rate);
        tokio::time::sleep_until((start + offset).into()).await;
        let intended = start_ns + offset.as_nanos() as u64;
        let (ticket, step) = if slot.is_multiple_of(STEPS as u64) {
            let ticket = Arc::new(Ticket {
                serial: context.next_serial(),
                progress: watch::Sender::new(Progress::default()),
            });
            (ticket, 0)
        } else {
            match queue.pop_front() {
                Some(next) => next,
                None => continue,
            }
        };
        if step + 1 < STEPS {
            queue.push_back((ticket.clone(), step + 1));
        }
        let (context, permits) = (context.clone(), permits.clone());
        tasks.spawn(async move { take_step(&context, &ticket, step, intended, &permits).await });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// Opens `count` tickets before the run (not measured), the `i`-th to continue at follow-up
/// `1 + i % 4`.
async fn prepare_tickets(context: &Arc<Context>, count: usize) -> VecDeque<(Arc<Ticket>, usize)> {
    let gate = Arc::new(Semaphore::new(32));
    let mut opening = JoinSet::new();
    for i in 0..count {
        let (context, gate) = (context.clone(), gate.clone());
        opening.spawn(async move {
            let _permit = gate.acquire().await;
            let serial = context.next_serial();
            let (method, path, body) = request(Kind::Open, "", serial, None);
            let accepted = context.api.send(method, &path, &body).await;
            if let Ok(accepted) = &accepted
                && let Ok(ticket) = Uuid::parse_str(&accepted.id)
            {
                for watch in context.watches() {
                    watch.unmeasured(ticket.as_u128(), accepted.version as u32);
                }
            }
            let step = 1 + i % (STEPS - 1);
            let progress = Progress {
                done: step,
                failed: accepted.is_err(),
                id: accepted.ok().map(|a| a.id),
            };
            (
                i,
                Arc::new(Ticket {
                    serial,
                    progress: watch::Sender::new(progress),
                }),
                step,
            )
        });
    }
    let mut tickets = opening.join_all().await;
    tickets.sort_by_key(|(i, _, _)| *i);
    tickets
        .into_iter()
        .map(|(_, ticket, step)| (ticket, step))
        .collect()
}

async fn take_step(
    context: &Context,
    ticket: &Ticket,
    step: usize,
    intended: u64,
    permits: &Semaphore,
) {
    let mut progress = ticket.progress.subscribe();
    let behind = {
        let now = progress.borrow();
        now.done < step && !now.failed
    };
    if behind {
        context.recorder.late();
    }
    let ready = progress
        .wait_for(|p| p.done >= step || p.failed)
        .await
        .map(|p| p.clone())
        .unwrap_or_default();
    let kind = Kind::of_step(step);
    let finish = |id: Option<String>, failed: bool| {
        ticket.progress.send_modify(|p| {
            p.done = p.done.max(step + 1);
            p.failed |= failed;
            if id.is_some() {
                p.id = id;
            }
        });
    };
    let id = match (step, ready.id) {
        (0, _) => String::new(),
        (_, Some(id)) if !ready.failed => id,
        _ => {
            let at = now_ns();
            let timing = Timing {
                intended,
                sent: at,
                answered: at,
            };
            context
                .recorder
                .record(kind, timing, Err(&Failure::NoTicket));
            finish(None, true);
            return;
        }
    };
    let _permit = permits.acquire().await;
    let outcome = context.run(kind, &id, ticket.serial, intended).await;
    match (step, outcome) {
        (0, Ok(accepted)) => finish(Some(accepted.id), false),
        (0, Err(_)) => finish(None, true),
        _ => finish(None, false),
    }
}

/// Runs the closed loop: `concurrency` workers for `duration`.
pub async fn closed_loop(context: Arc<Context>, concurrency: usize, duration: Duration) {
    let deadline = Instant::now() + duration;
    let mut workers = JoinSet::new();
    for _ in 0..concurrency {
        let context = context.clone();
        workers.spawn(async move {
            'tickets: while Instant::now() < deadline {
                let serial = context.next_serial();
                let mut id = String::new();
                for step in 0..STEPS {
                    if Instant::now() >= deadline {
                        break 'tickets;
                    }
                    let kind = Kind::of_step(step);
                    match context.run(kind, &id, serial, now_ns()).await {
                        Ok(accepted) if step == 0 => id = accepted.id,
                        Err(_) if step == 0 => continue 'tickets,
                        _ => {}
                    }
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
}

//! What the engine remembers of a ticket, folded from ticket events alone: the facts policies
//! are selected by, the status timeline, and when each metric's measurements started and ended.
//! None of it depends on policies, so it can always be rebuilt from the ticket's events.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::sla::SlaMetric;
use crate::ticket::{AuthorKind, Channel, Priority, Status, TicketEvent, Visibility};

/// The ticket as the SLA engine sees it, from `TicketOpened` on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct TicketFacts {
    pub priority: Priority,
    pub group: Option<String>,
    pub channel: Channel,
    /// Every status the ticket had and the instant it took effect, oldest first; the first is
    /// `new` at the opening.
    pub statuses: Vec<StatusSince>,
    pub first_reply: Cycles,
    pub next_reply: Cycles,
    pub resolution: Cycles,
    /// The latest instant seen. Time never runs backwards within a ticket: an event stamped
    /// earlier than this (clock skew between writers) is taken to happen at this instant.
    pub last_at: DateTime<Utc>,
}

/// A status and the instant the ticket entered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct StatusSince {
    pub since: DateTime<Utc>,
    pub status: Status,
}

/// One measurement of a metric, independent of any target: when the ticket started it and,
/// once it is over, when it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Cycle {
    pub number: u32,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
}

/// The latest measurement of a metric and the one before it. One ticket event starts or ends
/// at most one measurement per metric, and the engine reconciles after every event, so no
/// older measurement is ever needed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Cycles {
    pub current: Option<Cycle>,
    pub previous: Option<Cycle>,
}

impl Cycles {
    fn start(&mut self, at: DateTime<Utc>) {
        let number = self.current.map_or(1, |cycle| cycle.number + 1);
        self.previous = self.current.take();
        self.current = Some(Cycle {
            number,
            started_at: at,
            ended_at: None,
        });
    }

    fn end(&mut self, at: DateTime<Utc>) {
        if let Some(cycle) = self
            .current
            .as_mut()
            .filter(|cycle| cycle.ended_at.is_none())
        {
            cycle.ended_at = Some(at);
        }
    }

    /// Whether a measurement is under way.
    pub fn is_open(&self) -> bool {
        self.current.is_some_and(|cycle| cycle.ended_at.is_none())
    }

    /// Whether a measurement was started and has ended.
    fn has_ended(&self) -> bool {
        self.current.is_some_and(|cycle| cycle.ended_at.is_some())
    }

    /// The measurement with this number, if it is one of the two remembered.
    pub fn get(&self, number: u32) -> Option<Cycle> {
        [self.current, self.previous]
            .into_iter()
            .flatten()
            .find(|cycle| cycle.number == number)
    }
}

impl TicketFacts {
    /// The facts right after `TicketOpened` at `at`: status `new`, first reply and resolution
    /// measurements started.
    pub fn opened(
        priority: Priority,
        group: Option<String>,
        channel: Channel,
        at: DateTime<Utc>,
    ) -> Self {
        let mut facts = TicketFacts {
            priority,
            group,
            channel,
            statuses: vec![StatusSince {
                since: at,
                status: Status::New,
            }],
            first_reply: Cycles::default(),
            next_reply: Cycles::default(),
            resolution: Cycles::default(),
            last_at: at,
        };
        facts.first_reply.start(at);
        facts.resolution.start(at);
        facts
    }

    /// The status the ticket is in now.
    pub fn status(&self) -> Status {
        self.statuses
            .last()
            .map_or(Status::New, |entry| entry.status)
    }

    /// The measurements of one metric.
    pub fn cycles(&self, metric: SlaMetric) -> &Cycles {
        match metric {
            SlaMetric::FirstReply => &self.first_reply,
            SlaMetric::NextReply => &self.next_reply,
            SlaMetric::Resolution => &self.resolution,
        }
    }

    /// Folds one ticket event (other than the opening) that happened at `at`.
    pub fn observe(&mut self, event: &TicketEvent, at: DateTime<Utc>) {
        self.last_at = at;
        match event {
            TicketEvent::TicketOpened(_) | TicketEvent::TagsChanged(_) => {}
            TicketEvent::TicketPriorityChanged(change) => self.priority = change.to,
            TicketEvent::TicketAssigned(assigned) => self.group.clone_from(&assigned.group),
            TicketEvent::TicketStatusChanged(change) => {
                self.change_status(change.from, change.to, at)
            }
            TicketEvent::ReplyAdded(reply) => {
                if reply.visibility == Visibility::Public {
                    self.public_reply(reply.author.kind, at);
                }
            }
        }
    }

    fn change_status(&mut self, from: Status, to: Status, at: DateTime<Utc>) {
        self.statuses.push(StatusSince {
            since: at,
            status: to,
        });
        if to == Status::Solved {
            self.resolution.end(at);
        } else if from == Status::Solved && to != Status::Closed {
            // A reopen measures resolution afresh, from now.
            self.resolution.start(at);
        }
    }

    /// A public reply: an agent's ends the reply measurement under way; a customer's starts a
    /// next-reply measurement once the first reply has been given and none is under way.
    /// Replies by the system (automations) count for nothing.
    fn public_reply(&mut self, author: AuthorKind, at: DateTime<Utc>) {
        match author {
            AuthorKind::Agent => {
                self.first_reply.end(at);
                self.next_reply.end(at);
            }
            AuthorKind::Customer => {
                if self.first_reply.has_ended() && !self.next_reply.is_open() {
                    self.next_reply.start(at);
                }
            }
            AuthorKind::System => {}
        }
    }
}

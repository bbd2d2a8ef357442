//! The SLA part of the search document: folding a ticket's `TicketSla` events, and the one
//! state `sla:` searches derive from them.
//!
//! SLA events are their own aggregate (type `TicketSla`, id = the ticket id, sequences from 1),
//! so the document keeps their version apart from the ticket's: `sla_sequence` next to
//! `last_sequence`. The same rules hold as for ticket events: an event at or below
//! `sla_sequence` is a duplicate, one further ahead than the next is a gap. An SLA event of a
//! ticket the index does not hold yet waits for the ticket ([`Folded::TicketNotIndexed`]).
//!
//! The clocks themselves are the domain's [`SlaClocks`], folded with its own `apply`, so search
//! reads an activation exactly as the SLA reports do. What it searches is one state per ticket,
//! over the *open* activations (at most one per metric; fulfilled and withdrawn ones are
//! closed):
//!
//! - `breached`: some open activation missed its target. A breach stays until that activation
//!   is fulfilled or withdrawn, whether its clock runs or is paused.
//! - `active`: no open activation is breached, and at least one clock runs.
//! - `paused`: every open activation is paused (none breached).
//! - no state: no open activation (no SLA applies, or every measurement ended).
//!
//! So the three states never overlap: `-sla:breached` is "not breached, or no SLA at all". A
//! breach counts from its `SlaBreached` event (recorded by the breach watcher at the due
//! instant), not from the clock on the wall.

use helpdesk_domain::sla::{SlaEvent, SlaMetric};
use serde::{Deserialize, Serialize};

use crate::document::{Folded, TicketDocument, out_of_line};

/// A `TicketSla` event with the envelope fact the document needs.
#[derive(Debug, Clone)]
pub struct SlaChange {
    /// The event's sequence within the ticket's `TicketSla` aggregate.
    pub sequence: i64,
    pub event: SlaEvent,
}

/// What `sla:` matches: the state of a ticket's open SLA activations taken together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlaState {
    /// An open activation has breached its target.
    Breached,
    /// A clock runs, and no open activation has breached.
    Active,
    /// Every open activation is paused, none breached.
    Paused,
}

impl SlaState {
    /// Every state, in the order error messages list them.
    pub const ALL: [SlaState; 3] = [SlaState::Breached, SlaState::Active, SlaState::Paused];
}

impl TicketDocument {
    /// Folds an SLA event onto a copy of `current` (the stored document, `None` when there is
    /// none yet): [`TicketDocument::advance_sla`] for a document that exists.
    pub fn fold_sla(current: Option<&TicketDocument>, change: SlaChange) -> Folded {
        let Some(current) = current else {
            return Folded::TicketNotIndexed;
        };
        let mut document = current.clone();
        document
            .advance_sla(change)
            .unwrap_or_else(|| Folded::Changed(Box::new(document)))
    }

    /// Folds an SLA event onto this document in place: `None` when it was folded in, else why
    /// not. Only the SLA fields change: not `updated_at` (an SLA event is not a change of the
    /// ticket), not the ticket's version.
    pub fn advance_sla(&mut self, change: SlaChange) -> Option<Folded> {
        if let Some(out_of_line) = out_of_line(self.sla_sequence, change.sequence) {
            return Some(out_of_line);
        }
        self.sla_clocks.apply(&change.event);
        self.sla_sequence = change.sequence;
        None
    }

    /// The ticket's SLA state (see the module documentation); `None` without an open
    /// activation.
    pub fn sla_state(&self) -> Option<SlaState> {
        let open: Vec<_> = SlaMetric::ALL
            .into_iter()
            .filter_map(|metric| self.sla_clocks.get(metric))
            .filter(|activation| activation.is_open())
            .collect();
        if open
            .iter()
            .any(|activation| activation.breached_at.is_some())
        {
            Some(SlaState::Breached)
        } else if open.iter().any(|activation| activation.is_running()) {
            Some(SlaState::Active)
        } else if !open.is_empty() {
            Some(SlaState::Paused)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Duration, TimeZone, Utc};
    use helpdesk_domain::sla::PolicyRef;
    use helpdesk_domain::ticket::{Channel, Priority, Status};

    use super::*;

    fn at(minutes: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).unwrap() + Duration::minutes(minutes)
    }

    fn ticket() -> TicketDocument {
        TicketDocument {
            id: "t-1".into(),
            subject: "Printer on fire".into(),
            description: String::new(),
            public_text: String::new(),
            internal_text: String::new(),
            status: Status::Open,
            priority: Priority::High,
            channel: Channel::Email,
            requester_id: "cust-1".into(),
            requester_name: None,
            requester_email: None,
            assignee: None,
            group: None,
            tags: Vec::new(),
            created_at: at(0),
            updated_at: at(0),
            solved_at: None,
            reply_count: 0,
            public_reply_count: 0,
            last_sequence: 3,
            last_position: 30,
            opened_position: 10,
            sla_sequence: 0,
            sla_clocks: Default::default(),
        }
    }

    fn activated(metric: SlaMetric, activation: u32) -> SlaEvent {
        SlaEvent::Activated {
            metric,
            activation,
            policy: PolicyRef {
                id: "policy-1".into(),
                version: 1,
            },
            at: at(0),
            started_at: at(0),
            due_at: at(60),
            target_minutes: 60,
        }
    }

    fn paused(metric: SlaMetric) -> SlaEvent {
        SlaEvent::Paused {
            metric,
            activation: 1,
            at: at(10),
        }
    }

    fn resumed(metric: SlaMetric) -> SlaEvent {
        SlaEvent::Resumed {
            metric,
            activation: 1,
            at: at(20),
            due_at: at(70),
        }
    }

    fn breached(metric: SlaMetric) -> SlaEvent {
        SlaEvent::Breached {
            metric,
            activation: 1,
            at: at(60),
        }
    }

    fn fulfilled(metric: SlaMetric) -> SlaEvent {
        SlaEvent::Fulfilled {
            metric,
            activation: 1,
            at: at(90),
            business_minutes: 90,
        }
    }

    fn withdrawn(metric: SlaMetric) -> SlaEvent {
        SlaEvent::Withdrawn {
            metric,
            activation: 1,
            at: at(90),
        }
    }

    /// Folds `events` as sequences 1, 2, … onto the sample ticket.
    fn folded(events: Vec<SlaEvent>) -> TicketDocument {
        let mut document = ticket();
        for (index, event) in events.into_iter().enumerate() {
            let change = SlaChange {
                sequence: index as i64 + 1,
                event,
            };
            match TicketDocument::fold_sla(Some(&document), change) {
                Folded::Changed(next) => document = *next,
                other => panic!("event {} did not apply: {other:?}", index + 1),
            }
        }
        document
    }

    use SlaMetric::{FirstReply, Resolution};

    #[test]
    fn a_ticket_without_sla_events_has_no_sla_state() {
        assert_eq!(ticket().sla_state(), None);
    }

    #[test]
    fn an_activated_clock_is_active_and_only_the_sla_part_changes() {
        let before = ticket();
        let after = folded(vec![activated(FirstReply, 1)]);
        assert_eq!(after.sla_state(), Some(SlaState::Active));
        assert_eq!(after.sla_sequence, 1);
        assert_eq!(after.last_sequence, before.last_sequence);
        assert_eq!(after.last_position, before.last_position);
        assert_eq!(after.updated_at, before.updated_at);
        assert_eq!(after.version(), before.version() + 1);
    }

    #[test]
    fn a_paused_clock_is_paused_until_it_resumes() {
        let paused_only = folded(vec![activated(Resolution, 1), paused(Resolution)]);
        assert_eq!(paused_only.sla_state(), Some(SlaState::Paused));
        let resumed = folded(vec![
            activated(Resolution, 1),
            paused(Resolution),
            resumed(Resolution),
        ]);
        assert_eq!(resumed.sla_state(), Some(SlaState::Active));
    }

    #[test]
    fn one_running_clock_makes_the_ticket_active_beside_a_paused_one() {
        let document = folded(vec![
            activated(Resolution, 1),
            paused(Resolution),
            activated(FirstReply, 1),
        ]);
        assert_eq!(document.sla_state(), Some(SlaState::Active));
    }

    #[test]
    fn a_breach_stays_while_paused_and_clears_when_fulfilled() {
        let breached_then_paused = folded(vec![
            activated(FirstReply, 1),
            breached(FirstReply),
            paused(FirstReply),
        ]);
        assert_eq!(breached_then_paused.sla_state(), Some(SlaState::Breached));
        let fulfilled = folded(vec![
            activated(FirstReply, 1),
            breached(FirstReply),
            fulfilled(FirstReply),
        ]);
        assert_eq!(fulfilled.sla_state(), None);
    }

    #[test]
    fn a_breach_outranks_a_running_clock_of_another_metric() {
        let document = folded(vec![
            activated(FirstReply, 1),
            activated(Resolution, 1),
            breached(FirstReply),
        ]);
        assert_eq!(document.sla_state(), Some(SlaState::Breached));
        let fulfilled_first = folded(vec![
            activated(FirstReply, 1),
            activated(Resolution, 1),
            breached(FirstReply),
            fulfilled(FirstReply),
        ]);
        assert_eq!(fulfilled_first.sla_state(), Some(SlaState::Active));
    }

    #[test]
    fn a_withdrawn_activation_no_longer_counts_even_if_it_breached() {
        let withdrawn = folded(vec![
            activated(Resolution, 1),
            breached(Resolution),
            withdrawn(Resolution),
        ]);
        assert_eq!(withdrawn.sla_state(), None);
    }

    #[test]
    fn an_activation_withdrawn_and_activated_again_keeps_its_breach() {
        // As the SLA reports read it: the breach is recorded once per activation.
        let document = folded(vec![
            activated(Resolution, 1),
            breached(Resolution),
            withdrawn(Resolution),
            activated(Resolution, 1),
        ]);
        assert_eq!(document.sla_state(), Some(SlaState::Breached));
    }

    #[test]
    fn a_redelivered_sla_event_is_a_duplicate() {
        let document = folded(vec![activated(FirstReply, 1), breached(FirstReply)]);
        for sequence in [1, 2] {
            let again = SlaChange {
                sequence,
                event: fulfilled(FirstReply),
            };
            assert_eq!(
                TicketDocument::fold_sla(Some(&document), again),
                Folded::Duplicate
            );
        }
    }

    #[test]
    fn an_sla_event_ahead_of_a_gap_waits() {
        let document = folded(vec![activated(FirstReply, 1)]);
        let ahead = SlaChange {
            sequence: 3,
            event: fulfilled(FirstReply),
        };
        assert_eq!(
            TicketDocument::fold_sla(Some(&document), ahead),
            Folded::Gap {
                expected: 2,
                got: 3
            }
        );
    }

    #[test]
    fn an_sla_event_of_a_ticket_not_indexed_yet_waits_for_the_ticket() {
        let first = SlaChange {
            sequence: 1,
            event: activated(FirstReply, 1),
        };
        assert_eq!(
            TicketDocument::fold_sla(None, first),
            Folded::TicketNotIndexed
        );
    }

    #[test]
    fn the_sla_part_survives_the_tickets_own_events() {
        use crate::document::Change;
        use helpdesk_domain::ticket::{TicketEvent, TicketPriorityChanged};
        let document = folded(vec![activated(FirstReply, 1), breached(FirstReply)]);
        let change = Change {
            ticket_id: document.id.clone(),
            sequence: document.last_sequence + 1,
            global_position: 99,
            recorded_at: at(120),
            event: TicketEvent::TicketPriorityChanged(TicketPriorityChanged {
                from: Priority::High,
                to: Priority::Urgent,
            }),
        };
        let Folded::Changed(after) = TicketDocument::fold(Some(&document), change) else {
            panic!("the ticket event did not apply");
        };
        assert_eq!(after.sla_state(), Some(SlaState::Breached));
        assert_eq!(after.sla_sequence, 2);
        assert_eq!(after.last_sequence, 4);
    }

    #[test]
    fn the_sla_part_round_trips_through_json_and_defaults_when_absent() {
        let document = folded(vec![activated(FirstReply, 1), paused(FirstReply)]);
        let json = serde_json::to_value(&document).unwrap();
        let back: TicketDocument = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, document);
        // A document stored before SLA state existed reads as having none.
        let mut old = json;
        let fields = old.as_object_mut().unwrap();
        fields.remove("sla_sequence");
        fields.remove("sla_clocks");
        let old: TicketDocument = serde_json::from_value(old).unwrap();
        assert_eq!(old.sla_sequence, 0);
        assert_eq!(old.sla_state(), None);
    }
}

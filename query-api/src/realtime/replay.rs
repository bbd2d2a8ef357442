//! Resuming a subscription: the pushes it missed, `(since, up_to]`, rebuilt from the stream
//! (their order and cursors) and the event store (the ticket summaries).
//!
//! `up_to` is the last live push the session took, so replayed and live pushes neither overlap
//! nor leave a gap. SLA events are replayed where the stream has them, routed by the ticket as
//! it stood at that point of the stream, exactly as the live feed routed them.

use std::collections::HashMap;

use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use futures::StreamExt;
use helpdesk_schemas::{EventEnvelope, events_stream_name, events_subject_root};

use super::summary::{
    Push, SLA_AGGREGATE, SlaUpdate, TICKET_AGGREGATE, Target, TicketSummary, Update,
    summary_before, updates_of,
};
use super::{EVERY_MESSAGE, Inner};
use crate::error::QueryError;
use crate::tickets::events;

impl Inner {
    /// Every push about tickets in `target` (only its ticket, for a ticket target) with a
    /// cursor in `(since, up_to]`, in feed order; `None` when more than the replay limit of
    /// stream messages lie in between.
    pub(super) async fn replay(
        &self,
        target: &Target,
        since: u64,
        up_to: u64,
    ) -> Result<Option<Vec<Push>>, QueryError> {
        if since >= up_to {
            return Ok(Some(Vec::new()));
        }
        if up_to - since > u64::try_from(self.settings.replay_limit).unwrap_or(u64::MAX) {
            return Ok(None);
        }
        // Not one wildcard filter: NATS 2.9 miscounts the messages pending for a wildcard that
        // matches several interleaved subjects (`<root>.>` read from the middle of the stream
        // counts one short), and that count is how a replay knows it has read everything.
        // Literal subjects and no filter at all count right.
        let root = events_subject_root(&self.settings.prefix);
        let subjects = match target {
            Target::Ticket(id) => vec![
                format!("{root}.{TICKET_AGGREGATE}.{id}"),
                format!("{root}.{SLA_AGGREGATE}.{id}"),
            ],
            Target::Queue(_) => vec![EVERY_MESSAGE.to_owned()],
        };
        let mut missed = Vec::new();
        for subject in subjects {
            let read = read_stream(&self.js, &self.settings.prefix, subject, since + 1, up_to)
                .await
                .map_err(QueryError::internal)?;
            missed.extend(read);
        }
        missed.sort_by_key(|(cursor, _)| *cursor);
        missed.retain(|(_, envelope)| {
            matches!(
                envelope.aggregate_type.as_str(),
                TICKET_AGGREGATE | SLA_AGGREGATE
            )
        });
        let mut ids: Vec<String> = missed
            .iter()
            .map(|(_, envelope)| envelope.aggregate_id.clone())
            .collect();
        ids.sort();
        ids.dedup();
        let histories = events::load_many(&self.pool, &ids, i64::MAX).await?;
        let tickets: HashMap<String, Vec<Update>> = ids
            .into_iter()
            .zip(histories.iter().map(|history| updates_of(history)))
            .collect();
        Ok(Some(pushes_of(missed, &tickets)))
    }
}

/// The pushes of the `missed` stream messages (cursor and envelope, in stream order), given
/// every update of the tickets they touch (each ticket's oldest first).
///
/// An SLA event is routed by the summary after its ticket's last event before it in the
/// stream: the latest missed update of the ticket if there is one, else the summary the
/// ticket's first missed update started from (nothing happened to the ticket in between). A
/// ticket with no missed update is taken as of the SLA event's position, as the live feed does
/// for a ticket it has not folded.
fn pushes_of(
    missed: Vec<(u64, EventEnvelope)>,
    tickets: &HashMap<String, Vec<Update>>,
) -> Vec<Push> {
    let by_position: HashMap<(&str, i64), &Update> = tickets
        .iter()
        .flat_map(|(id, updates)| {
            updates
                .iter()
                .map(move |update| ((id.as_str(), update.position), update))
        })
        .collect();
    let update_at = |envelope: &EventEnvelope| {
        by_position
            .get(&(envelope.aggregate_id.as_str(), envelope.global_position))
            .copied()
    };
    // Where each ticket stands as the walk goes, starting before its first missed update.
    let mut current: HashMap<String, Option<TicketSummary>> = HashMap::new();
    for (_, envelope) in &missed {
        if envelope.aggregate_type == TICKET_AGGREGATE
            && let Some(update) = update_at(envelope)
        {
            current
                .entry(envelope.aggregate_id.clone())
                .or_insert_with(|| update.before.clone());
        }
    }
    let mut pushes = Vec::with_capacity(missed.len());
    for (cursor, envelope) in missed {
        if envelope.aggregate_type == TICKET_AGGREGATE {
            if let Some(update) = update_at(&envelope) {
                current.insert(envelope.aggregate_id.clone(), Some(update.after.clone()));
                pushes.push(Push::Ticket(update.clone()).at(cursor));
            }
            continue;
        }
        let ticket = current
            .get(&envelope.aggregate_id)
            .cloned()
            .flatten()
            .or_else(|| {
                let updates = tickets.get(&envelope.aggregate_id)?;
                summary_before(updates, envelope.global_position)
            });
        let Some(ticket) = ticket else {
            continue; // the live feed skipped it too
        };
        if let Ok(sla) = SlaUpdate::of(&envelope, ticket) {
            pushes.push(Push::Sla(sla).at(cursor));
        }
    }
    pushes
}

/// The messages on `subject` ([`EVERY_MESSAGE`] for all) with stream sequences in
/// `[from, to]`, in stream order; messages that are not event envelopes are left out.
async fn read_stream(
    js: &async_nats::jetstream::Context,
    prefix: &str,
    subject: String,
    from: u64,
    to: u64,
) -> Result<Vec<(u64, EventEnvelope)>, String> {
    let stream = js
        .get_stream(events_stream_name(prefix))
        .await
        .map_err(|e| e.to_string())?;
    let mut consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: subject,
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: from,
            },
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    // Everything up to `to` is in the stream already, so it is counted here.
    let available = consumer
        .info()
        .await
        .map_err(|e| e.to_string())?
        .num_pending;
    let mut found = Vec::new();
    if available == 0 {
        return Ok(found);
    }
    let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
    let mut read = 0;
    while read < available {
        let Some(message) = messages.next().await else {
            return Err("the stream ended during a replay".into());
        };
        let message = message.map_err(|e| e.to_string())?;
        read += 1;
        let cursor = message.info().map_err(|e| e.to_string())?.stream_sequence;
        if cursor > to {
            break;
        }
        // Not an event envelope: the live feed skipped it too.
        if let Ok(envelope) = serde_json::from_slice::<EventEnvelope>(&message.payload) {
            found.push((cursor, envelope));
        }
        if cursor == to {
            break;
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::Utc;
    use helpdesk_domain::sla::{SlaEvent, SlaMetric};
    use helpdesk_domain::ticket::Status;

    use super::*;

    fn summary(id: &str, version: u64, status: Status) -> TicketSummary {
        crate::realtime::route::tests::summary(id, version, None, status)
    }

    /// A ticket's updates, one per `(global position, status)`, versions from 1.
    fn history(id: &str, events: &[(i64, Status)]) -> Vec<Update> {
        let mut updates: Vec<Update> = Vec::new();
        for (n, (position, status)) in events.iter().enumerate() {
            let before = updates.last().map(|update| update.after.clone());
            updates.push(Update {
                cursor: 0,
                position: *position,
                event_type: "Something".into(),
                internal: false,
                before,
                after: summary(id, n as u64 + 1, *status),
                encoded: Default::default(),
            });
        }
        updates
    }

    fn envelope(
        aggregate_type: &str,
        id: &str,
        position: i64,
        payload: serde_json::Value,
    ) -> EventEnvelope {
        EventEnvelope {
            event_id: format!("e-{position}"),
            global_position: position,
            aggregate_type: aggregate_type.into(),
            aggregate_id: id.into(),
            sequence: 1,
            event_type: "Something".into(),
            event_version: "1".into(),
            recorded_at: Utc::now(),
            metadata: Default::default(),
            payload,
            hash: None,
        }
    }

    fn sla(id: &str, position: i64) -> EventEnvelope {
        let breached = SlaEvent::Breached {
            metric: SlaMetric::FirstReply,
            activation: 1,
            at: Utc::now(),
        };
        let payload = serde_json::to_value(breached).unwrap();
        envelope(SLA_AGGREGATE, id, position, payload)
    }

    fn ticket(id: &str, position: i64) -> EventEnvelope {
        envelope(TICKET_AGGREGATE, id, position, serde_json::Value::Null)
    }

    /// (cursor, `ticket` or `sla`, ticket id, version of the summary the push is routed by).
    fn shape(pushes: &[Push]) -> Vec<(u64, &'static str, String, u64)> {
        pushes
            .iter()
            .map(|push| match push {
                Push::Ticket(update) => (
                    update.cursor,
                    "ticket",
                    update.after.id.clone(),
                    update.after.version,
                ),
                Push::Sla(sla) => (sla.cursor, "sla", sla.ticket.id.clone(), sla.ticket.version),
            })
            .collect()
    }

    #[test]
    fn a_replayed_sla_event_is_routed_by_its_ticket_as_it_stood_at_that_point_of_the_stream() {
        let tickets = HashMap::from([
            (
                "t-1".to_owned(),
                history(
                    "t-1",
                    &[(5, Status::New), (8, Status::Open), (12, Status::Pending)],
                ),
            ),
            (
                "t-2".to_owned(),
                history("t-2", &[(3, Status::New), (10, Status::Open)]),
            ),
        ]);
        let missed = vec![
            // Written after t-1's event at position 12 but committed, and so streamed, first:
            // the stream says the ticket was still at version 2.
            (20, sla("t-1", 13)),
            (21, ticket("t-1", 12)),
            (22, sla("t-1", 14)),
            // No missed update of t-2: the ticket as of the SLA event's position.
            (23, sla("t-2", 7)),
            // Not an SLA event this version can read: skipped, as the live feed does.
            (
                24,
                envelope(
                    SLA_AGGREGATE,
                    "t-1",
                    15,
                    serde_json::json!({"type": "unheard_of"}),
                ),
            ),
            (25, ticket("t-2", 10)),
        ];
        assert_eq!(
            shape(&pushes_of(missed, &tickets)),
            [
                (20, "sla", "t-1".to_owned(), 2),
                (21, "ticket", "t-1".to_owned(), 3),
                (22, "sla", "t-1".to_owned(), 3),
                (23, "sla", "t-2".to_owned(), 1),
                (25, "ticket", "t-2".to_owned(), 2),
            ]
        );
    }
}

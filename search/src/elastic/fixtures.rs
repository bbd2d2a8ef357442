//! Test documents.

use chrono::{TimeZone, Utc};
use helpdesk_domain::sla::engine::SlaClocks;
use helpdesk_domain::sla::{PolicyRef, SlaEvent, SlaMetric};
use helpdesk_domain::ticket::{Channel, Priority, Status};

use crate::document::TicketDocument;

/// An open, high-priority web ticket at version 4, opened at global position 100, without SLA
/// state.
pub(crate) fn sample_document(id: &str) -> TicketDocument {
    let created_at = Utc
        .with_ymd_and_hms(2024, 3, 1, 9, 30, 0)
        .unwrap()
        .checked_add_signed(chrono::Duration::microseconds(123_456))
        .unwrap();
    TicketDocument {
        id: id.to_owned(),
        subject: "Card declined at checkout".into(),
        description: "My card was declined twice.".into(),
        public_text: "We are looking into it.".into(),
        internal_text: "Escalate to payments.".into(),
        status: Status::Open,
        priority: Priority::High,
        channel: Channel::Web,
        requester_id: "cust-1".into(),
        requester_name: Some("Ann Example".into()),
        requester_email: Some("ann@example.com".into()),
        assignee: Some("agent-1".into()),
        group: Some("billing".into()),
        tags: vec!["payments".into(), "vip".into()],
        created_at,
        updated_at: created_at + chrono::Duration::hours(2),
        solved_at: None,
        reply_count: 2,
        public_reply_count: 1,
        last_sequence: 4,
        last_position: 180,
        opened_position: 100,
        sla_sequence: 0,
        sla_clocks: SlaClocks::default(),
    }
}

/// `document` after two SLA events: its first-reply clock activated, then breached.
pub(crate) fn with_breached_sla(mut document: TicketDocument) -> TicketDocument {
    let at = document.created_at;
    let events = [
        SlaEvent::Activated {
            metric: SlaMetric::FirstReply,
            activation: 1,
            policy: PolicyRef {
                id: "policy-1".into(),
                version: 1,
            },
            at,
            started_at: at,
            due_at: at + chrono::Duration::hours(1),
            target_minutes: 60,
        },
        SlaEvent::Breached {
            metric: SlaMetric::FirstReply,
            activation: 1,
            at: at + chrono::Duration::hours(1),
        },
    ];
    for event in &events {
        document.sla_clocks.apply(event);
    }
    document.sla_sequence = events.len() as i64;
    document
}

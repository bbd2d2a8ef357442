-- SLA read model, kept by the `sla` projection and the breach watcher (docs/architecture.md,
-- "SLA clocks and reports"). Everything here can be dropped and rebuilt from the event store:
-- the ticket events plus the `TicketSla` events the projection appended (it never decides them
-- again on a rebuild). No column holds a wall-clock time of the projector itself, so a rebuilt
-- table equals the live one row for row.

-- Per ticket: the SLA engine's state and where the projection stands.
--
--   engine             the domain's `TicketSla` (facts folded from ticket events, clocks folded
--                      from SLA events), as JSON.
--   last_sequence      the last `Ticket` sequence applied: a lower or equal one is a duplicate,
--                      a higher one than last_sequence + 1 waits behind a gap (invariant 3).
--   last_sla_sequence  the last `TicketSla` sequence appended or applied; the next SLA event is
--                      appended at last_sla_sequence + 1, and the events primary key turns two
--                      writers racing on a stale row into a conflict.
--   last_event_id      event_id of the ticket event at last_sequence (the causation of breaches
--                      the watcher records).
--   priority … channel the ticket's dimensions now, as the reports group them.
--
-- Every writer (projection, watcher, rebuild) locks the ticket's row FOR UPDATE first, so one
-- ticket's SLA events are decided by one transaction at a time.
CREATE TABLE sla_state (
    ticket_id         text   PRIMARY KEY,
    engine            jsonb  NOT NULL,
    last_sequence     bigint NOT NULL CHECK (last_sequence >= 0),
    last_sla_sequence bigint NOT NULL CHECK (last_sla_sequence >= 0),
    last_event_id     text,
    priority          text   NOT NULL,
    group_id          text,
    assignee          text,
    channel           text   NOT NULL
);

-- One row per ticket × metric × activation that got a target.
--
-- outcome is 'achieved' (fulfilled, never breached) or 'breached'; NULL while it has neither.
-- A row with an outcome keeps the policy, target and the ticket's priority, group, assignee and
-- channel of that moment (the report counted it under them); an open row follows the ticket.
-- business_minutes is set when the activation is fulfilled, breached or not.
CREATE TABLE sla_metric (
    ticket_id        text        NOT NULL,
    metric           text        NOT NULL CHECK (metric IN ('first_reply', 'next_reply', 'resolution')),
    activation       integer     NOT NULL CHECK (activation > 0),
    policy_id        text        NOT NULL,
    policy_version   bigint      NOT NULL,
    target_minutes   integer     NOT NULL,
    started_at       timestamptz NOT NULL,
    activated_at     timestamptz NOT NULL,
    due_at           timestamptz NOT NULL,
    paused           boolean     NOT NULL,
    fulfilled_at     timestamptz,
    business_minutes bigint,
    breached_at      timestamptz,
    withdrawn_at     timestamptz,
    outcome          text        CHECK (outcome IN ('achieved', 'breached')),
    priority         text        NOT NULL,
    group_id         text,
    assignee         text,
    channel          text        NOT NULL,
    PRIMARY KEY (ticket_id, metric, activation)
);

-- The breach watcher: running clocks (no outcome, not withdrawn, not paused) by due instant.
CREATE INDEX sla_metric_running_due ON sla_metric (due_at)
    WHERE outcome IS NULL AND withdrawn_at IS NULL AND NOT paused;
-- The compliance report's in_progress column: open activations by start.
CREATE INDEX sla_metric_in_progress ON sla_metric (metric, started_at)
    WHERE outcome IS NULL AND withdrawn_at IS NULL;
-- The breach list, in its paging order.
CREATE INDEX sla_metric_breaches ON sla_metric (breached_at, ticket_id, metric, activation)
    WHERE breached_at IS NOT NULL;

-- Pre-aggregated outcomes for the compliance report, maintained in the same transactions as
-- sla_metric. A metric counts once, in the period of its outcome: the UTC day (and month) it
-- was fulfilled if it never breached ('achieved'), else the day it breached ('breached', even
-- when it is fulfilled later). Each outcome is counted under five dimensions (priority, group,
-- assignee, policy, channel; key '' = none) at two granularities (the day, and the month, whose
-- period is its first day), so a long report reads whole months and only the edges by day.
--
-- business_minutes is the measured duration, -1 while a breached activation is not fulfilled;
-- whole minutes make this a histogram from which exact percentiles follow. A fulfilment after
-- the breach moves one count from -1 to its minutes. Rows that reach zero are deleted. (count
-- has no CHECK: Postgres checks the proposed row of an upsert, a negative delta, before it
-- resolves the conflict; the writer refuses a count that ends below zero instead.)
--
-- The primary key INCLUDEs count, so a report is an index-only scan of one key range per
-- slice of its period (a heap visit per row would cost a page per row: rows of one period are
-- written at scattered times). That needs the visibility map to be current, hence the eager
-- autovacuum settings; the price is that no update of a count is HOT.
CREATE TABLE sla_report_counts (
    metric           text   NOT NULL,
    dimension        text   NOT NULL CHECK (dimension IN ('priority', 'group', 'assignee', 'policy', 'channel')),
    granularity      text   NOT NULL CHECK (granularity IN ('day', 'month')),
    period           date   NOT NULL,
    key              text   NOT NULL,
    outcome          text   NOT NULL CHECK (outcome IN ('achieved', 'breached')),
    business_minutes bigint NOT NULL CHECK (business_minutes >= -1),
    count            bigint NOT NULL,
    PRIMARY KEY (metric, dimension, granularity, period, key, outcome, business_minutes)
        INCLUDE (count)
)
WITH (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);

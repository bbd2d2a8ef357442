-- Read model: one row per ticket, projected from the event stream by the `ticket_summary`
-- projection. Droppable and rebuildable from the event store at any time (invariant 1).
--
-- last_sequence is the aggregate sequence of the last event applied to the row: an event with
-- a sequence at or below it is a duplicate (acknowledged, ignored); one above last_sequence + 1
-- arrived ahead of a gap and is retried later (invariant 3).

CREATE TABLE ticket_summary (
    ticket_id       text        PRIMARY KEY,
    subject         text        NOT NULL,
    status          text        NOT NULL,
    priority        text        NOT NULL,
    channel         text        NOT NULL,
    assignee        text,
    group_id        text,
    tags            text[]      NOT NULL,
    requester_id    text        NOT NULL,
    requester_name  text,
    requester_email text,
    reply_count     integer     NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    last_sequence   bigint      NOT NULL,
    last_position   bigint      NOT NULL
);

CREATE INDEX ticket_summary_requester ON ticket_summary (requester_id);
CREATE INDEX ticket_summary_status ON ticket_summary (status, updated_at);

-- The highest global position each projection has applied (for lag and operators).
CREATE TABLE projection_checkpoint (
    name          text        PRIMARY KEY,
    last_position bigint      NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

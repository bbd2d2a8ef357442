-- The event store: the only source of truth (invariant 1).
--
-- `events` and `snapshots` are the tables postgres-es 0.5 reads and writes, with exactly the
-- columns it names in its INSERTs and SELECTs. We add four columns that postgres-es never
-- mentions and that the database fills in from defaults:
--
--   global_position  one total order over all aggregates, for the relay, rebuilds and audit.
--                    Identity values are taken at INSERT and become visible at COMMIT, and a
--                    rolled-back insert burns its value: gaps are normal, and positions are NOT
--                    commit order. Readers tail with (tx_id, global_position), never position
--                    alone (see docs/adr/0001-event-store.md).
--   tx_id            the writing transaction's id; rows with tx_id below the oldest running
--                    transaction (pg_snapshot_xmin) can no longer be joined by earlier rows.
--   recorded_at      the database clock at insert: when the fact was recorded.
--   event_id         a unique id per event for consumers and outside references.
--
-- The primary key (aggregate_type, aggregate_id, sequence) is the optimistic lock: two writers
-- appending the same sequence collide with SQLSTATE 23505, which postgres-es reports as a
-- conflict.

CREATE TABLE events (
    aggregate_type  text        NOT NULL,
    aggregate_id    text        NOT NULL,
    sequence        bigint      NOT NULL CHECK (sequence >= 0),
    event_type      text        NOT NULL,
    event_version   text        NOT NULL,
    payload         json        NOT NULL,
    metadata        json        NOT NULL,
    global_position bigint      GENERATED ALWAYS AS IDENTITY,
    tx_id           xid8        NOT NULL DEFAULT pg_current_xact_id(),
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    event_id        uuid        NOT NULL DEFAULT gen_random_uuid(),
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);

CREATE UNIQUE INDEX events_global_position ON events (global_position);
CREATE INDEX events_tx_position ON events (tx_id, global_position);
CREATE UNIQUE INDEX events_event_id ON events (event_id);

CREATE TABLE snapshots (
    aggregate_type   text   NOT NULL,
    aggregate_id     text   NOT NULL,
    last_sequence    bigint NOT NULL CHECK (last_sequence >= 0),
    current_snapshot bigint NOT NULL CHECK (current_snapshot >= 0),
    payload          json   NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
);

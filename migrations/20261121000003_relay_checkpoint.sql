-- Where the relay stands: the (tx_id, global_position) of the last event JetStream has
-- acknowledged. The relay reads events strictly after this cursor, among those whose writing
-- transaction is older than every running one (see docs/adr/0001-event-store.md), and moves it
-- forward only after the acks. One row per relay name; moved forward only, never back.

CREATE TABLE relay_checkpoint (
    name            text        PRIMARY KEY,
    tx_id           xid8        NOT NULL,
    global_position bigint      NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

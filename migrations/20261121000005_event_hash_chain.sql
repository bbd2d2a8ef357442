-- Tamper evidence: every event carries `hash`, a SHA-256 chained per aggregate.
--
--   hash = sha256(previous hash of the same aggregate || UTF-8 of the event's canonical text)
--
-- where the previous hash of sequence 1 is 32 zero bytes (the genesis), and the canonical text
-- is the JSON array
--
--   [aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata]
--
-- rendered the way Postgres renders jsonb as text (docs/audit-hash-chain.md spells that out,
-- so an outside tool can recompute every hash). Editing a stored event, deleting one from the
-- middle of an aggregate or rewriting a hash breaks the chain; `helpdesk audit verify` and
-- GET /api/v1/audit/verify re-walk it. Deleting an aggregate's newest events leaves a shorter
-- chain that is still intact: that is what the periodic `AuditAnchor` events are for.
--
-- postgres-es owns the INSERT and never names `hash`, so a BEFORE INSERT trigger computes it.
-- A row trigger sees the rows that earlier rows of the same multi-row INSERT wrote, so events
-- committed together chain onto each other. An event whose predecessor is missing is refused:
-- the chain never silently restarts.
--
-- Existing events are hashed here, aggregate by aggregate in sequence order, under the lock
-- ALTER TABLE takes (no insert can slip between the backfill and the trigger).

-- The previous hash of an aggregate's first event.
CREATE FUNCTION event_chain_genesis() RETURNS bytea
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT decode(repeat('00', 32), 'hex') $$;

-- The canonical text of one event. STABLE (not IMMUTABLE) because jsonb_build_array is; that
-- also lets the planner inline it into queries.
CREATE FUNCTION event_canonical_text(
    aggregate_type text, aggregate_id text, sequence bigint,
    event_type text, event_version text, payload json, metadata json
) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT jsonb_build_array(aggregate_type, aggregate_id, sequence, event_type,
                                   event_version, payload::jsonb, metadata::jsonb)::text $$;

-- One link of the chain: the hash of an event given its predecessor's hash.
CREATE FUNCTION event_chain_hash(
    previous bytea, aggregate_type text, aggregate_id text, sequence bigint,
    event_type text, event_version text, payload json, metadata json
) RETURNS bytea
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT sha256(previous || convert_to(
             event_canonical_text(aggregate_type, aggregate_id, sequence, event_type,
                                  event_version, payload, metadata), 'UTF8')) $$;

ALTER TABLE events ADD COLUMN hash bytea;

-- Backfill: sequence 1 of every aggregate from the genesis, then each next sequence from its
-- predecessor's hash.
WITH RECURSIVE chain (aggregate_type, aggregate_id, sequence, hash) AS (
    SELECT e.aggregate_type, e.aggregate_id, e.sequence,
           event_chain_hash(event_chain_genesis(), e.aggregate_type, e.aggregate_id,
                            e.sequence, e.event_type, e.event_version, e.payload, e.metadata)
      FROM events e
     WHERE e.sequence = 1
    UNION ALL
    SELECT e.aggregate_type, e.aggregate_id, e.sequence,
           event_chain_hash(c.hash, e.aggregate_type, e.aggregate_id, e.sequence,
                            e.event_type, e.event_version, e.payload, e.metadata)
      FROM chain c
      JOIN events e ON e.aggregate_type = c.aggregate_type
                   AND e.aggregate_id = c.aggregate_id
                   AND e.sequence = c.sequence + 1
)
UPDATE events e
   SET hash = chain.hash
  FROM chain
 WHERE e.aggregate_type = chain.aggregate_type
   AND e.aggregate_id = chain.aggregate_id
   AND e.sequence = chain.sequence;

-- A row the backfill could not reach sits behind a gap in its aggregate's sequences: stop
-- rather than start a chain in the middle.
DO $$
DECLARE
    orphan record;
BEGIN
    SELECT aggregate_type, aggregate_id, sequence INTO orphan
      FROM events WHERE hash IS NULL
     ORDER BY aggregate_type, aggregate_id, sequence LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'cannot hash-chain event %/% sequence %: an earlier sequence of the aggregate is missing',
            orphan.aggregate_type, orphan.aggregate_id, orphan.sequence;
    END IF;
END $$;

ALTER TABLE events ALTER COLUMN hash SET NOT NULL;

-- Computes NEW.hash from the predecessor's stored hash (whatever the inserter put there).
CREATE FUNCTION events_chain_on_insert() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    previous bytea;
BEGIN
    IF NEW.sequence = 1 THEN
        previous := event_chain_genesis();
    ELSE
        SELECT e.hash INTO previous
          FROM events e
         WHERE e.aggregate_type = NEW.aggregate_type
           AND e.aggregate_id = NEW.aggregate_id
           AND e.sequence = NEW.sequence - 1;
        IF previous IS NULL THEN
            RAISE EXCEPTION 'event %/% sequence % has no predecessor to chain onto',
                NEW.aggregate_type, NEW.aggregate_id, NEW.sequence
                USING HINT = 'sequences start at 1 and grow by one per aggregate';
        END IF;
    END IF;
    NEW.hash := event_chain_hash(previous, NEW.aggregate_type, NEW.aggregate_id, NEW.sequence,
                                 NEW.event_type, NEW.event_version, NEW.payload, NEW.metadata);
    RETURN NEW;
END $$;

CREATE TRIGGER events_chain_hash
    BEFORE INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION events_chain_on_insert();

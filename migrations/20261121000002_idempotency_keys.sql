-- Idempotency keys for POST requests (invariant 7): a retried POST with the same
-- `Idempotency-Key` gets the first response instead of running the command again.
--
-- A row is inserted as a reservation (response_status NULL) before the command runs, so two
-- concurrent requests with one key cannot both execute; it is completed with the response once
-- the command has answered 2xx, and deleted when it did not (so the client may retry).
-- Keys are scoped to the caller and the route, and kept for 24 hours.

CREATE TABLE idempotency_keys (
    scope            text        NOT NULL,
    key              text        NOT NULL,
    request_hash     bytea       NOT NULL,
    response_status  smallint,
    response_headers jsonb,
    response_body    bytea,
    created_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);

CREATE INDEX idempotency_keys_expires_at ON idempotency_keys (expires_at);

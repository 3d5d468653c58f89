-- Runtime tables every service schema carries: what its consumers processed, and what it has yet to publish.

CREATE TABLE processed_messages (
    consumer     text        NOT NULL,
    message_id   text        NOT NULL,
    topic        text        NOT NULL,
    partition    integer     NOT NULL,
    "offset"     bigint      NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);

-- A queue, not a log: the relay deletes a row in the transaction that saw its publish acknowledged.
CREATE TABLE outbox (
    id         bigserial   PRIMARY KEY,
    topic      text        NOT NULL,
    key        bytea       NOT NULL,
    value      bytea       NOT NULL,
    headers    jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

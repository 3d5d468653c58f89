-- The console's index of every message on the catalog's topics and their dead-letter topics: where it sits and its
-- envelope (CloudEvents attributes, correlation, causation, trace id), not its payload, which stays on Kafka. A job's
-- path across services is then one indexed query. Rows older than the retention are pruned.
CREATE TABLE message_log (
    topic text NOT NULL,
    partition integer NOT NULL,
    "offset" bigint NOT NULL,
    key text,
    message_id text,       -- the CloudEvents id; null for a record that is no CloudEvent
    type text,
    source text,
    subject text,
    correlation_id text,
    causation_id text,
    trace_id text,         -- from its W3C traceparent
    at timestamptz,        -- the CloudEvents time, else the broker's timestamp
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition, "offset")
);
CREATE INDEX message_log_correlation ON message_log (correlation_id);
CREATE INDEX message_log_trace ON message_log (trace_id);
CREATE INDEX message_log_type_at ON message_log (type, at DESC);
CREATE INDEX message_log_recorded_at ON message_log (recorded_at);

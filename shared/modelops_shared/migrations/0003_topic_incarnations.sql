-- Offsets belong to one incarnation of a topic (its Kafka topic id): a recreated topic starts again at 0.

-- Which incarnation each consumer has read, per partition; a new id means "read this partition from its beginning".
-- Rows are never deleted: they are the record of every incarnation a consumer has seen.
CREATE TABLE topic_incarnations (
    consumer   text        NOT NULL,
    topic      text        NOT NULL,
    partition  integer     NOT NULL,
    topic_id   text        NOT NULL,
    first_seen timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (consumer, topic, partition, topic_id)
);

-- A tracked position is a position in one incarnation; positions in older ones are kept, never used again.
-- '' marks rows written before topic ids were recorded: a consumer adopts them for the first incarnation it sees.
ALTER TABLE tracking ADD COLUMN topic_id text NOT NULL DEFAULT '';
ALTER TABLE tracking DROP CONSTRAINT tracking_pkey;
ALTER TABLE tracking ADD PRIMARY KEY (consumer, topic, topic_id, partition);

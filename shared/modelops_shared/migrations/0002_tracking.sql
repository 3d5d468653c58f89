-- Where each tracked consumer is in each partition; committed in the transaction of the batch it describes.
CREATE TABLE tracking (
    consumer  text    NOT NULL,
    topic     text    NOT NULL,
    partition integer NOT NULL,
    "offset"  bigint  NOT NULL,
    PRIMARY KEY (consumer, topic, partition)
);

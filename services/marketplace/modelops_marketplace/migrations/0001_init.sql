-- Listings materialised from the registry's artifact events and from publishers; ratings, one per rater; the counts
-- are projections of marketplace.events.v1 (each event applied once: the consumer's processed-message record).
CREATE TABLE listings (
    artifact_id     text        PRIMARY KEY,
    kind            text        NOT NULL,   -- adapter | quantized_model
    name            text        NOT NULL,
    version         text        NOT NULL,
    stage           text        NOT NULL,
    key_id          text        NOT NULL,
    digest          text        NOT NULL,
    created_by      text        NOT NULL,
    listed          boolean     NOT NULL DEFAULT false,
    delisted_reason text,
    title           text        NOT NULL DEFAULT '',
    description     text        NOT NULL DEFAULT '',
    tasks           text[]      NOT NULL DEFAULT '{}',
    license         text        NOT NULL DEFAULT '',
    languages       text[]      NOT NULL DEFAULT '{}',
    examples        text[]      NOT NULL DEFAULT '{}',
    publisher       text,
    base_model      text,
    base_model_name text,
    base_digest     text,
    architecture    text,
    rank            integer,
    quantization    text,
    card            text        NOT NULL DEFAULT '',
    metrics         jsonb       NOT NULL DEFAULT '{}',
    verified        boolean     NOT NULL DEFAULT false,
    verified_at     timestamptz,
    downloads       bigint      NOT NULL DEFAULT 0,
    installs        bigint      NOT NULL DEFAULT 0,
    rating_sum      bigint      NOT NULL DEFAULT 0,
    rating_count    bigint      NOT NULL DEFAULT 0,
    listed_at       timestamptz,
    search          tsvector    GENERATED ALWAYS AS (
        setweight(to_tsvector('english'::regconfig, coalesce(title, '') || ' ' || name), 'A')
        || setweight(to_tsvector('english'::regconfig, description), 'B')
        || setweight(to_tsvector('english'::regconfig, card), 'C')
    ) STORED
);
CREATE INDEX listings_search ON listings USING gin (search);
CREATE INDEX listings_listed ON listings (listed, listed_at DESC);

CREATE TABLE ratings (
    artifact_id text        NOT NULL REFERENCES listings (artifact_id),
    rater       text        NOT NULL,
    stars       integer     NOT NULL CHECK (stars BETWEEN 1 AND 5),
    review      text        NOT NULL DEFAULT '',
    rated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (artifact_id, rater)
);
CREATE INDEX ratings_rater ON ratings (rater, rated_at DESC);

-- Every rating given, for the per-key rate limit (a rating replaced in place would not show how often it came).
CREATE TABLE rating_attempts (
    rater text        NOT NULL,
    at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rating_attempts_rater ON rating_attempts (rater, at DESC);

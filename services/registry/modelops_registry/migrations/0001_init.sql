-- The registry's schema: an append-only hash-chained event log and the
-- projections derived from the log. Every projection column is a function of logged events alone (event
-- times, never now()), so a replay into empty tables reproduces the live state digest.

CREATE TABLE event_log (
    seq            bigint      PRIMARY KEY,
    event_id       text        NOT NULL UNIQUE,
    type           text        NOT NULL,
    subject        text        NOT NULL,
    correlation_id text,
    canonical      bytea       NOT NULL,  -- RFC 8785 bytes of the whole event: what the chain hashes and replay reads
    prev_hash      text        NOT NULL,
    hash           text        NOT NULL
);
CREATE INDEX event_log_subject ON event_log (subject, seq);
CREATE INDEX event_log_correlation ON event_log (correlation_id, seq);

-- The head anchors the chain's end, so deleting the newest rows is detected too.
CREATE TABLE event_log_head (
    id   boolean PRIMARY KEY DEFAULT true CHECK (id),
    seq  bigint  NOT NULL,
    hash text    NOT NULL
);
INSERT INTO event_log_head VALUES (true, 0, repeat('0', 64));

CREATE TABLE submissions (
    artifact_id  text        PRIMARY KEY,
    status       text        NOT NULL,  -- pending | registered | rejected
    reason       text,
    body         jsonb       NOT NULL,
    submitted_at timestamptz NOT NULL
);

CREATE TABLE artifacts (
    id          text        PRIMARY KEY,
    kind        text        NOT NULL,
    name        text        NOT NULL,
    version     text        NOT NULL,
    stage       text        NOT NULL,
    digest      text        NOT NULL,
    size        bigint      NOT NULL,
    uri         text        NOT NULL,
    bundle_uri  text,
    key_id      text,
    job_id      text,
    created_by  text        NOT NULL,
    created_at  timestamptz NOT NULL,
    metrics     jsonb       NOT NULL,
    metadata    jsonb       NOT NULL,
    UNIQUE (kind, name, version)
);
CREATE INDEX artifacts_listing ON artifacts (kind, stage, name);

CREATE TABLE artifact_files (
    artifact_id text   NOT NULL REFERENCES artifacts (id),
    path        text   NOT NULL,
    sha256      text   NOT NULL,
    size        bigint NOT NULL,
    PRIMARY KEY (artifact_id, path)
);

-- parent → child; a child may be a deployment name (deployed_as) rather than an artifact.
CREATE TABLE lineage (
    parent_id text NOT NULL,
    child_id  text NOT NULL,
    relation  text NOT NULL,
    PRIMARY KEY (parent_id, child_id, relation)
);
CREATE INDEX lineage_child ON lineage (child_id);

CREATE TABLE jobs (
    id                  text        PRIMARY KEY,
    status              text        NOT NULL,
    submitted_by        text,
    base_model          text,
    dataset             text,
    spec                jsonb,
    worker              text,
    step                integer     NOT NULL DEFAULT 0,
    total_steps         integer,
    metrics             jsonb       NOT NULL DEFAULT '{}',
    adapter_artifact_id text,
    reason              text,
    started_at          timestamptz,
    updated_at          timestamptz NOT NULL
);

CREATE TABLE promotions (
    artifact_id text        NOT NULL,
    seq         bigint      NOT NULL,  -- the event log position, so history orders exactly as it happened
    from_stage  text        NOT NULL,
    to_stage    text        NOT NULL,
    actor       text        NOT NULL,
    reason      text        NOT NULL,
    at          timestamptz NOT NULL,
    key_id      text        NOT NULL,
    signature   text        NOT NULL,
    PRIMARY KEY (artifact_id, seq)
);
CREATE INDEX promotions_time ON promotions (to_stage, at);

CREATE TABLE deployments (
    name        text        PRIMARY KEY,
    base_model  text,
    adapters    jsonb       NOT NULL DEFAULT '[]',
    status      text        NOT NULL,
    backend     text,
    reason      text,
    updated_at  timestamptz NOT NULL
);

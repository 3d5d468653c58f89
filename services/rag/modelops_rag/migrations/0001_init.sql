-- Collections and their documents (every upload of a name is a new version), index jobs as their events report them,
-- and the job ledger of modelops_shared.jobs. `request_id` makes a retried create return what the first one made.
CREATE TABLE collections (
    id              text        PRIMARY KEY,
    name            text        NOT NULL,
    owner           text        NOT NULL,
    description     text        NOT NULL DEFAULT '',
    embedding_model text        NOT NULL,  -- artifact id
    index_id        text,                  -- newest signed rag_index
    chunks          integer,
    request_id      text        UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz
);
CREATE UNIQUE INDEX collections_live_name ON collections (name) WHERE deleted_at IS NULL;

CREATE TABLE documents (
    collection_id text        NOT NULL REFERENCES collections (id),
    name          text        NOT NULL,
    version       integer     NOT NULL,
    uri           text        NOT NULL,
    sha256        text        NOT NULL,
    size          bigint      NOT NULL,
    content_type  text        NOT NULL,
    uploaded_by   text        NOT NULL,
    request_id    text        UNIQUE,
    uploaded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (collection_id, name, version)
);

CREATE TABLE index_jobs (
    id            text        PRIMARY KEY,
    collection_id text        NOT NULL REFERENCES collections (id),
    requested_by  text        NOT NULL,
    status        text        NOT NULL,  -- queued | running | completed | failed | cancelled
    documents     integer     NOT NULL,
    done          integer     NOT NULL DEFAULT 0,
    total         integer     NOT NULL DEFAULT 0,
    chunks        integer     NOT NULL DEFAULT 0,
    index_id      text,
    outcome       jsonb,
    request_id    text        UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX index_jobs_collection ON index_jobs (collection_id, created_at DESC);

CREATE TABLE jobs (
    job_id      text        PRIMARY KEY,
    status      text        NOT NULL,  -- running | completed | failed | cancelled
    attempts    integer     NOT NULL DEFAULT 0,
    worker      text,
    reason      text,
    outcome     jsonb,
    started_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

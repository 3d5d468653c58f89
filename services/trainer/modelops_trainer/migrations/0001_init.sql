-- One row per job this trainer group has started: how often (a worker that died leaves `running` behind, and a
-- redelivered job resumes), and how it ended. A terminal row is written in the same transaction as the outbox
-- rows announcing it, so a redelivered job that already ended is recognised and skipped.
CREATE TABLE jobs (
    job_id              text        PRIMARY KEY,
    status              text        NOT NULL,  -- running | completed | failed | cancelled
    attempts            integer     NOT NULL DEFAULT 0,
    worker              text,
    steps               integer,
    adapter_artifact_id text,
    reason              text,
    started_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

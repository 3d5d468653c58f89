-- One row per job this evaluator group has started (modelops_shared.jobs.ledger): how often (a worker that died
-- leaves `running` behind, and a redelivered job starts over), and how it ended. A
-- terminal row is written in the same transaction as the outbox rows announcing it.
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

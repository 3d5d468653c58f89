-- Evaluation jobs submitted through this gateway: written with their StartEvaluation in the outbox, and brought up to
-- date from evaluation.events.v1 (the gateway's projection; events after the job ended change nothing).
CREATE TABLE evaluation_jobs (
    id                  text        PRIMARY KEY,
    status              text        NOT NULL,
    submitted_by        text        NOT NULL,
    model_id            text        NOT NULL,
    adapter_id          text,
    deployment          text,
    suite               text        NOT NULL,
    suite_version       integer     NOT NULL,
    spec                jsonb       NOT NULL,
    worker              text,
    done                integer     NOT NULL DEFAULT 0,
    total               integer,
    report_id           text,
    metrics             jsonb,
    failure_reason      text,
    error_type          text,
    cancel_requested_at timestamptz,
    cancel_requested_by text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,
    finished_at         timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

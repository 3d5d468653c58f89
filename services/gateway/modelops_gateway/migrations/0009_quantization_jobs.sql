-- Quantization jobs submitted through this gateway: written with their StartQuantization in the outbox, and brought
-- up to date from quantization.events.v1 (the gateway's projection; events after the job ended change nothing).
CREATE TABLE quantization_jobs (
    id                  text        PRIMARY KEY,
    status              text        NOT NULL,
    submitted_by        text        NOT NULL,
    model_id            text        NOT NULL,
    adapter_id          text,
    spec                jsonb       NOT NULL,
    worker              text,
    stage               text,
    done                integer     NOT NULL DEFAULT 0,
    total               integer     NOT NULL,
    outputs             jsonb       NOT NULL DEFAULT '[]',
    warnings            jsonb       NOT NULL DEFAULT '[]',
    failure_reason      text,
    error_type          text,
    cancel_requested_at timestamptz,
    cancel_requested_by text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,
    finished_at         timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

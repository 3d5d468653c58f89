-- Jobs this gateway accepted and what their workers reported since: the gateway's own projection of
-- training.events.v1, so that job reads, lists and streams never ask another service.
CREATE TABLE jobs (
    id text PRIMARY KEY,  -- time-ordered, so the primary key also pages jobs newest first
    kind text NOT NULL,
    status text NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    submitted_by text NOT NULL,
    base_model text NOT NULL,       -- as the caller named it (an artifact id or a name)
    base_model_id text NOT NULL,    -- the artifact it resolved to, which the command names
    base_model_name text NOT NULL,
    dataset text NOT NULL,
    dataset_version integer NOT NULL,
    dataset_id text NOT NULL,
    spec jsonb NOT NULL,            -- the StartTraining command as it was sent
    worker text,
    step integer,
    total_steps integer,
    loss double precision,
    learning_rate double precision,
    tokens_per_second double precision,
    estimated_finish timestamptz,
    metrics jsonb NOT NULL DEFAULT '{}',
    adapter_artifact_id text,
    failure_reason text,
    error_type text,
    cancel_requested_at timestamptz,
    cancel_requested_by text,
    -- The seq of the job's latest event. Taking the next one updates this row, whose lock orders a job's writers:
    -- its events commit in seq order, without gaps, so a reader resuming after seq N misses none.
    last_seq bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX jobs_status ON jobs (status, id);

-- Each job's events in order: the SSE and WebSocket streams' backlog (an event's seq is its SSE id) and the
-- OpenAI-compatible event list.
CREATE TABLE job_events (
    job_id text NOT NULL REFERENCES jobs (id),
    seq bigint NOT NULL,
    type text NOT NULL,
    data jsonb NOT NULL,
    message_id text,  -- the CloudEvent it came from; null for the gateway's own (queued, cancel requested)
    at timestamptz NOT NULL,
    PRIMARY KEY (job_id, seq)
);

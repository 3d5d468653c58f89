-- What jobs and deployments used, as their workers measured it (usage.events.v1): one row per job end, one per
-- deployment, inference replica and period; priced when recorded, with the price table of the time. `owner` is the
-- API key holder (name) that submitted the job or requested the deployment through this gateway: what another
-- gateway (schema) accepted is its own to report.
CREATE TABLE usage_records (
    message_id text PRIMARY KEY,
    source text NOT NULL CHECK (source IN ('job', 'deployment')),
    subject text NOT NULL,  -- the job id, or the deployment name
    kind text NOT NULL,     -- the job's kind (training, quantization, evaluation, indexing), or 'deployment'
    owner text NOT NULL,
    worker text NOT NULL,   -- the job's worker, or the inference replica
    period_start timestamptz NOT NULL,
    period_end timestamptz NOT NULL,
    wall_seconds double precision NOT NULL,
    cpu_seconds double precision NOT NULL,
    gpu_seconds double precision NOT NULL,
    peak_memory_bytes bigint NOT NULL,
    tokens bigint NOT NULL,
    requests bigint NOT NULL DEFAULT 0,
    cost double precision NOT NULL,
    currency text NOT NULL
);
CREATE INDEX usage_records_owner ON usage_records (owner, period_end);
CREATE INDEX usage_records_subject ON usage_records (source, subject);

-- Spending limits per API key holder, in the price table's currency: a job whose estimate would take its submitter
-- past the budget left is refused.
CREATE TABLE budgets (
    owner text PRIMARY KEY,
    amount double precision NOT NULL CHECK (amount >= 0),
    set_by text NOT NULL,
    set_at timestamptz NOT NULL DEFAULT now()
);

-- A training job's expected cost when it was accepted: counted against its submitter's budget until its usage is.
ALTER TABLE jobs ADD COLUMN estimated_cost double precision;

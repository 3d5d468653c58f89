-- API keys: only a digest of each secret is kept; the secret is shown once, when the key is created.
CREATE TABLE api_keys (
    id text PRIMARY KEY,
    name text NOT NULL,
    role text NOT NULL CHECK (role IN ('viewer', 'developer', 'approver', 'admin')),
    rate_limit text,
    secret_sha256 text NOT NULL UNIQUE,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
-- Names are what the registry records as actor and submitter, so two live keys never share one.
CREATE UNIQUE INDEX api_keys_live_name ON api_keys (name) WHERE revoked_at IS NULL;

-- The first response to each (caller, Idempotency-Key). A row is inserted when a request claims its key and
-- completed in the same transaction, so other transactions only ever see completed rows.
CREATE TABLE idempotency_keys (
    key_id text NOT NULL,
    idempotency_key text NOT NULL,
    fingerprint text NOT NULL,
    status_code integer,
    headers jsonb,
    body bytea,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (key_id, idempotency_key)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);

-- Router deployments: which target answers each of a router's labels (null for any other deployment). And the
-- projection of router.events.v1: one row per routed request (the prompt's hash, never its text), with the
-- correction a user made to it (then the prompt, which the user sent to be trained on).
ALTER TABLE deployments ADD COLUMN routes jsonb;

CREATE TABLE route_decisions (
    decision_id text PRIMARY KEY,
    router text NOT NULL,
    router_artifact text NOT NULL,
    prompt_sha256 text NOT NULL,
    label text NOT NULL,
    target jsonb NOT NULL,
    margin integer NOT NULL,
    fallback boolean NOT NULL,
    requested_by text NOT NULL,
    decided_at timestamptz NOT NULL,
    corrected_label text,
    corrected_prompt text,
    corrected_by text,
    corrected_at timestamptz
);
CREATE INDEX route_decisions_by_router ON route_decisions (router, decided_at);

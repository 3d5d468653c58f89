-- Deployments this gateway accepted (a Deploy staged in the outbox in the same transaction), so that a deployment the
-- inference service has not picked up yet reads as `queued`; `removed_at` is set when its Undeploy is staged.
CREATE TABLE deployments (
    name text PRIMARY KEY,
    base_model text NOT NULL,
    adapters jsonb NOT NULL,
    requested_by text NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    removed_at timestamptz,
    removed_by text
);

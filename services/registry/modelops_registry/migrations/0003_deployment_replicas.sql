-- Every inference replica obeys every deployment command and answers for itself: its latest answer per deployment.
-- `deployments.status` stays the latest answer of any replica; this table says which replica said what.
CREATE TABLE deployment_replicas (
    name        text        NOT NULL,
    replica     text        NOT NULL,
    status      text        NOT NULL,
    reason      text,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (name, replica)
);

-- Every dataset version (a Delta table version) that was announced: its DatasetVersionCreated was staged in the
-- outbox in the transaction that inserted the row. A Delta version without a row here is one whose announcement
-- was lost between the Delta commit and this commit; the reconciler announces it (dataset_announcer.py).
CREATE TABLE dataset_versions (
    name text NOT NULL,
    version integer NOT NULL,
    dataset_id text NOT NULL UNIQUE,
    announced_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version)
);

-- Files uploaded through the OpenAI-compatible API; each one is the dataset whose name is its id (version 0).
CREATE TABLE files (
    id text PRIMARY KEY,
    filename text NOT NULL,
    bytes bigint NOT NULL,
    purpose text NOT NULL,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX files_listing ON files (created_at, id);

-- Model files imported through this gateway, one row per file content (the id comes from its sha256), written with
-- the ImportGguf command in the outbox and updated from the trainer's ModelImported / ModelImportFailed.
CREATE TABLE model_imports (
    id text PRIMARY KEY,
    status text NOT NULL DEFAULT 'pending',
    name text,
    source text,
    filename text NOT NULL,
    sha256 text NOT NULL,
    size bigint NOT NULL,
    gguf_artifact_id text NOT NULL,
    base_model_artifact_id text NOT NULL,
    reason text,
    requested_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

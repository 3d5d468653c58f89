-- Signed bundles travel inside ArtifactRegistered and are projected here: the log alone rebuilds them, and
-- registering costs no object-store write (whose per-file fsync dominated the live registration rate).
ALTER TABLE artifacts ADD COLUMN bundle jsonb;

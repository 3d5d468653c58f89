-- The job ledger is now modelops_shared.jobs.ledger, shared by every job service: what a job's outcome recorded
-- (the trainer's steps and adapter) moves into one `outcome` document.
ALTER TABLE jobs ADD COLUMN outcome jsonb;
UPDATE jobs SET outcome = jsonb_strip_nulls(jsonb_build_object('steps', steps, 'adapter_artifact_id', adapter_artifact_id));
ALTER TABLE jobs DROP COLUMN steps, DROP COLUMN adapter_artifact_id;

-- The id of the request that made each promotion (the gateway's Idempotency-Key token), when it sent one: the same
-- request again returns that promotion instead of attempting the move a second time.
ALTER TABLE promotions ADD COLUMN request_id text;
CREATE UNIQUE INDEX promotions_request ON promotions (artifact_id, request_id) WHERE request_id IS NOT NULL;

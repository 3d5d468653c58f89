-- Which request holds each key's claim: a request that outlived its lease (another took the key over) then neither
-- keeps its answer nor releases the other's claim.
ALTER TABLE idempotency_keys ADD COLUMN claim text;

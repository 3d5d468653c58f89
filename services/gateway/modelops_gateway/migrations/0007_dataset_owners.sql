-- Who owns each dataset: the key that first uploaded it. Later versions are its owner's (or an admin's) to add.
-- Datasets from before this table have no row: the next upload claims them.
CREATE TABLE dataset_owners (
    name text PRIMARY KEY,
    owner text NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now()
);

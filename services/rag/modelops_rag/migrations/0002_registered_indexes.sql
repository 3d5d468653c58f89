-- The rag_index artifacts the registry has signed and registered: a collection moves to a new index only once it is
-- here (a rejected or still pending one is never served), whichever of IndexingCompleted and ArtifactRegistered
-- arrives first.
CREATE TABLE registered_indexes (
    index_id      text        PRIMARY KEY,
    registered_at timestamptz NOT NULL DEFAULT now()
);

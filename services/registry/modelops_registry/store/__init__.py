"""SQL of the registry, one module per concern: the signed event log (eventlog), the state projected from it
(projections), the read models the routes query (queries), and lineage as OpenLineage events (lineage)."""

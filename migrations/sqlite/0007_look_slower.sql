-- Judge v2 (docs/statistics.md §3): a look counts the requests slower than each latency
-- edge of the analysis' plan, not above one boundary b*. JSON arrays of counts, in the
-- order of the plan's edges. canary_slow / canary_slo_slow (and the primary's) stay for
-- rows written before; new rows leave them at 0.
ALTER TABLE look ADD COLUMN canary_slower TEXT NOT NULL DEFAULT '[]';
ALTER TABLE look ADD COLUMN primary_slower TEXT NOT NULL DEFAULT '[]';

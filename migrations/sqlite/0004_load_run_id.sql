-- A load run is identified by the id its generator gave it, so the end of a run
-- (possibly recorded by the same process minutes later) finds its row.
ALTER TABLE load_run ADD COLUMN run_id TEXT;
CREATE UNIQUE INDEX load_run_run_id ON load_run (run_id);

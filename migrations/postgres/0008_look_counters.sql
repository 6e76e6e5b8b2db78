-- Exact counts (docs/operations.md, "Where the counts come from"): a look keeps both arms'
-- cumulative counters per series as it read them (JSON), and the next look's counts are
-- the differences to them; an analysis keeps the reading it opened with, the first look's
-- baseline. NULL in rows written before, which had their counts from increase().
ALTER TABLE look ADD COLUMN counters TEXT;
ALTER TABLE analysis ADD COLUMN baseline TEXT;

-- `mode: shadow|enforce` of an analysis, fixed when it opens (also inside its settings
-- JSON). A column so analyses can be listed by mode and every hook of an analysis reads
-- the mode even when its settings are unreadable. Analyses opened before were enforced.
ALTER TABLE analysis ADD COLUMN mode TEXT NOT NULL DEFAULT 'enforce'
    CHECK (mode IN ('enforce', 'shadow'));

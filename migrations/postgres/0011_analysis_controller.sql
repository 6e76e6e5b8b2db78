-- `controller: flagger|argo` of an analysis: which progressive-delivery controller asks
-- for its verdicts (Flagger's webhooks or Argo Rollouts' web metric provider), fixed when
-- it opens (also inside its settings JSON). A column so the API, the console and every
-- hook read it even when the settings are unreadable. Analyses opened before were
-- Flagger's.
ALTER TABLE analysis ADD COLUMN controller TEXT NOT NULL DEFAULT 'flagger'
    CHECK (controller IN ('flagger', 'argo'));

-- Where an analysis comes from: `live` (opened by Flagger's hooks) or `backtest` (a
-- window of Prometheus history recorded with `verdict backtest … --record`). The hooks,
-- the canary view and the canaries-now overview read live analyses only, so a recorded
-- backtest never answers for a canary (docs/operations.md, "Backtests").
ALTER TABLE analysis ADD COLUMN origin TEXT NOT NULL DEFAULT 'live'
    CHECK (origin IN ('live', 'backtest'));

-- Delivery bookkeeping for the Grafana annotation outbox (issue 6).
--
-- dedup_key: at most one row per key ever enters the outbox (e.g. `analysis/7/promoted`),
--   so a hook Flagger repeats, or two replicas answering at once, annotate once. NULL for
--   annotations that may repeat (manual gate actions). A unique index allows many NULLs.
-- claimed_until: a delivery lease (Unix ms). A worker claims a row with a conditional
--   UPDATE that only matches unclaimed or expired rows, so two replicas never both send it.
-- last_error: why the last attempt failed, for operators.
ALTER TABLE outbox ADD COLUMN dedup_key TEXT;
ALTER TABLE outbox ADD COLUMN claimed_until BIGINT;
ALTER TABLE outbox ADD COLUMN last_error TEXT;
CREATE UNIQUE INDEX outbox_dedup ON outbox (dedup_key);

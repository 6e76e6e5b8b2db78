-- Whether a canary asked for `gate: manual`, as the last hook call that carried the
-- `gate` metadata key said. Kept per canary so every hook and the API agree on it, also
-- when only some webhooks carry the key and before the first analysis opens.
CREATE TABLE gate_mode (
    namespace  TEXT   NOT NULL,
    name       TEXT   NOT NULL,
    manual     BIGINT NOT NULL CHECK (manual IN (0, 1)),
    updated_at BIGINT NOT NULL,
    CONSTRAINT gate_mode_key UNIQUE (namespace, name)
);

-- verdict schema, SQLite dialect. Append-only: never edit a migration once merged;
-- add a new numbered file instead. Keep migrations/postgres/ in step (same tables,
-- columns and constraints; only the identity column type differs).
--
-- Column types are limited to BIGINT, DOUBLE PRECISION and TEXT so that one sqlx Any
-- implementation reads both dialects identically. Times are Unix milliseconds (BIGINT);
-- JSON documents are TEXT.

-- One analysis per canary revision. The unique key makes opening idempotent under
-- Flagger's retries and concurrent identical calls.
CREATE TABLE analysis (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace     TEXT   NOT NULL,
    name          TEXT   NOT NULL,
    checksum      TEXT   NOT NULL,
    settings      TEXT   NOT NULL,
    status        TEXT   NOT NULL DEFAULT 'running'
                  CHECK (status IN ('running', 'failed', 'succeeded', 'aborted')),
    status_reason TEXT,
    started_at    BIGINT NOT NULL,
    finished_at   BIGINT,
    CONSTRAINT analysis_key UNIQUE (namespace, name, checksum)
);

-- One look per rollout call: both arms' increments over the window and the judge's
-- assessment after it. (analysis_id, seq) is unique so a look is never double-counted.
CREATE TABLE look (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    analysis_id           BIGINT NOT NULL REFERENCES analysis (id) ON DELETE CASCADE,
    seq                   BIGINT NOT NULL CHECK (seq >= 1),
    window_start          BIGINT NOT NULL,
    window_end            BIGINT NOT NULL,
    canary_requests       BIGINT NOT NULL CHECK (canary_requests >= 0),
    canary_errors         BIGINT NOT NULL CHECK (canary_errors >= 0),
    canary_slow           BIGINT NOT NULL CHECK (canary_slow >= 0),
    canary_slo_slow       BIGINT NOT NULL CHECK (canary_slo_slow >= 0),
    primary_requests      BIGINT NOT NULL CHECK (primary_requests >= 0),
    primary_errors        BIGINT NOT NULL CHECK (primary_errors >= 0),
    primary_slow          BIGINT NOT NULL CHECK (primary_slow >= 0),
    primary_slo_slow      BIGINT NOT NULL CHECK (primary_slo_slow >= 0),
    verdict               TEXT   NOT NULL CHECK (verdict IN ('pass', 'fail', 'wait')),
    reason                TEXT   NOT NULL,
    evidence              TEXT   NOT NULL,
    created_at            BIGINT NOT NULL,
    CONSTRAINT look_seq UNIQUE (analysis_id, seq)
);

-- Every webhook answer. analysis_id is NULL for answers that belong to no analysis
-- (e.g. a refused confirm-rollout before the analysis is opened).
CREATE TABLE decision (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    analysis_id BIGINT REFERENCES analysis (id) ON DELETE SET NULL,
    namespace   TEXT   NOT NULL,
    name        TEXT   NOT NULL,
    checksum    TEXT   NOT NULL,
    hook        TEXT   NOT NULL,
    verdict     TEXT   NOT NULL,
    status_code BIGINT NOT NULL CHECK (status_code BETWEEN 100 AND 599),
    reason      TEXT   NOT NULL,
    evidence    TEXT,
    request_id  TEXT   NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX decision_analysis ON decision (analysis_id, id);
CREATE INDEX decision_canary ON decision (namespace, name, id);

-- Kubernetes events Flagger forwards to the event hook.
CREATE TABLE event (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace   TEXT   NOT NULL,
    name        TEXT   NOT NULL,
    checksum    TEXT   NOT NULL,
    phase       TEXT   NOT NULL,
    event_type  TEXT   NOT NULL,
    message     TEXT   NOT NULL,
    event_time  BIGINT,
    metadata    TEXT   NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE INDEX event_canary ON event (namespace, name, id);

-- Durable manual gates, one row per canary and kind, shared by all replicas.
CREATE TABLE gate (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace  TEXT   NOT NULL,
    name       TEXT   NOT NULL,
    kind       TEXT   NOT NULL CHECK (kind IN ('rollout', 'promotion')),
    state      TEXT   NOT NULL CHECK (state IN ('open', 'held')),
    actor      TEXT   NOT NULL,
    reason     TEXT   NOT NULL,
    updated_at BIGINT NOT NULL,
    CONSTRAINT gate_key UNIQUE (namespace, name, kind)
);

-- Every manual action, with the JWT subject that made it.
CREATE TABLE audit (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    actor  TEXT   NOT NULL,
    role   TEXT   NOT NULL,
    action TEXT   NOT NULL,
    target TEXT   NOT NULL,
    reason TEXT   NOT NULL,
    at     BIGINT NOT NULL
);
CREATE INDEX audit_at ON audit (at, id);

-- Grafana annotations waiting to be delivered (retried with back-off, so a Grafana
-- outage loses nothing).
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT   NOT NULL,
    payload         TEXT   NOT NULL,
    created_at      BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    delivered_at    BIGINT,
    external_id     TEXT
);
CREATE INDEX outbox_pending ON outbox (next_attempt_at) WHERE delivered_at IS NULL;

-- Load-test runs started by the load-test hook or `verdict load`.
CREATE TABLE load_run (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace     TEXT   NOT NULL,
    name          TEXT   NOT NULL,
    spec_checksum TEXT   NOT NULL,
    spec          TEXT   NOT NULL,
    status        TEXT   NOT NULL,
    started_at    BIGINT NOT NULL,
    ended_at      BIGINT,
    requests      BIGINT NOT NULL DEFAULT 0,
    status_counts TEXT   NOT NULL DEFAULT '{}',
    latency       TEXT   NOT NULL DEFAULT '{}',
    errors        TEXT   NOT NULL DEFAULT '{}'
);
CREATE INDEX load_run_canary ON load_run (namespace, name, spec_checksum, id);

-- Indexes for the release-manager API (issue 5).
--
-- analysis_canary: a canary's latest analysis and the list filtered by canary, newest
--   first (the unique key starts with (namespace, name) but cannot give the id order).
-- analysis_started: the list filtered by `since`.
-- audit_target: the audit log of one canary, newest first.
CREATE INDEX analysis_canary ON analysis (namespace, name, id);
CREATE INDEX analysis_started ON analysis (started_at);
CREATE INDEX audit_target ON audit (target, id);

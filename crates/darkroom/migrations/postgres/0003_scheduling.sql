-- Scheduling: a job's priority and what it needs from a backend.
--
-- `requirements` is JSON ({"nodes": [...], "models": [{"class_type", "input", "file"}]})
-- computed at submission; NULL for jobs submitted before this migration, which any
-- backend may take. The SQLite migration of the same number, with JSONB for its TEXT.

ALTER TABLE jobs ADD COLUMN priority BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN requirements JSONB;

-- The scheduler's candidates: each owner's queued jobs by priority, then age.
CREATE INDEX jobs_queue_owner ON jobs (state, owner, priority, created_at, id);

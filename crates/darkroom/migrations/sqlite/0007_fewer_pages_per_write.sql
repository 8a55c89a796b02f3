-- Fewer pages written by each commit. Every page a commit changes is written to the log
-- and synced with it, so each index a new job or an event enters costs every submission
-- and every step of a run.
--
-- A job's events become one tree keyed by (job_id, seq) instead of a table and an index
-- on the same key: an event is written to one page instead of two, and a job's events
-- are read from neighbouring rows. Events are small rows, as such a table wants.
--
-- The indexes of columns that are empty until later (a job's backend until it is claimed,
-- its owner without keys, its template for a workflow sent whole) keep only the jobs that
-- have one: the queries that use them ask for one value (`backend_id = ?`, `owner = ?`,
-- `template = ?`), so they never look for the empty ones, and a new job enters fewer
-- indexes.

CREATE TABLE job_events_by_job (
    job_id  TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq     BIGINT NOT NULL,
    kind    TEXT NOT NULL,
    payload TEXT NOT NULL,
    at      BIGINT NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
INSERT INTO job_events_by_job (job_id, seq, kind, payload, at)
    SELECT job_id, seq, kind, payload, at FROM job_events;
DROP TABLE job_events;
ALTER TABLE job_events_by_job RENAME TO job_events;

DROP INDEX jobs_backend_state;
CREATE INDEX jobs_backend_state ON jobs (backend_id, state) WHERE backend_id IS NOT NULL;
DROP INDEX jobs_owner_state;
CREATE INDEX jobs_owner_state ON jobs (owner, state) WHERE owner IS NOT NULL;
DROP INDEX jobs_owner_created;
CREATE INDEX jobs_owner_created ON jobs (owner, created_at, id) WHERE owner IS NOT NULL;
DROP INDEX jobs_template_created;
CREATE INDEX jobs_template_created ON jobs (template, created_at, id)
    WHERE template IS NOT NULL;

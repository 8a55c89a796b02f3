-- Leases: which Darkroom replica drives each backend, and which holds each job
-- on a backend. A lease lasts until `expires_at` (microseconds since the Unix
-- epoch, UTC, as every time here) unless its holder renews it; once it lapses,
-- another replica may take it over, and the old holder's writes are refused.
-- SQLite serves one replica, which holds every lease; the rules are the same.

-- The replica holding a dispatched, running, collecting or canceling job.
-- Claiming sets it; going back to the queue or ending clears it.
ALTER TABLE jobs ADD COLUMN lease_holder TEXT;
ALTER TABLE jobs ADD COLUMN lease_expires_at BIGINT;

-- A backend's jobs, for adoption and renewal by the replica driving it.
CREATE INDEX jobs_backend_state ON jobs (backend_id, state);

CREATE TABLE backend_leases (
    backend_id TEXT PRIMARY KEY NOT NULL,
    holder     TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

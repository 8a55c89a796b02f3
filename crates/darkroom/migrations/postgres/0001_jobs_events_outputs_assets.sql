-- Darkroom's first schema for PostgreSQL: the SQLite baseline of the same
-- number, with PostgreSQL's JSON types.
--
-- Times are BIGINT microseconds since the Unix epoch, UTC, as in SQLite, so
-- both engines sort, compare and page them the same way. Graphs and
-- parameters a client submitted are JSON (kept as sent, key order included,
-- since they are shown back); what Darkroom writes itself is JSONB. Jobs are
-- never deleted: an expired job stays as a tombstone with its events, while
-- its outputs and assets go.

CREATE TABLE jobs (
    id                TEXT PRIMARY KEY NOT NULL,
    state             TEXT NOT NULL,
    workflow          JSON NOT NULL,
    original_workflow JSON NOT NULL,
    original_format   TEXT NOT NULL,
    template          TEXT,
    parameters        JSON,
    backend_id        TEXT,
    prompt_id         TEXT,
    attempt           BIGINT NOT NULL DEFAULT 0,
    owner             TEXT,
    idempotency_key   TEXT,
    keep_previews     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at        BIGINT NOT NULL,
    dispatched_at     BIGINT,
    started_at        BIGINT,
    completed_at      BIGINT,
    expires_at        BIGINT NOT NULL,
    progress          JSONB,
    error             JSONB,
    -- The last event's sequence number; bumped in the transaction that
    -- appends an event, which also serializes appends to one job.
    last_event_seq    BIGINT NOT NULL DEFAULT 0
);

-- The queue (claim, position, bound) and state-filtered listings.
CREATE INDEX jobs_state_created ON jobs (state, created_at, id);
-- Newest-first listings with and without filters.
CREATE INDEX jobs_created ON jobs (created_at, id);
CREATE INDEX jobs_owner_created ON jobs (owner, created_at, id);
CREATE INDEX jobs_template_created ON jobs (template, created_at, id);
-- The expiry sweep.
CREATE INDEX jobs_expires ON jobs (expires_at);

CREATE TABLE job_events (
    job_id  TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq     BIGINT NOT NULL,
    kind    TEXT NOT NULL,
    payload JSONB NOT NULL,
    at      BIGINT NOT NULL,
    PRIMARY KEY (job_id, seq)
);

-- One row per stored file a client can fetch. Several rows may share a hash;
-- the blob on disk goes when the last of them does.
CREATE TABLE assets (
    id           TEXT PRIMARY KEY NOT NULL,
    hash         TEXT NOT NULL,
    size_bytes   BIGINT NOT NULL,
    content_type TEXT NOT NULL,
    file_path    TEXT,
    owner        TEXT,
    job_id       TEXT REFERENCES jobs (id),
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT
);

CREATE INDEX assets_hash ON assets (hash);
CREATE INDEX assets_job ON assets (job_id);

-- A job's outputs; each is backed by the asset of the same id, which cannot be
-- deleted while this row exists.
CREATE TABLE job_outputs (
    asset_id         TEXT PRIMARY KEY NOT NULL REFERENCES assets (id),
    job_id           TEXT NOT NULL REFERENCES jobs (id),
    -- The sequence number of the output's event: orders a job's outputs.
    seq              BIGINT NOT NULL,
    node_id          TEXT NOT NULL,
    name             TEXT NOT NULL,
    output_type      TEXT NOT NULL,
    content_type     TEXT NOT NULL,
    size_bytes       BIGINT NOT NULL,
    hash             TEXT NOT NULL,
    origin_filename  TEXT NOT NULL,
    origin_subfolder TEXT NOT NULL,
    origin_folder    TEXT NOT NULL
);

CREATE INDEX job_outputs_job ON job_outputs (job_id, seq);

-- Single-use keys per owner ('' for requests without an API key), held for
-- 24 hours. Claimed in the transaction that creates the job, so a failed
-- submission never holds a key.
CREATE TABLE idempotency_keys (
    owner           TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    job_id          TEXT NOT NULL REFERENCES jobs (id),
    expires_at      BIGINT NOT NULL,
    PRIMARY KEY (owner, idempotency_key)
);

CREATE INDEX idempotency_keys_expires ON idempotency_keys (expires_at);

-- Every event is announced, when its transaction commits, on the channel
-- `darkroom_events.<schema>` as "<job id> <seq>": replicas listening there read
-- it back from this table for the clients following the job. (PostgreSQL
-- only; a SQLite store has one process and its in-memory bus.)
CREATE FUNCTION announce_job_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('darkroom_events.' || TG_TABLE_SCHEMA, NEW.job_id || ' ' || NEW.seq);
    RETURN NULL;
END;
$$;

CREATE TRIGGER job_events_announce AFTER INSERT ON job_events
    FOR EACH ROW EXECUTE FUNCTION announce_job_event();

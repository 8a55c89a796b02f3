-- API keys. Only a hash of each key is stored (see src/auth/keys.rs for why a fast
-- hash); `shown` is the key's first characters, for people to recognise it by. A
-- revoked key stays, so the owner of its jobs and assets keeps a name.
-- The same statements as the SQLite migration of the same number.

CREATE TABLE api_keys (
    id                  TEXT PRIMARY KEY NOT NULL,
    name                TEXT NOT NULL,
    role                TEXT NOT NULL,
    hash                TEXT NOT NULL,
    shown               TEXT NOT NULL,
    -- Per-key limits; NULL takes the configured default.
    requests_per_minute BIGINT,
    burst               BIGINT,
    max_queued          BIGINT,
    max_streams         BIGINT,
    created_at          BIGINT NOT NULL,
    revoked_at          BIGINT
);

CREATE UNIQUE INDEX api_keys_hash ON api_keys (hash);
-- A name names one live key; a revoked key's name may be given again.
CREATE UNIQUE INDEX api_keys_live_name ON api_keys (name) WHERE revoked_at IS NULL;

-- A key's queued jobs, for its bound on the queue.
CREATE INDEX jobs_owner_state ON jobs (owner, state);

//! The store layer's error type, shared by every engine.

use std::path::PathBuf;

use crate::jobs::model::{AssetId, JobId, JobState, ReplicaId};

/// What a store operation can refuse or fail with. The first group are
/// answers a caller acts on; the last group are faults of the store itself.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("job {0} not found")]
    JobNotFound(JobId),

    #[error("asset {0} not found")]
    AssetNotFound(AssetId),

    /// The key was presented before and has not expired: single use only.
    #[error("idempotency key {key:?} was already used")]
    IdempotencyKeyReused { key: String },

    #[error("queue is full: {queued} jobs are waiting")]
    QueueFull { queued: u64 },

    /// The job's owner already has its limit of jobs waiting.
    #[error("the owner already has {queued} jobs waiting, its limit")]
    OwnerQueueFull { queued: u64 },

    #[error("a live API key is already named {name:?}")]
    KeyNameTaken { name: String },

    /// No live key has this id or name.
    #[error("no live API key has the id or name {key:?}")]
    KeyNotFound { key: String },

    /// The state machine has no such edge.
    #[error("a job cannot move from {from} to {to}")]
    IllegalTransition { from: JobState, to: JobState },

    /// The compare-and-set lost: someone else moved the job first.
    #[error("job {job_id} is {actual}, not {expected}")]
    StateConflict {
        job_id: JobId,
        expected: JobState,
        actual: JobState,
    },

    /// A dispatch record for an attempt the job has since moved past.
    #[error("job {job_id} is on attempt {actual}, not {expected}")]
    StaleAttempt {
        job_id: JobId,
        expected: u32,
        actual: u32,
    },

    /// A write by a replica whose lease on the job was taken over: it must
    /// stop acting on the job, which another replica now drives.
    #[error("job {job_id} is held by replica {holder}")]
    LeaseLost { job_id: JobId, holder: ReplicaId },

    /// Progress for a job that is not on a backend (queued or final).
    #[error("job {job_id} is {state} and takes no progress")]
    JobNotActive { job_id: JobId, state: JobState },

    #[error("asset {asset_id} is an output of job {job_id}, which has not expired")]
    AssetInUse { asset_id: AssetId, job_id: JobId },

    /// Only the scheme is kept: the rest of a URL may hold a password.
    #[error("unsupported store url scheme {scheme:?}")]
    UnsupportedUrl { scheme: String },

    #[error("failed to create data folder {path}")]
    DataFolder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A stored value that no longer parses; the database was edited or is
    /// from a newer version.
    #[error("stored {what} is corrupt: {detail}")]
    Corrupt { what: &'static str, detail: String },

    #[error("failed to encode a record as json")]
    Encode(#[from] serde_json::Error),

    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),

    /// A write done for several requests at once (a batch of submissions) failed as a
    /// whole; each of them gets this, with the one cause.
    #[error("a write shared with other requests failed: {0}")]
    SharedWrite(#[source] std::sync::Arc<StoreError>),

    /// A blob's bytes were handed to an engine that keeps no blobs in its database (only
    /// SQLite with local artifacts stages them).
    #[error(
        "this store keeps no blobs in its database; blob {hash} cannot be written with its record"
    )]
    BlobsNotKept { hash: String },

    /// The database's log could not be written out to disk after a commit: what was
    /// committed is visible, but not known to survive a power cut.
    #[error("cannot flush the database log {path} to disk: {source}")]
    Flush {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A job was committed, and may run, but the flush that would have made it durable
    /// failed: its submitter is told which job it is rather than that nothing happened.
    #[error(
        "job {job_id} was recorded, but the disk did not confirm it ({source}); it may still run"
    )]
    Unconfirmed {
        job_id: JobId,
        #[source]
        source: std::sync::Arc<StoreError>,
    },

    /// A command beside the server that owns the database found it at another schema
    /// version than its own: only that server may migrate it.
    #[error(
        "the database's schema is at version {applied} and this Darkroom's at {expected}, \
         and another Darkroom process serves it: run this command with the darkroom that \
         serves it, or stop that server and start this version's, which upgrades the database"
    )]
    SchemaMismatch { applied: i64, expected: i64 },

    /// The database was upgraded by a newer Darkroom, whose migrations this build lacks.
    #[error(
        "the database's schema is at version {applied}, newer than this Darkroom's \
         ({expected}): a newer Darkroom upgraded it, and no Darkroom downgrades a database; \
         run that newer version, or give this one another database"
    )]
    SchemaNewer { applied: i64, expected: i64 },

    /// The store's writer task ended (the runtime is shutting down) before it answered.
    #[error("the store's writer stopped before answering")]
    WriterStopped,

    /// Another server process serves this SQLite database already.
    #[error(
        "the SQLite database {database} is served by another Darkroom process already (it \
         holds {lock}); stop that one, or give this one another data folder or database URL"
    )]
    InUse { database: PathBuf, lock: PathBuf },

    #[error("cannot lock {lock}")]
    Lock {
        lock: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("database migration failed")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    pub(crate) fn corrupt(what: &'static str, detail: impl ToString) -> Self {
        Self::Corrupt {
            what,
            detail: detail.to_string(),
        }
    }

    /// Whether a database error is a unique-key violation.
    pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
        matches!(error, sqlx::Error::Database(database) if database.is_unique_violation())
    }
}

//! The store: the only place Darkroom's state lives.
//!
//! It owns jobs, their event streams, outputs, assets and idempotency keys,
//! behind one object-safe [`Store`] trait with one engine per database:
//! SQLite (one process, the default) and PostgreSQL (several replicas). It
//! must not run jobs, talk to ComfyUI or touch blob files: it says which
//! blobs are no longer referenced and the caller deletes them. (SQLite keeps
//! the bytes of small blobs in its own database, behind the same blob-store
//! interface: see [`Store::keep_small_blobs`].)
//!
//! Every change that has an event writes the row and the event in one
//! transaction, so a published event always describes committed state.
//!
//! The queries are written once, in `sql/`, in the SQL both databases accept,
//! and compiled into each engine's module against its connection type. What
//! differs between engines stays in the engine: connecting, how a write
//! transaction starts, and the locks a query asks for (`locks.rs`).

mod durability;
mod engine;
mod error;
mod postgres;
mod request;
mod rows;
mod schema;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

pub use durability::Durability;
pub use error::StoreError;
pub use postgres::PostgresStore;
pub use request::{
    AssetRemoval, Dispatch, Ended, Ending, JobChange, JobCursor, JobPage, JobQuery, JobSnapshot,
    Lease, NewEvent, NewJob, QueuedJob, Sweep, Transition,
};
pub use sqlite::SqliteStore;

use crate::artifacts::{BlobHash, BlobStore};
use crate::auth::ApiKey;
use crate::jobs::model::{
    Asset, AssetId, BackendId, Job, JobEvent, JobId, OutputRecord, Progress, PromptId, ReplicaId,
};

/// Who places new jobs (the scheduler), as a store sees it: see [`Store::watch_queue`].
pub trait QueueWatch: Send + Sync + std::fmt::Debug {
    /// Whether a job committed now would be placed at once (a backend has room).
    fn placing(&self) -> bool;

    /// New jobs were committed.
    fn committed(&self);
}

/// How long an idempotency key stays claimed after the job it created.
pub const IDEMPOTENCY_KEY_LIFETIME: time::Duration = time::Duration::hours(24);

/// Durable state for jobs, events, outputs and assets.
///
/// Methods that change a job take the time from the caller and return what
/// they committed. Ids are validated types, never raw strings.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Creates a queued job and its first `status` event. With an
    /// idempotency key, claims the key in the same transaction.
    ///
    /// # Errors
    ///
    /// `IdempotencyKeyReused` when the owner used the key in the last 24
    /// hours; `QueueFull` when `max_queued` is reached; `OwnerQueueFull`
    /// when the owner has `max_queued_for_owner` jobs waiting.
    async fn create_job(&self, job: NewJob) -> Result<JobChange, StoreError>;

    /// # Errors
    ///
    /// Database faults only; a missing job is `Ok(None)`.
    async fn job(&self, id: JobId) -> Result<Option<Job>, StoreError>;

    /// A job as a status read shows it: without its workflows, with its outputs and its
    /// place in the queue.
    ///
    /// # Errors
    ///
    /// Database faults only; a missing job is `Ok(None)`.
    async fn job_snapshot(&self, id: JobId) -> Result<Option<JobSnapshot>, StoreError>;

    /// Jobs matching the query, newest first, with the total count.
    ///
    /// # Errors
    ///
    /// Database faults only.
    async fn list_jobs(&self, query: &JobQuery) -> Result<JobPage, StoreError>;

    /// Moves a job from `from` to `to` only if it is still in `from`, and
    /// appends the `status` event, in one transaction. Entering `dispatched`
    /// bumps the attempt; entering `queued` again clears the backend, prompt
    /// and progress of the attempt that was given up.
    ///
    /// # Errors
    ///
    /// `IllegalTransition` for an edge the state machine lacks;
    /// `StateConflict` when the job is no longer in `from`; `JobNotFound`.
    async fn transition(&self, change: Transition) -> Result<JobChange, StoreError>;

    /// Takes the first queued job (highest priority, then oldest) and moves it to
    /// `dispatched` for `backend_id`, held under `lease`, atomically: two claimers (in one
    /// replica or several) never get the same job.
    ///
    /// # Errors
    ///
    /// Database faults only; an empty queue is `Ok(None)`.
    async fn claim_next_queued(
        &self,
        backend_id: &BackendId,
        lease: &Lease,
        at: OffsetDateTime,
    ) -> Result<Option<JobChange>, StoreError>;

    /// The scheduler's candidates: up to `per_owner` queued jobs of each owner (jobs
    /// without an owner count as one owner), each owner's taken by priority (highest
    /// first), then age, then id; the whole list in that same order.
    ///
    /// # Errors
    ///
    /// Database faults only.
    async fn queued_candidates(&self, per_owner: u32) -> Result<Vec<QueuedJob>, StoreError>;

    /// Moves the job `id` from `queued` to `dispatched` for `backend_id`, held under
    /// `lease` (bumping the attempt, as any entry into `dispatched` does), records
    /// `prompt_id` as the attempt's ComfyUI prompt id, and appends the `status` event,
    /// atomically: of several claimers, in one replica or many, one wins. `Ok(None)` when
    /// the job is no longer queued (canceled, or claimed by another) or does not exist.
    ///
    /// The prompt id is recorded before anything is posted: a job whose claim carries one
    /// may have reached the backend, and start-up looks it up there
    /// ([`record_dispatch`](Self::record_dispatch) says the same of a later id).
    ///
    /// # Errors
    ///
    /// Database faults only.
    async fn claim_queued(
        &self,
        id: JobId,
        backend_id: &BackendId,
        prompt_id: &PromptId,
        lease: &Lease,
        at: OffsetDateTime,
    ) -> Result<Option<JobChange>, StoreError>;

    /// Records the backend and ComfyUI prompt id of a dispatched attempt.
    ///
    /// # Errors
    ///
    /// `StateConflict` unless the job is `dispatched`; `StaleAttempt` when
    /// the job has moved on to another attempt; `LeaseLost` when another
    /// replica holds it; `JobNotFound`.
    async fn record_dispatch(&self, id: JobId, dispatch: &Dispatch) -> Result<Job, StoreError>;

    /// Stores the latest progress snapshot, reported by the replica
    /// `holder`, and appends it as an event.
    ///
    /// # Errors
    ///
    /// `JobNotActive` unless the job is dispatched, running or collecting;
    /// `LeaseLost` when another replica holds it; `JobNotFound`.
    async fn update_progress(
        &self,
        id: JobId,
        progress: &Progress,
        holder: &ReplicaId,
        at: OffsetDateTime,
    ) -> Result<JobEvent, StoreError>;

    /// Appends an event (preview, log, ...) to a job's stream.
    ///
    /// # Errors
    ///
    /// `JobNotFound`.
    async fn append_event(&self, id: JobId, event: NewEvent) -> Result<JobEvent, StoreError>;

    /// Events with a sequence number above `after_seq`, oldest first, at
    /// most `limit`: the resume point of an event stream.
    ///
    /// # Errors
    ///
    /// Database faults only.
    async fn events_after(
        &self,
        id: JobId,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<JobEvent>, StoreError>;

    /// Records an output the replica `holder` stored: its asset row (owner
    /// and expiry from the job), the output row and the `output` event, in
    /// one transaction.
    ///
    /// # Errors
    ///
    /// `LeaseLost` when another replica holds the job; `JobNotFound`; a
    /// database fault when the asset id already exists.
    async fn add_output(
        &self,
        output: &OutputRecord,
        holder: &ReplicaId,
        at: OffsetDateTime,
    ) -> Result<JobEvent, StoreError>;

    /// A run's last steps in one commit, in order: the move into `collecting` (when
    /// given), the last output as [`add_output`](Self::add_output) records it, and the
    /// job's end. Each step runs only if the one before it matched; [`Ended`] says how far
    /// it got. One commit instead of three, for the steps between a run's end on its
    /// backend and its client hearing "done".
    ///
    /// # Errors
    ///
    /// Database faults only.
    async fn end_with_output(&self, ending: &Ending) -> Result<Ended, StoreError>;

    /// A job's outputs in the order they were stored.
    ///
    /// # Errors
    ///
    /// Database faults only.
    async fn outputs(&self, job_id: JobId) -> Result<Vec<OutputRecord>, StoreError>;

    /// # Errors
    ///
    /// A database fault when the id already exists.
    async fn create_asset(&self, asset: &Asset) -> Result<(), StoreError>;

    /// # Errors
    ///
    /// Database faults only; a missing asset is `Ok(None)`.
    async fn asset(&self, id: AssetId) -> Result<Option<Asset>, StoreError>;

    /// Every asset backed by this blob, oldest first.
    ///
    /// # Errors
    ///
    /// Database faults only.
    async fn assets_with_hash(&self, hash: &BlobHash) -> Result<Vec<Asset>, StoreError>;

    /// Deletes an asset record and says whether its blob is now orphaned.
    ///
    /// # Errors
    ///
    /// `AssetInUse` while the asset is an output of an unexpired job;
    /// `AssetNotFound`.
    async fn delete_asset(&self, id: AssetId) -> Result<AssetRemoval, StoreError>;

    /// Every job not in a final state, oldest first: what start-up must
    /// reconcile before doing anything else.
    ///
    /// # Errors
    ///
    /// Database faults only.
    async fn unfinished_jobs(&self) -> Result<Vec<Job>, StoreError>;

    /// How many jobs wait in `queued`.
    ///
    /// # Errors
    ///
    /// Database faults only.
    async fn count_queued(&self) -> Result<u64, StoreError>;

    /// How many queued jobs are ahead of this one (0 = next), or `None` when
    /// the job is not queued.
    ///
    /// # Errors
    ///
    /// Database faults only.
    async fn queue_position(&self, id: JobId) -> Result<Option<u64>, StoreError>;

    /// Expires up to `limit` final jobs whose `expires_at` has passed:
    /// moves them to `expired`, deletes their outputs and assets, deletes
    /// lapsed uploads and idempotency keys, and returns the blobs no asset
    /// refers to any more.
    ///
    /// # Errors
    ///
    /// Database faults only.
    async fn sweep_expired(&self, now: OffsetDateTime, limit: u32) -> Result<Sweep, StoreError>;

    /// Whether several replicas can share this store (PostgreSQL) rather
    /// than one process owning it (SQLite).
    fn is_shared(&self) -> bool;

    /// The blob store to use in front of a local blob folder, `files`. SQLite
    /// keeps small blobs in its database, made durable by the power-safe
    /// commit that records them instead of a file's syncs of their own; other
    /// engines hand `files` back.
    fn keep_small_blobs(&self, files: Arc<dyn BlobStore>) -> Arc<dyn BlobStore> {
        files
    }

    /// Gives the store the scheduler's side of new jobs, so that a job can be placed while
    /// the store makes it durable. SQLite, when `placing`, commits a batch of submissions,
    /// calls `committed`, and answers them once its log is flushed; an engine whose commit
    /// is durable when it returns need not use it, as every submission wakes the
    /// scheduler once it is answered. A later call replaces the earlier one's.
    fn watch_queue(&self, _watch: Arc<dyn QueueWatch>) {}

    /// Ends the store's work at a clean shutdown, once nothing writes any more, and closes
    /// its connections. SQLite first moves its log into the database file, so that the
    /// file alone holds every commit (a copy of it, with the blobs folder, is a whole
    /// backup).
    async fn close(&self) {}

    /// Takes the backend for `lease.holder` when no one holds it, its lease
    /// lapsed at `at`, or the holder already has it (the deadline moves).
    /// Only the holder of a backend's lease drives it.
    ///
    /// # Errors
    ///
    /// Database faults only; a backend another replica holds is `Ok(false)`.
    async fn acquire_backend_lease(
        &self,
        backend_id: &BackendId,
        lease: &Lease,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Moves the holder's deadline on the backend to `lease.expires_at`.
    ///
    /// # Errors
    ///
    /// Database faults only; `Ok(false)` when another replica has taken
    /// the backend: the holder must stop driving it at once.
    async fn renew_backend_lease(
        &self,
        backend_id: &BackendId,
        lease: &Lease,
    ) -> Result<bool, StoreError>;

    /// Gives up the backend and the holder's leases on its jobs now, so
    /// another replica takes them over without waiting for them to lapse.
    ///
    /// # Errors
    ///
    /// Database faults only; a lease not held is left alone.
    async fn release_backend_lease(
        &self,
        backend_id: &BackendId,
        holder: &ReplicaId,
    ) -> Result<(), StoreError>;

    /// Who drives the backend, and until when.
    ///
    /// # Errors
    ///
    /// Database faults only.
    async fn backend_lease(&self, backend_id: &BackendId) -> Result<Option<Lease>, StoreError>;

    /// Takes over the unfinished jobs on the backend that are unheld or whose
    /// holder's lease lapsed at `at`, and returns every job on it that
    /// `lease.holder` now holds, oldest first: what the driver of a backend
    /// it just took must reconcile.
    ///
    /// # Errors
    ///
    /// Database faults only.
    async fn adopt_jobs(
        &self,
        backend_id: &BackendId,
        lease: &Lease,
        at: OffsetDateTime,
    ) -> Result<Vec<Job>, StoreError>;

    /// Moves the deadline of every job `lease.holder` holds on the backend;
    /// returns how many.
    ///
    /// # Errors
    ///
    /// Database faults only.
    async fn renew_job_leases(
        &self,
        backend_id: &BackendId,
        lease: &Lease,
    ) -> Result<u64, StoreError>;

    /// A feed of the events committed from now on by every replica sharing the
    /// store, or `None` when this process is the store's only writer (its own
    /// bus already carries everything).
    ///
    /// # Errors
    ///
    /// Database faults while starting to listen.
    async fn event_feed(&self) -> Result<Option<Box<dyn EventFeed>>, StoreError>;

    /// Stores a new API key (its hash, never the key).
    ///
    /// # Errors
    ///
    /// `KeyNameTaken` when a live key has the same name.
    async fn create_api_key(&self, key: &ApiKey) -> Result<(), StoreError>;

    /// Every key, live and revoked, oldest first.
    ///
    /// # Errors
    ///
    /// Database faults only.
    async fn api_keys(&self) -> Result<Vec<ApiKey>, StoreError>;

    /// The live (not revoked) key whose hash is `hash`: how a request's key is checked.
    ///
    /// # Errors
    ///
    /// Database faults only; no such key is `Ok(None)`.
    async fn live_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, StoreError>;

    /// The live key with this id.
    ///
    /// # Errors
    ///
    /// Database faults only; no such key is `Ok(None)`.
    async fn live_key(&self, id: &str) -> Result<Option<ApiKey>, StoreError>;

    /// How many keys are live: none means requests may come without one (on loopback).
    ///
    /// # Errors
    ///
    /// Database faults only.
    async fn count_live_keys(&self) -> Result<u64, StoreError>;

    /// Revokes the live key whose id or name is `key`, and returns it.
    ///
    /// # Errors
    ///
    /// `KeyNotFound` when no live key has that id or name.
    async fn revoke_api_key(&self, key: &str, at: OffsetDateTime) -> Result<ApiKey, StoreError>;
}

/// Notices of committed events, from any replica.
#[async_trait]
pub trait EventFeed: Send + std::fmt::Debug {
    /// Waits for the next notice.
    ///
    /// # Errors
    ///
    /// Database faults that reconnecting did not cure; asking again retries.
    async fn next(&mut self) -> Result<FeedNotice, StoreError>;
}

/// One notice of an [`EventFeed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedNotice {
    /// The event `seq` of the job is committed: read it with `events_after`.
    Committed { job_id: JobId, seq: u64 },
    /// The feed lost its connection for a while, and notices may be missing:
    /// whoever follows a job should read what it missed from the store.
    Gap,
}

/// The right of one server process to a SQLite database file, held until dropped: the
/// SQLite engine keeps the queue and recent job statuses in memory beside the file, which
/// a second server writing the same file would silently contradict. Other engines (shared
/// by replicas) and in-memory databases need none. Short-lived commands (`darkroom keys`)
/// do not take it.
#[derive(Debug)]
pub struct Ownership {
    _lock: Option<std::fs::File>,
}

/// Claims the database `url` names for this server process: an exclusive lock on
/// `<database file>.lock` beside it (an advisory `flock`, released by the kernel when
/// the process ends, however it ends).
///
/// # Errors
///
/// `InUse` when another process holds it; `Lock` when the lock file cannot be opened.
pub fn claim_ownership(url: &str) -> Result<Ownership, StoreError> {
    let Some(database) = sqlite::database_file(url)? else {
        return Ok(Ownership { _lock: None });
    };
    let lock = sqlite::beside(&database, ".lock");
    sqlite::create_folder_of(&lock)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .map_err(|source| StoreError::Lock {
            lock: lock.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(Ownership { _lock: Some(file) }),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::InUse { database, lock }),
        Err(std::fs::TryLockError::Error(source)) => Err(StoreError::Lock { lock, source }),
    }
}

/// Opens the store for a short-lived command that may run beside a server (`darkroom
/// keys`, the exposure check before binding). A SQLite database no server holds is opened
/// as the server would, migrations included, under its lock so that no server starts on
/// it halfway; one a server holds is left to that server, which alone may migrate it: its
/// schema must then be this build's.
///
/// # Errors
///
/// As [`open`]; `SchemaMismatch` beside a server of another version.
pub async fn open_beside_server(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if !url.starts_with("sqlite:") {
        return open(url).await;
    }
    match claim_ownership(url) {
        Ok(_owned) => open(url).await,
        Err(StoreError::InUse { .. }) => {
            Ok(Arc::new(SqliteStore::open_without_migrating(url).await?))
        }
        Err(error) => Err(error),
    }
}

/// Opens the store a URL names: `sqlite://path/to/file.db`,
/// `sqlite::memory:`, or `postgres://user@host/database` (`postgresql://`
/// too).
///
/// # Errors
///
/// `UnsupportedUrl` for another scheme; database or migration faults.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    let scheme = url.split(':').next().unwrap_or_default();
    match scheme {
        "sqlite" => Ok(Arc::new(SqliteStore::open(url).await?)),
        "postgres" | "postgresql" => Ok(Arc::new(PostgresStore::open(url).await?)),
        _ => Err(StoreError::UnsupportedUrl {
            scheme: scheme.to_owned(),
        }),
    }
}

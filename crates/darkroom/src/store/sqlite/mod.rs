//! The SQLite engine: one file (or memory) database through sqlx, owned by one process.
//!
//! The database runs in WAL mode. Reads share a small pool; writes take turns on one
//! writer connection, which sets `synchronous` for each transaction from the write's
//! [`Durability`] in the same trip as its `BEGIN IMMEDIATE`: `FULL` (the commit waits for
//! the disk: it survives a power cut) or `NORMAL` (survives a crash of Darkroom; made
//! durable by the next FULL commit, since the log is one file in commit order). One writer
//! rather than one per durability: two would each find their page cache stale after the
//! other's commits and read the pages again. `BEGIN IMMEDIATE` makes each compare-and-set
//! and each claim atomic.
//!
//! This process's writers first take one in-process lock (see [`Write`]), so they queue
//! in order without sleeping in SQLite's busy handler, which only another process
//! (`darkroom keys`) still meets. New jobs are committed in batches, one flush for many
//! (`accepts`). Because this process owns the database, the queue and recent jobs'
//! statuses are also kept in memory (`mirror`), updated after each commit under that lock,
//! so queue bounds, queue positions and status reads need no query. A running job's
//! writes are each one trip to the writer's thread (`trips`). The live API keys are kept
//! in memory too, read again when `darkroom keys` marks a change (`key_book`).

mod accepts;
mod blobs;
mod key_book;
// The queries themselves are shared with the other engines: see `store/sql`.
#[path = "../sql/assets.rs"]
mod assets;
#[path = "../sql/events.rs"]
#[expect(
    dead_code,
    reason = "a running job's events are written in one trip here (see trips)"
)]
mod events;
#[path = "../sql/jobs.rs"]
#[expect(
    dead_code,
    reason = "queue bounds are checked in memory here (see accepts)"
)]
mod jobs;
#[path = "../sql/keys.rs"]
#[expect(
    dead_code,
    reason = "keys are looked up and counted in memory here (see key_book)"
)]
mod keys;
#[path = "../sql/leases.rs"]
mod leases;
#[path = "../sql/listing.rs"]
mod listing;
mod locks;
mod mirror;
#[path = "../sql/queue.rs"]
#[expect(
    dead_code,
    reason = "queue counts and positions are kept in memory here"
)]
mod queue;
mod queue_index;
#[path = "../sql/running.rs"]
#[expect(
    dead_code,
    reason = "a running job's writes are made in one trip here (see trips)"
)]
mod running;
mod trips;
mod wal;

use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;

use super::engine::{Touch, shared_store_impl};
use super::schema;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Sqlite, SqliteConnection, Transaction};
use time::OffsetDateTime;
use tokio::sync::{OwnedMutexGuard, mpsc};

use mirror::{Mirror, Status};

use super::{
    AssetRemoval, Dispatch, Durability, EventFeed, JobChange, JobPage, JobQuery, JobSnapshot,
    Lease, NewEvent, NewJob, QueueWatch, QueuedJob, Store, StoreError, Sweep, Transition,
};
use crate::artifacts::{BlobHash, BlobStore};
use crate::auth::ApiKey;
use crate::jobs::model::{
    Asset, AssetId, BackendId, Job, JobEvent, JobId, JobState, OutputRecord, Progress, PromptId,
    ReplicaId,
};
use crate::jobs::requirements::Requirements;
use crate::store::rows::{self, from_micros};
use crate::store::{Ended, Ending};

/// What opening does with the database's schema.
#[derive(Debug, Clone, Copy)]
enum Schema {
    /// Applies this build's pending migrations: the owner of the database.
    Migrate,
    /// Refuses a schema other than this build's, changing nothing.
    Check,
}

/// The database the shared queries are compiled for.
type Db = Sqlite;
type Connection = SqliteConnection;

/// How long a connection waits for another's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Readers that can run beside the one writer WAL allows.
const MAX_CONNECTIONS: u32 = 4;
/// The database file inside a data folder.
const DATABASE_FILE: &str = "darkroom.db";

/// The SQLite engine of [`Store`].
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Readers. In memory, the one connection that holds the database, for everything.
    pool: SqlitePool,
    writer: Writer,
    /// Where `create_job` hands new jobs to be committed in batches.
    accepts: mpsc::UnboundedSender<accepts::Accept>,
    /// The live API keys, in memory.
    keys: Arc<key_book::KeyBook>,
    /// The connection they are read on, when the database is a file.
    key_reader: Option<Arc<tokio::sync::Mutex<SqliteConnection>>>,
}

/// What every write of this process goes through: the lock that orders them and the
/// in-memory state each commit updates.
#[derive(Debug, Clone)]
struct Writer {
    /// The connection writes made statement by statement go through.
    connection: SqlitePool,
    /// With a database file, the connection of the writes made in one trip (a running
    /// job's steps, batches of accepts), the writer's own for good. One taken from a pool
    /// is pinged on its thread each time it goes back (sqlx tests every connection it is
    /// given back), which cost each write a second trip to that thread and held the next
    /// write until it came back. `None` in memory, where the pool's one connection is the
    /// database. Like `connection`, only used under `lock`.
    trips: Option<Arc<tokio::sync::Mutex<SqliteConnection>>>,
    lock: Arc<tokio::sync::Mutex<()>>,
    mirror: Arc<Mutex<Mirror>>,
    /// With a database file, its log, flushed after each batch of accepts (`wal`).
    wal: Option<Arc<wal::WalFile>>,
    /// Who places new jobs (`Store::watch_queue`), asked before each batch of accepts.
    queue_watch: Arc<Mutex<Option<Arc<dyn QueueWatch>>>>,
}

/// A write transaction of this process. It holds the writer lock from before
/// `BEGIN IMMEDIATE` until its commit is mirrored in memory: this process's writers wait
/// here, in turn, instead of polling in SQLite's busy handler, and the mirror sees their
/// commits in the order the database did.
struct Write {
    tx: Transaction<'static, Sqlite>,
    lock: OwnedMutexGuard<()>,
}

impl Deref for Write {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        &self.tx
    }
}

impl DerefMut for Write {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.tx
    }
}

impl Writer {
    async fn begin(&self, durability: Durability) -> Result<Write, StoreError> {
        // The lock first: a writer waiting for it must not hold a connection meanwhile.
        let lock = Arc::clone(&self.lock).lock_owned().await;
        let tx = self.connection.begin_with(begin(durability)).await?;
        Ok(Write { tx, lock })
    }

    /// Commits `write` and records what it `touched` in memory, in a task of its own: a
    /// caller dropped halfway (its client hung up) must not leave a commit done and the
    /// mirror not told.
    async fn commit(&self, write: Write, touched: Touch) -> Result<(), StoreError> {
        let mirror = Arc::clone(&self.mirror);
        let committing = tokio::spawn(async move {
            let Write { tx, lock } = write;
            tx.commit().await?;
            lock_mirror(&mirror).apply(touched);
            drop(lock);
            Ok(())
        });
        committing.await.map_err(|_| StoreError::WriterStopped)?
    }

    fn mirror(&self) -> MutexGuard<'_, Mirror> {
        lock_mirror(&self.mirror)
    }

    /// Moves every commit in the log into the database file and empties the log
    /// (`wal_checkpoint(TRUNCATE)`). False when a reader held the log, so that it could
    /// not be emptied; true at once in memory, which has no log.
    ///
    /// # Errors
    ///
    /// Store faults.
    async fn checkpoint(&self) -> Result<bool, StoreError> {
        let Some(trips) = &self.trips else {
            return Ok(true);
        };
        let _turn = self.lock.lock().await;
        let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&mut *trips.lock().await)
            .await?;
        Ok(busy == 0)
    }

    /// [`Self::checkpoint`], warning (with `moment`: start-up, shutdown) when the log stays
    /// beside the database file. True when it was moved.
    async fn checkpoint_or_warn(&self, moment: &'static str) -> bool {
        match self.checkpoint().await {
            Ok(moved) => {
                if !moved {
                    tracing::warn!(
                        moment,
                        "database log left beside the database file: a reader held it"
                    );
                }
                moved
            }
            Err(error) => {
                tracing::warn!(moment, %error, "database log left beside the database file");
                false
            }
        }
    }
}

/// How a write transaction of `durability` starts. `synchronous` cannot change inside a
/// transaction; sent with the `BEGIN`, it costs no trip of its own to the connection's
/// thread.
fn begin(durability: Durability) -> &'static str {
    match durability {
        Durability::PowerSafe => "PRAGMA synchronous = FULL; BEGIN IMMEDIATE",
        Durability::CrashSafe => "PRAGMA synchronous = NORMAL; BEGIN IMMEDIATE",
    }
}

/// The mirror is updated in whole steps that cannot panic halfway, so a poisoned lock
/// still guards a consistent mirror.
fn lock_mirror(mirror: &Mutex<Mirror>) -> MutexGuard<'_, Mirror> {
    mirror.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SqliteStore {
    /// Opens `sqlite://path` (creating the file and its folder) or
    /// `sqlite::memory:`, and applies pending migrations.
    ///
    /// # Errors
    ///
    /// A malformed URL, a folder that cannot be created, a database that
    /// cannot be opened or migrated.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, Schema::Migrate).await
    }

    /// Opens `sqlite://path` as [`SqliteStore::open`] does, but leaves its schema alone:
    /// for a command beside a server that owns the database, which alone may change it.
    ///
    /// # Errors
    ///
    /// As [`SqliteStore::open`]; `SchemaMismatch` when the database's schema is not this
    /// build's.
    pub async fn open_without_migrating(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, Schema::Check).await
    }

    async fn open_with(url: &str, schema: Schema) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        if is_in_memory(url) {
            return Self::connect_in_memory(options).await;
        }

        create_folder_of(options.get_filename())?;
        Self::connect(options.journal_mode(SqliteJournalMode::Wal), schema).await
    }

    /// Opens (creating) `darkroom.db` inside a data folder.
    ///
    /// # Errors
    ///
    /// As [`SqliteStore::open`].
    pub async fn open_in(folder: &Path) -> Result<Self, StoreError> {
        create_folder(folder)?;
        let options = SqliteConnectOptions::new().filename(folder.join(DATABASE_FILE));
        let options = options
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .journal_mode(SqliteJournalMode::Wal);
        Self::connect(options, Schema::Migrate).await
    }

    /// Moves the log into the database file and closes the readers' connections; pending
    /// writes are already committed.
    pub async fn close(&self) {
        if self.writer.checkpoint_or_warn("shutdown").await {
            tracing::info!("database log moved into the database file");
        }
        self.pool.close().await;
    }

    /// A file database: readers, and one writer.
    async fn connect(options: SqliteConnectOptions, schema: Schema) -> Result<Self, StoreError> {
        let normal = options.clone().synchronous(SqliteSynchronous::Normal);
        // Reading the keys again gets a connection of its own, so a burst of requests that
        // finds them changed does not wait for the readers. Opened first and alone: it
        // creates a new file and switches it to WAL, which fails as busy while another
        // connection opens at the same moment.
        let key_reader = Arc::new(tokio::sync::Mutex::new(normal.connect().await?));
        let pool = Self::pool(normal.clone(), MAX_CONNECTIONS).await?;
        let file = options.get_filename().to_path_buf();
        let full = options.synchronous(SqliteSynchronous::Full);
        let trips = Arc::new(tokio::sync::Mutex::new(full.connect().await?));
        let writer = Self::pool(full, 1).await?;
        Self::start(
            pool,
            writer,
            Some(trips),
            Some(key_reader),
            Some(file),
            schema,
        )
        .await
    }

    /// An in-memory database lives only as long as a connection to it, so its single
    /// connection serves every read and write and is never retired; another connection
    /// would open another, empty database.
    async fn connect_in_memory(options: SqliteConnectOptions) -> Result<Self, StoreError> {
        let pool = Self::pool(options, 1).await?;
        Self::start(pool.clone(), pool, None, None, None, Schema::Migrate).await
    }

    /// A pool of `connections` that are never retired. No ping before each use: it checks
    /// that a server is still there, and an in-process database has none; it would cost
    /// each query another round trip to the connection's thread.
    async fn pool(
        options: SqliteConnectOptions,
        connections: u32,
    ) -> Result<SqlitePool, StoreError> {
        let pool = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(connections)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        Ok(pool)
    }

    /// Migrates the database, loads the queue into memory and starts taking accepts.
    async fn start(
        pool: SqlitePool,
        writer: SqlitePool,
        trips: Option<Arc<tokio::sync::Mutex<SqliteConnection>>>,
        key_reader: Option<Arc<tokio::sync::Mutex<SqliteConnection>>>,
        file: Option<std::path::PathBuf>,
        schema: Schema,
    ) -> Result<Self, StoreError> {
        let migrations = sqlx::migrate!("./migrations/sqlite");
        let expected = schema::latest(&migrations);
        let applied = schema::applied(&mut *pool.acquire().await?, &migrations).await?;
        match schema {
            Schema::Migrate => {
                schema::before_migrating("sqlite", applied, expected)?;
                migrations.run(&pool).await?;
            }
            Schema::Check => {
                let applied = applied.unwrap_or(0);
                if applied != expected {
                    return Err(StoreError::SchemaMismatch { applied, expected });
                }
            }
        }
        let mirror = Mirror::new(load_queue(&pool).await?);
        tracing::info!(
            store.engine = "sqlite",
            queued = mirror.queue.len(),
            "store ready"
        );
        let writer = Writer {
            connection: writer,
            trips,
            lock: Arc::new(tokio::sync::Mutex::new(())),
            mirror: Arc::new(Mutex::new(mirror)),
            wal: file.as_deref().map(|file| Arc::new(wal::WalFile::of(file))),
            queue_watch: Arc::new(Mutex::new(None)),
        };
        // The schema's changes go into the database file now, not at the first automatic
        // checkpoint: the file is whole even if its log is lost. Only by the database's
        // owner: a command beside a server leaves that server's log alone, since the
        // checkpoint would hold the server's writes until it is done.
        if let Schema::Migrate = schema {
            writer.checkpoint_or_warn("start-up").await;
        }
        let accepts = accepts::start(writer.clone());
        Ok(Self {
            pool,
            writer,
            accepts,
            keys: Arc::new(key_book::KeyBook::new(file)),
            key_reader,
        })
    }

    async fn write(&self, durability: Durability) -> Result<Write, StoreError> {
        self.writer.begin(durability).await
    }

    async fn commit(&self, write: Write, touched: Touch) -> Result<(), StoreError> {
        self.writer.commit(write, touched).await
    }

    /// A status read the mirror could not answer: from the database, kept for the next
    /// read unless a write committed meanwhile.
    async fn read_snapshot(&self, id: JobId) -> Result<Option<JobSnapshot>, StoreError> {
        let epoch = self.writer.mirror().epoch();
        let mut connection = self.pool.acquire().await?;
        let Some(job) = jobs::find_summary(&mut connection, id).await? else {
            return Ok(None);
        };
        let outputs = events::outputs(&mut connection, id).await?;
        drop(connection);

        let mut mirror = self.writer.mirror();
        let queue_position = mirror.position(&job);
        mirror.fill(
            Status {
                job: job.clone(),
                outputs: outputs.clone(),
            },
            epoch,
        );
        Ok(Some(JobSnapshot {
            job,
            outputs,
            queue_position,
        }))
    }
}

impl SqliteStore {
    /// Every live key, from memory unless they may have changed (see `key_book`).
    async fn live_keys(&self) -> Result<Arc<key_book::Known>, StoreError> {
        self.keys
            .current(|| async {
                match &self.key_reader {
                    Some(connection) => keys::live(&mut *connection.lock().await).await,
                    None => keys::live(&mut *self.pool.acquire().await?).await,
                }
            })
            .await
    }

    /// What a queued job needs, read once: it never changes, so the queue keeps it.
    async fn learn_requirements(&self, id: JobId) -> Result<Arc<Requirements>, StoreError> {
        let stored: Option<Option<sqlx::types::Json<Requirements>>> =
            sqlx::query_scalar("SELECT requirements FROM jobs WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await?;
        // Jobs from before requirements were stored have none: any backend may take them.
        let requirements = Arc::new(stored.flatten().map(|json| json.0).unwrap_or_default());
        self.writer
            .mirror()
            .queue
            .learn(id, Arc::clone(&requirements));
        Ok(requirements)
    }
}

/// The queued jobs, read into the in-memory queue at open.
async fn load_queue(pool: &SqlitePool) -> Result<queue_index::QueueIndex, StoreError> {
    let rows: Vec<(String, i64, i64, Option<String>)> =
        sqlx::query_as("SELECT id, priority, created_at, owner FROM jobs WHERE state = $1")
            .bind(JobState::Queued.as_str())
            .fetch_all(pool)
            .await?;
    let mut queue = queue_index::QueueIndex::default();
    for (id, priority, created_at, owner) in rows {
        let id: JobId = rows::parse("job id", &id)?;
        let priority =
            i32::try_from(priority).map_err(|_| StoreError::corrupt("priority", priority))?;
        // Checked like every stored time, though the queue keeps the number.
        from_micros(created_at)?;
        queue.insert(id, priority, created_at, owner, None);
    }
    Ok(queue)
}

/// The database file a `sqlite:` URL names, or `None` for an in-memory database.
///
/// # Errors
///
/// A malformed URL.
pub(crate) fn database_file(url: &str) -> Result<Option<std::path::PathBuf>, StoreError> {
    if !url.starts_with("sqlite:") || is_in_memory(url) {
        return Ok(None);
    }
    let options = SqliteConnectOptions::from_str(url)?;
    Ok(Some(options.get_filename().to_path_buf()))
}

/// Creates the folder `file` is in, with its parents, unless it is the current one.
///
/// # Errors
///
/// `DataFolder` naming the folder.
pub(crate) fn create_folder_of(file: &Path) -> Result<(), StoreError> {
    match file.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => create_folder(folder),
        _ => Ok(()),
    }
}

fn create_folder(folder: &Path) -> Result<(), StoreError> {
    std::fs::create_dir_all(folder).map_err(|source| StoreError::DataFolder {
        path: folder.to_path_buf(),
        source,
    })
}

/// The file named `suffix` beside the database `file` (`darkroom.db` + `.lock`).
pub(crate) fn beside(file: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(suffix);
    std::path::PathBuf::from(name)
}

fn is_in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

shared_store_impl! {
    SqliteStore;
    fn is_shared(&self) -> bool {
        false
    }

    fn keep_small_blobs(&self, files: Arc<dyn BlobStore>) -> Arc<dyn BlobStore> {
        let readers = self.pool.clone();
        Arc::new(blobs::SmallBlobs::new(self.writer.clone(), readers, files))
    }

    fn watch_queue(&self, watch: Arc<dyn QueueWatch>) {
        let mut held = self
            .writer
            .queue_watch
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *held = Some(watch);
    }

    async fn create_job(&self, job: NewJob) -> Result<JobChange, StoreError> {
        accepts::submit(&self.accepts, job).await
    }

    async fn transition(&self, change: Transition) -> Result<JobChange, StoreError> {
        self.transition_in_one_trip(&change).await
    }

    async fn claim_queued(
        &self,
        id: JobId,
        backend_id: &BackendId,
        prompt_id: &PromptId,
        lease: &Lease,
        at: OffsetDateTime,
    ) -> Result<Option<JobChange>, StoreError> {
        let change = Transition::new(id, JobState::Queued, JobState::Dispatched, at);
        let claim = jobs::Claim {
            backend_id,
            prompt_id: Some(prompt_id),
            lease,
        };
        self.claim_in_one_trip(&change, &claim).await
    }

    async fn record_dispatch(&self, id: JobId, dispatch: &Dispatch) -> Result<Job, StoreError> {
        self.record_dispatch_in_one_trip(id, dispatch).await
    }

    async fn update_progress(
        &self,
        id: JobId,
        progress: &Progress,
        holder: &ReplicaId,
        at: OffsetDateTime,
    ) -> Result<JobEvent, StoreError> {
        self.progress_in_one_trip(id, progress, holder, at).await
    }

    async fn append_event(&self, id: JobId, event: NewEvent) -> Result<JobEvent, StoreError> {
        self.append_in_one_trip(id, &event).await
    }

    async fn add_output(
        &self,
        output: &OutputRecord,
        holder: &ReplicaId,
        at: OffsetDateTime,
    ) -> Result<JobEvent, StoreError> {
        self.add_output_in_one_trip(output, holder, at).await
    }

    async fn end_with_output(&self, ending: &Ending) -> Result<Ended, StoreError> {
        self.end_with_output_in_one_trip(ending).await
    }

    async fn job_snapshot(&self, id: JobId) -> Result<Option<JobSnapshot>, StoreError> {
        if let Some(snapshot) = self.writer.mirror().snapshot(id) {
            return Ok(Some(snapshot));
        }
        self.read_snapshot(id).await
    }

    async fn queued_candidates(&self, per_owner: u32) -> Result<Vec<QueuedJob>, StoreError> {
        let candidates = self.writer.mirror().queue.candidates(per_owner);
        let mut queued = Vec::with_capacity(candidates.len());
        for candidate in candidates {
            let requirements = match candidate.requirements {
                Some(known) => known,
                None => self.learn_requirements(candidate.id).await?,
            };
            queued.push(QueuedJob {
                id: candidate.id,
                owner: candidate.owner,
                priority: candidate.priority,
                created_at: from_micros(candidate.created_at)?,
                requirements,
            });
        }
        Ok(queued)
    }

    async fn count_queued(&self) -> Result<u64, StoreError> {
        Ok(self.writer.mirror().queue.len())
    }

    async fn count_live_keys(&self) -> Result<u64, StoreError> {
        Ok(self.live_keys().await?.count())
    }

    async fn live_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        Ok(self.live_keys().await?.by_hash(hash))
    }

    async fn live_key(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        Ok(self.live_keys().await?.by_id(id))
    }

    async fn create_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let mut tx = self.write(Durability::PowerSafe).await?;
        keys::insert(&mut tx, key).await?;
        self.commit(tx, Touch::Nothing).await?;
        self.keys.changed();
        Ok(())
    }

    async fn revoke_api_key(&self, key: &str, at: OffsetDateTime) -> Result<ApiKey, StoreError> {
        let mut tx = self.write(Durability::PowerSafe).await?;
        let revoked = keys::revoke(&mut tx, key, at).await?;
        self.commit(tx, Touch::Nothing).await?;
        self.keys.changed();
        tracing::info!(key.id = %revoked.id, "api key revoked");
        Ok(revoked)
    }

    async fn queue_position(&self, id: JobId) -> Result<Option<u64>, StoreError> {
        Ok(self.writer.mirror().queue.position(id))
    }

    async fn event_feed(&self) -> Result<Option<Box<dyn EventFeed>>, StoreError> {
        Ok(None)
    }
}

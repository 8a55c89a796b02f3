//! The SQLite engine: one file (or memory) database through sqlx.
//!
//! The database runs in WAL mode. Reads share a small pool; writes take turns on
//! one of two writer connections, chosen by the write's [`Durability`]: one with
//! `synchronous = FULL` (the commit waits for the disk: it survives a power cut) and
//! one with `synchronous = NORMAL` (survives a crash of Darkroom; flushed by the next
//! FULL commit, since the log is one file in commit order). Writers of this process
//! queue on an async lock instead of in SQLite's busy handler, which sleeps for
//! milliseconds at a time; the busy timeout still covers another process (the
//! `darkroom keys` command) holding the lock. Every write transaction starts with
//! `BEGIN IMMEDIATE`, so each compare-and-set and each claim is atomic.

// The queries themselves are shared with the other engines: see `store/sql`.
#[path = "../sql/assets.rs"]
mod assets;
#[path = "../sql/events.rs"]
mod events;
#[path = "../sql/jobs.rs"]
mod jobs;
#[path = "../sql/keys.rs"]
mod keys;
#[path = "../sql/leases.rs"]
mod leases;
#[path = "../sql/listing.rs"]
mod listing;
mod locks;
#[path = "../sql/queue.rs"]
mod queue;
#[path = "../sql/running.rs"]
mod running;

use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::engine::shared_store_impl;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, SqliteConnection, Transaction};
use time::OffsetDateTime;
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::{
    AssetRemoval, Dispatch, Durability, EventFeed, JobChange, JobPage, JobQuery, Lease, NewEvent,
    NewJob, QueuedJob, Store, StoreError, Sweep, Transition,
};
use crate::artifacts::BlobHash;
use crate::auth::ApiKey;
use crate::jobs::model::{
    Asset, AssetId, BackendId, Job, JobEvent, JobId, OutputRecord, Progress, ReplicaId,
};

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
    /// The writer whose commits wait for the disk.
    power_safe: SqlitePool,
    /// The writer whose commits are handed to the operating system.
    crash_safe: SqlitePool,
    /// Whose turn it is to write.
    writer: Arc<Mutex<()>>,
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
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        if is_in_memory(url) {
            return Self::connect_in_memory(options).await;
        }

        if let Some(folder) = options
            .get_filename()
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
        {
            std::fs::create_dir_all(folder).map_err(|source| StoreError::DataFolder {
                path: folder.to_path_buf(),
                source,
            })?;
        }
        Self::connect(options.journal_mode(SqliteJournalMode::Wal)).await
    }

    /// Opens (creating) `darkroom.db` inside a data folder.
    ///
    /// # Errors
    ///
    /// As [`SqliteStore::open`].
    pub async fn open_in(folder: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(folder).map_err(|source| StoreError::DataFolder {
            path: folder.to_path_buf(),
            source,
        })?;
        let options = SqliteConnectOptions::new().filename(folder.join(DATABASE_FILE));
        let options = options
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .journal_mode(SqliteJournalMode::Wal);
        Self::connect(options).await
    }

    /// Closes every connection; pending writes are already committed.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A file database: the read pool migrates it, then each writer gets its connection.
    async fn connect(options: SqliteConnectOptions) -> Result<Self, StoreError> {
        let pool = Self::pool(
            options.clone().synchronous(SqliteSynchronous::Normal),
            MAX_CONNECTIONS,
        )
        .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        let power_safe =
            Self::pool(options.clone().synchronous(SqliteSynchronous::Full), 1).await?;
        let crash_safe = Self::pool(options.synchronous(SqliteSynchronous::Normal), 1).await?;
        tracing::info!(store.engine = "sqlite", "store ready");
        Ok(Self {
            pool,
            power_safe,
            crash_safe,
            writer: Arc::new(Mutex::new(())),
        })
    }

    /// An in-memory database lives only as long as a connection to it, so its single
    /// connection serves every read and write and is never retired.
    async fn connect_in_memory(options: SqliteConnectOptions) -> Result<Self, StoreError> {
        let pool = Self::pool(options, 1).await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        tracing::info!(store.engine = "sqlite", "store ready");
        Ok(Self {
            power_safe: pool.clone(),
            crash_safe: pool.clone(),
            pool,
            writer: Arc::new(Mutex::new(())),
        })
    }

    /// A pool of `connections` that are never retired.
    async fn pool(
        options: SqliteConnectOptions,
        connections: u32,
    ) -> Result<SqlitePool, StoreError> {
        let pool = SqlitePoolOptions::new()
            .max_connections(connections)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        Ok(pool)
    }

    /// A write transaction on the writer of `durability`, once it is this caller's turn.
    async fn write(&self, durability: Durability) -> Result<Write, StoreError> {
        let turn = Arc::clone(&self.writer).lock_owned().await;
        let writer = match durability {
            Durability::PowerSafe => &self.power_safe,
            Durability::CrashSafe => &self.crash_safe,
        };
        let transaction = writer.begin_with("BEGIN IMMEDIATE").await?;
        Ok(Write {
            transaction,
            _turn: turn,
        })
    }
}

/// A write transaction holding the writers' turn until it is committed or dropped.
struct Write {
    transaction: Transaction<'static, Sqlite>,
    _turn: OwnedMutexGuard<()>,
}

impl Write {
    async fn commit(self) -> Result<(), sqlx::Error> {
        self.transaction.commit().await
    }
}

impl Deref for Write {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        &self.transaction
    }
}

impl DerefMut for Write {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.transaction
    }
}

fn is_in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

shared_store_impl! {
    SqliteStore;
    fn is_shared(&self) -> bool {
        false
    }

    async fn event_feed(&self) -> Result<Option<Box<dyn EventFeed>>, StoreError> {
        Ok(None)
    }
}

//! The SQLite engine: one file (or memory) database through sqlx.
//!
//! Connections run in WAL mode with `synchronous = FULL`, so a committed job
//! survives a power cut, and a busy timeout instead of failing on a lock.
//! Every write transaction starts with `BEGIN IMMEDIATE`: it takes the write
//! lock up front, so two writers queue on the busy timeout instead of one
//! failing when it upgrades a read. That also makes each compare-and-set and
//! each claim atomic.

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

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;

use super::engine::shared_store_impl;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, SqliteConnection, Transaction};
use time::OffsetDateTime;

use super::{
    AssetRemoval, Dispatch, EventFeed, JobChange, JobPage, JobQuery, Lease, NewEvent, NewJob,
    QueuedJob, Store, StoreError, Sweep, Transition,
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
    pool: SqlitePool,
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
            return Self::connect(options, 1).await;
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
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full);
        Self::connect(options, MAX_CONNECTIONS).await
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
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full);
        Self::connect(options, MAX_CONNECTIONS).await
    }

    /// Closes every connection; pending writes are already committed.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn connect(options: SqliteConnectOptions, connections: u32) -> Result<Self, StoreError> {
        // An in-memory database lives only as long as a connection to it, so
        // its single connection is never retired.
        let pool = SqlitePoolOptions::new()
            .max_connections(connections)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        tracing::info!(store.engine = "sqlite", "store ready");
        Ok(Self { pool })
    }

    async fn write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
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

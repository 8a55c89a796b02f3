//! The PostgreSQL engine: the store several Darkroom replicas share.
//!
//! Write transactions run at PostgreSQL's default `READ COMMITTED`: the
//! compare-and-set moves and the per-job event counter are single-row
//! updates, which PostgreSQL serializes on the row, and the claim of a queued
//! job locks its row with `FOR UPDATE SKIP LOCKED`, so replicas claiming at
//! once take different jobs without waiting on each other. What counts rows
//! across the table takes an advisory lock (see `locks`).
//!
//! The store uses whatever schema the connection's `search_path` names first
//! (`public` by default; `?options=-c search_path=NAME` in the URL picks
//! another), and migrates it on open; concurrent openers wait on sqlx's
//! migration lock.

// The queries themselves are shared with the other engines: see `store/sql`.
#[path = "../sql/assets.rs"]
#[expect(clippy::duplicate_mod, reason = "compiled once per engine on purpose")]
mod assets;
#[path = "../sql/events.rs"]
#[expect(clippy::duplicate_mod, reason = "compiled once per engine on purpose")]
mod events;
mod feed;
#[path = "../sql/jobs.rs"]
#[expect(clippy::duplicate_mod, reason = "compiled once per engine on purpose")]
mod jobs;
#[path = "../sql/keys.rs"]
#[expect(clippy::duplicate_mod, reason = "compiled once per engine on purpose")]
#[expect(dead_code, reason = "the SQLite engine reads every live key at once")]
mod keys;
#[path = "../sql/leases.rs"]
#[expect(clippy::duplicate_mod, reason = "compiled once per engine on purpose")]
mod leases;
#[path = "../sql/listing.rs"]
#[expect(clippy::duplicate_mod, reason = "compiled once per engine on purpose")]
mod listing;
mod locks;
#[path = "../sql/queue.rs"]
#[expect(clippy::duplicate_mod, reason = "compiled once per engine on purpose")]
mod queue;
#[path = "../sql/running.rs"]
#[expect(clippy::duplicate_mod, reason = "compiled once per engine on purpose")]
mod running;

use std::str::FromStr;

use async_trait::async_trait;

use super::engine::{Touch, shared_store_impl};
use super::schema;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{PgConnection, Postgres, Transaction};
use time::OffsetDateTime;

use super::{
    AssetRemoval, Dispatch, Durability, EventFeed, JobChange, JobPage, JobQuery, JobSnapshot,
    Lease, NewEvent, NewJob, QueuedJob, Store, StoreError, Sweep, Transition,
};
use crate::artifacts::BlobHash;
use crate::auth::ApiKey;
use crate::jobs::model::{
    Asset, AssetId, BackendId, Job, JobEvent, JobId, JobState, OutputRecord, Progress, PromptId,
    ReplicaId,
};
use crate::store::{Ended, Ending};

/// A step's result, with "did not match" (the job moved, another replica holds it, it is
/// gone) as `None`.
fn unmatched<T>(result: Result<T, StoreError>) -> Result<Option<T>, StoreError> {
    match result {
        Ok(done) => Ok(Some(done)),
        Err(
            StoreError::StateConflict { .. }
            | StoreError::LeaseLost { .. }
            | StoreError::JobNotFound(_),
        ) => Ok(None),
        Err(error) => Err(error),
    }
}

/// The database the shared queries are compiled for.
type Db = Postgres;
type Connection = PgConnection;

/// Connections one replica keeps open: the scheduler's drivers, the API's
/// requests and the retention sweep share them.
const MAX_CONNECTIONS: u32 = 8;

/// The PostgreSQL engine of [`Store`].
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to `postgres://` or `postgresql://` URL and applies pending
    /// migrations to the schema the connection uses.
    ///
    /// # Errors
    ///
    /// A malformed URL, a server that cannot be reached or refuses the
    /// login, a schema that cannot be migrated.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await?;
        let migrations = sqlx::migrate!("./migrations/postgres");
        let applied = schema::applied(&mut *pool.acquire().await?, &migrations).await?;
        schema::before_migrating("postgres", applied, schema::latest(&migrations))?;
        migrations.run(&pool).await?;
        tracing::info!(store.engine = "postgres", "store ready");
        Ok(Self { pool })
    }

    /// Closes every connection; pending writes are already committed.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A write transaction; a crash-safe one commits without waiting for the server's
    /// WAL flush (`synchronous_commit = off`, for this transaction only).
    async fn write(
        &self,
        durability: Durability,
    ) -> Result<Transaction<'static, Postgres>, StoreError> {
        // Sent with the BEGIN, in one round trip (the simple query protocol takes both).
        let begin = match durability {
            Durability::PowerSafe => "BEGIN",
            Durability::CrashSafe => "BEGIN; SET LOCAL synchronous_commit = off",
        };
        Ok(self.pool.begin_with(begin).await?)
    }

    /// Commits a write. Replicas share the database, so nothing of it is kept in memory:
    /// what it touched is read back from the database when asked.
    async fn commit(
        &self,
        tx: Transaction<'static, Postgres>,
        _touched: Touch,
    ) -> Result<(), StoreError> {
        Ok(tx.commit().await?)
    }
}

shared_store_impl! {
    PostgresStore;
    fn is_shared(&self) -> bool {
        true
    }

    async fn create_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let mut tx = self.write(Durability::PowerSafe).await?;
        keys::insert(&mut tx, key).await?;
        self.commit(tx, Touch::Nothing).await?;
        Ok(())
    }

    async fn live_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        let mut connection = self.pool.acquire().await?;
        keys::live_by(&mut connection, keys::KeyColumn::Hash, hash).await
    }

    async fn live_key(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        let mut connection = self.pool.acquire().await?;
        keys::live_by(&mut connection, keys::KeyColumn::Id, id).await
    }

    async fn revoke_api_key(&self, key: &str, at: OffsetDateTime) -> Result<ApiKey, StoreError> {
        let mut tx = self.write(Durability::PowerSafe).await?;
        let revoked = keys::revoke(&mut tx, key, at).await?;
        self.commit(tx, Touch::Nothing).await?;
        tracing::info!(key.id = %revoked.id, "api key revoked");
        Ok(revoked)
    }

    async fn transition(&self, change: Transition) -> Result<JobChange, StoreError> {
        let mut tx = self.write(change.durability()).await?;
        let committed = jobs::transition(&mut tx, &change, None).await?;
        self.commit(tx, Touch::job(&committed.job)).await?;
        Ok(committed)
    }

    async fn claim_queued(
        &self,
        id: JobId,
        backend_id: &BackendId,
        prompt_id: &PromptId,
        lease: &Lease,
        at: OffsetDateTime,
    ) -> Result<Option<JobChange>, StoreError> {
        let mut tx = self.write(Durability::CrashSafe).await?;
        let claimed = queue::claim(&mut tx, id, backend_id, prompt_id, lease, at).await?;
        self.commit(tx, Touch::claimed(claimed.as_ref())).await?;
        Ok(claimed)
    }

    async fn record_dispatch(&self, id: JobId, dispatch: &Dispatch) -> Result<Job, StoreError> {
        let mut tx = self.write(Durability::CrashSafe).await?;
        let job = running::record_dispatch(&mut tx, id, dispatch).await?;
        self.commit(tx, Touch::job(&job)).await?;
        Ok(job)
    }

    async fn update_progress(
        &self,
        id: JobId,
        progress: &Progress,
        holder: &ReplicaId,
        at: OffsetDateTime,
    ) -> Result<JobEvent, StoreError> {
        let mut tx = self.write(Durability::CrashSafe).await?;
        let event = running::update_progress(&mut tx, id, progress, holder, at).await?;
        self.commit(tx, Touch::Forget(vec![id])).await?;
        Ok(event)
    }

    async fn append_event(&self, id: JobId, event: NewEvent) -> Result<JobEvent, StoreError> {
        let mut tx = self.write(Durability::CrashSafe).await?;
        let appended = events::append(&mut tx, id, &event).await?;
        self.commit(tx, Touch::Nothing).await?;
        Ok(appended)
    }

    async fn add_output(
        &self,
        output: &OutputRecord,
        holder: &ReplicaId,
        at: OffsetDateTime,
    ) -> Result<JobEvent, StoreError> {
        let mut tx = self.write(Durability::CrashSafe).await?;
        let event = events::add_output(&mut tx, output, holder, at).await?;
        self.commit(tx, Touch::Forget(vec![output.job_id])).await?;
        Ok(event)
    }

    async fn end_with_output(&self, ending: &Ending) -> Result<Ended, StoreError> {
        if ending.blob.is_some() {
            return Err(StoreError::BlobsNotKept {
                hash: ending.output.hash.to_string(),
            });
        }
        let mut tx = self.write(ending.end.durability()).await?;
        let mut ended = Ended::default();
        // A step that does not match ends the steps; what matched before it commits.
        if let Some(collecting) = &ending.collecting {
            match unmatched(jobs::transition(&mut tx, collecting, None).await)? {
                Some(change) => ended.collecting = Some(change),
                None => return Ok(ended),
            }
        }
        let output = events::add_output(&mut tx, &ending.output, &ending.holder, ending.at).await;
        match unmatched(output)? {
            Some(event) => ended.output = Some(event),
            None => {
                self.commit(tx, Touch::Nothing).await?;
                return Ok(ended);
            }
        }
        ended.end = unmatched(jobs::transition(&mut tx, &ending.end, None).await)?;
        self.commit(tx, Touch::Nothing).await?;
        Ok(ended)
    }

    async fn create_job(&self, job: NewJob) -> Result<JobChange, StoreError> {
        let mut tx = self.write(Durability::PowerSafe).await?;
        let change = jobs::create(&mut tx, &job).await?;
        tx.commit().await?;
        Ok(change)
    }

    async fn job_snapshot(&self, id: JobId) -> Result<Option<JobSnapshot>, StoreError> {
        let mut connection = self.pool.acquire().await?;
        let Some(job) = jobs::find_summary(&mut connection, id).await? else {
            return Ok(None);
        };
        let queue_position = match job.state {
            JobState::Queued => queue::position(&mut connection, id).await?,
            _ => None,
        };
        let outputs = events::outputs(&mut connection, id).await?;
        Ok(Some(JobSnapshot { job, outputs, queue_position }))
    }

    async fn queued_candidates(&self, per_owner: u32) -> Result<Vec<QueuedJob>, StoreError> {
        let mut connection = self.pool.acquire().await?;
        queue::candidates(&mut connection, per_owner).await
    }

    async fn count_live_keys(&self) -> Result<u64, StoreError> {
        let mut connection = self.pool.acquire().await?;
        keys::count_live(&mut connection).await
    }

    async fn count_queued(&self) -> Result<u64, StoreError> {
        let mut connection = self.pool.acquire().await?;
        queue::count_queued(&mut connection).await
    }

    async fn queue_position(&self, id: JobId) -> Result<Option<u64>, StoreError> {
        let mut connection = self.pool.acquire().await?;
        queue::position(&mut connection, id).await
    }

    async fn event_feed(&self) -> Result<Option<Box<dyn EventFeed>>, StoreError> {
        let feed = feed::PgEventFeed::listen(&self.pool).await?;
        Ok(Some(Box::new(feed)))
    }
}

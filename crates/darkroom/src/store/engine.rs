//! The `Store` methods both engines implement alike: each opens a read connection or a
//! write transaction and calls the engine's query module of the same name (`jobs`,
//! `queue`, `events`, ...), which `store/sql/` compiles once per engine. Written once here
//! so the two engines cannot drift; each engine adds only what differs (`is_shared`,
//! `event_feed`, how it creates jobs and reads the queue and a job's status, and how a
//! running job's writes reach the database).
//!
//! Every write commits through the engine's `commit`, saying what it changed that a status
//! read or the queue shows ([`Touch`]): an engine that keeps such state in memory (SQLite)
//! updates it there, in step with the database.

use crate::jobs::model::{Job, JobId, JobSummary, OutputRecord, Progress};
use crate::store::JobChange;

/// What a committed write changed that status reads or the queue show.
#[derive(Debug)]
pub(crate) enum Touch {
    /// Nothing they show: events, leases, assets, keys.
    Nothing,
    /// The job's committed state, whole (boxed: the other cases are a word or three).
    Job(Box<JobSummary>),
    /// A job's new progress, as written.
    Progress(JobId, Box<Progress>),
    /// An output recorded for its job, after every one before it.
    Output(Box<OutputRecord>),
    /// These jobs changed in ways the write does not carry whole (expiry, or a write whose
    /// result could not be read back): what was known of them is stale.
    Forget(Vec<JobId>),
    /// One commit's several changes, in the order it made them.
    Several(Vec<Touch>),
}

impl Touch {
    pub(crate) fn job(job: &Job) -> Self {
        Self::Job(Box::new(JobSummary::from(job)))
    }

    pub(crate) fn claimed(claimed: Option<&JobChange>) -> Self {
        claimed.map_or(Self::Nothing, |change| Self::job(&change.job))
    }
}

/// Implements `Store` for an engine type whose modules `jobs`, `listing`, `queue`,
/// `running`, `events`, `assets`, `leases` and `keys` are in scope at the call, with the
/// engine's own items appended to the impl.
macro_rules! shared_store_impl {
    ($engine:ty; $($own:tt)*) => {
        #[async_trait]
        impl Store for $engine {
            async fn close(&self) {
                // The engine's own, inherent `close`.
                <$engine>::close(self).await;
            }

            async fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
                let mut connection = self.pool.acquire().await?;
                jobs::find(&mut connection, id).await
            }

            async fn list_jobs(&self, query: &JobQuery) -> Result<JobPage, StoreError> {
                let mut connection = self.pool.acquire().await?;
                listing::list(&mut connection, query).await
            }

            async fn claim_next_queued(
                &self,
                backend_id: &BackendId,
                lease: &Lease,
                at: OffsetDateTime,
            ) -> Result<Option<JobChange>, StoreError> {
                let mut tx = self.write(Durability::CrashSafe).await?;
                let claimed = queue::claim_next(&mut tx, backend_id, lease, at).await?;
                self.commit(tx, Touch::claimed(claimed.as_ref())).await?;
                Ok(claimed)
            }

            async fn events_after(
                &self,
                id: JobId,
                after_seq: u64,
                limit: u32,
            ) -> Result<Vec<JobEvent>, StoreError> {
                let mut connection = self.pool.acquire().await?;
                events::after(&mut connection, id, after_seq, limit).await
            }

            async fn outputs(&self, job_id: JobId) -> Result<Vec<OutputRecord>, StoreError> {
                let mut connection = self.pool.acquire().await?;
                events::outputs(&mut connection, job_id).await
            }

            async fn create_asset(&self, asset: &Asset) -> Result<(), StoreError> {
                let mut tx = self.write(Durability::PowerSafe).await?;
                assets::insert(&mut tx, asset).await?;
                self.commit(tx, Touch::Nothing).await
            }

            async fn asset(&self, id: AssetId) -> Result<Option<Asset>, StoreError> {
                let mut connection = self.pool.acquire().await?;
                assets::find(&mut connection, id).await
            }

            async fn assets_with_hash(&self, hash: &BlobHash) -> Result<Vec<Asset>, StoreError> {
                let mut connection = self.pool.acquire().await?;
                assets::with_hash(&mut connection, hash).await
            }

            async fn delete_asset(&self, id: AssetId) -> Result<AssetRemoval, StoreError> {
                let mut tx = self.write(Durability::PowerSafe).await?;
                let removal = assets::delete(&mut tx, id).await?;
                self.commit(tx, Touch::Nothing).await?;
                Ok(removal)
            }

            async fn unfinished_jobs(&self) -> Result<Vec<Job>, StoreError> {
                let mut connection = self.pool.acquire().await?;
                queue::unfinished(&mut connection).await
            }

            async fn sweep_expired(&self, now: OffsetDateTime, limit: u32) -> Result<Sweep, StoreError> {
                let mut tx = self.write(Durability::PowerSafe).await?;
                let sweep = assets::sweep_expired(&mut tx, now, limit).await?;
                self.commit(tx, Touch::Forget(sweep.expired_jobs.clone())).await?;
                if !sweep.expired_jobs.is_empty() {
                    tracing::info!(
                        jobs.expired = sweep.expired_jobs.len(),
                        blobs.orphaned = sweep.orphaned_blobs.len(),
                        "expired jobs"
                    );
                }
                Ok(sweep)
            }

            async fn acquire_backend_lease(
                &self,
                backend_id: &BackendId,
                lease: &Lease,
                at: OffsetDateTime,
            ) -> Result<bool, StoreError> {
                let mut tx = self.write(Durability::PowerSafe).await?;
                let acquired = leases::acquire_backend(&mut tx, backend_id, lease, at).await?;
                self.commit(tx, Touch::Nothing).await?;
                Ok(acquired)
            }

            async fn renew_backend_lease(
                &self,
                backend_id: &BackendId,
                lease: &Lease,
            ) -> Result<bool, StoreError> {
                let mut tx = self.write(Durability::PowerSafe).await?;
                let renewed = leases::renew_backend(&mut tx, backend_id, lease).await?;
                self.commit(tx, Touch::Nothing).await?;
                Ok(renewed)
            }

            async fn release_backend_lease(
                &self,
                backend_id: &BackendId,
                holder: &ReplicaId,
            ) -> Result<(), StoreError> {
                let mut tx = self.write(Durability::PowerSafe).await?;
                leases::release_backend(&mut tx, backend_id, holder).await?;
                self.commit(tx, Touch::Nothing).await?;
                Ok(())
            }

            async fn backend_lease(&self, backend_id: &BackendId) -> Result<Option<Lease>, StoreError> {
                let mut connection = self.pool.acquire().await?;
                leases::backend_lease(&mut connection, backend_id).await
            }

            async fn adopt_jobs(
                &self,
                backend_id: &BackendId,
                lease: &Lease,
                at: OffsetDateTime,
            ) -> Result<Vec<Job>, StoreError> {
                let mut tx = self.write(Durability::PowerSafe).await?;
                let adopted = leases::adopt_jobs(&mut tx, backend_id, lease, at).await?;
                self.commit(tx, Touch::Nothing).await?;
                Ok(adopted)
            }

            async fn renew_job_leases(
                &self,
                backend_id: &BackendId,
                lease: &Lease,
            ) -> Result<u64, StoreError> {
                let mut tx = self.write(Durability::PowerSafe).await?;
                let renewed = leases::renew_jobs(&mut tx, backend_id, lease).await?;
                self.commit(tx, Touch::Nothing).await?;
                Ok(renewed)
            }

            async fn api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
                let mut connection = self.pool.acquire().await?;
                keys::all(&mut connection).await
            }

            $($own)*
        }
    };
}

pub(crate) use shared_store_impl;

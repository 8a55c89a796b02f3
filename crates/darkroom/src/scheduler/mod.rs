//! The scheduler: which job runs where, and keeping every job honest about its state.
//!
//! One driver task per backend claims queued jobs, posts them to its ComfyUI, follows the
//! runs over that backend's websocket, confirms each end in `/history`, has the outputs
//! collected, and reconciles after every socket loss. At start-up, before any new work,
//! every unfinished job is handed back to its backend's driver, which checks it against
//! `/history` and `/queue`.
//!
//! The scheduler never writes a state without the store's compare-and-set, and publishes
//! an event only after the store committed it.

mod assets;
mod collect;
mod driver;
mod run;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::artifacts::LocalBlobStore;
use crate::jobs::bus::JobBus;
use crate::jobs::model::{BackendId, Job, JobError, JobId, JobState};
use crate::store::{Store, StoreError, Transition};

pub use driver::BackendSpec;

/// Tunables of job execution.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long finished jobs are kept.
    pub retention: time::Duration,
    /// How many times a job may be handed to a backend before it fails.
    pub max_attempts: u32,
    /// How often runs are checked in `/history` without a websocket hint.
    pub poll_interval: Duration,
    /// How long a posted prompt may be missing from both `/queue` and `/history` before
    /// it counts as lost (a prompt is briefly in neither while ComfyUI moves it).
    pub lost_grace: Duration,
    /// How long a backend may stay unreachable before its runs are given up (queued again
    /// for another backend or attempt).
    pub backend_lost_after: Duration,
    /// How long a run may take on its backend, from dispatch, before it is stopped there
    /// and its job fails with `run_timeout`; `None` lets runs take as long as they take.
    pub max_run_time: Option<Duration>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            retention: time::Duration::days(7),
            max_attempts: 2,
            poll_interval: Duration::from_secs(1),
            lost_grace: Duration::from_secs(3),
            backend_lost_after: Duration::from_secs(60),
            max_run_time: None,
        }
    }
}

/// What every driver shares.
#[derive(Debug)]
pub struct Context {
    pub store: Arc<dyn Store>,
    pub blobs: LocalBlobStore,
    pub bus: Arc<JobBus>,
    pub settings: Settings,
}

impl Context {
    /// Moves a job if it is still in `from`, and publishes the event. `Ok(None)` when the
    /// job moved meanwhile (someone else won the compare-and-set).
    ///
    /// # Errors
    ///
    /// Store faults other than a lost compare-and-set.
    pub async fn transition(
        &self,
        job_id: JobId,
        from: JobState,
        to: JobState,
        error: Option<JobError>,
    ) -> Result<Option<Job>, StoreError> {
        let now = OffsetDateTime::now_utc();
        let mut change = Transition::new(job_id, from, to, now);
        if let Some(error) = error {
            change = change.with_error(error);
        }
        if to.is_final() {
            change = change.with_expiry(now + self.settings.retention);
        }
        match self.store.transition(change).await {
            Ok(committed) => {
                tracing::info!(job.id = %job_id, job.state = %to, "job state");
                self.bus.publish(committed.event);
                if to.is_final() {
                    self.bus.forget(job_id);
                }
                Ok(Some(committed.job))
            }
            Err(StoreError::StateConflict { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }
}

enum Command {
    Wake,
    Cancel(JobId),
    Shutdown,
}

/// Control of the running scheduler.
#[derive(Debug, Clone)]
pub struct SchedulerHandle {
    drivers: Arc<HashMap<BackendId, mpsc::UnboundedSender<Command>>>,
    context: Arc<Context>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            Self::Wake => "Wake",
            Self::Cancel(_) => "Cancel",
            Self::Shutdown => "Shutdown",
        })
    }
}

/// The running scheduler: its handle and its driver tasks.
#[derive(Debug)]
pub struct Scheduler {
    pub handle: SchedulerHandle,
    tasks: JoinSet<()>,
}

impl Scheduler {
    /// Starts one driver per backend. Each first reconciles the unfinished jobs it owns,
    /// then takes new work.
    ///
    /// # Errors
    ///
    /// Store faults while reading unfinished jobs.
    pub async fn start(context: Context, backends: Vec<BackendSpec>) -> Result<Self, StoreError> {
        let context = Arc::new(context);
        let mut owned: HashMap<BackendId, Vec<Job>> = HashMap::new();
        for job in context.store.unfinished_jobs().await? {
            match (&job.backend_id, job.state) {
                (_, JobState::Queued) => {}
                (Some(backend), _) if backends.iter().any(|spec| &spec.id == backend) => {
                    owned.entry(backend.clone()).or_default().push(job);
                }
                _ => requeue_orphan(&context, &job).await?,
            }
        }

        let mut drivers = HashMap::new();
        let mut tasks = JoinSet::new();
        for spec in backends {
            let (sender, receiver) = mpsc::unbounded_channel();
            let adopted = owned.remove(&spec.id).unwrap_or_default();
            drivers.insert(spec.id.clone(), sender);
            let driver = driver::Driver::new(spec, Arc::clone(&context), receiver, adopted);
            tasks.spawn(driver.run());
        }
        let handle = SchedulerHandle {
            drivers: Arc::new(drivers),
            context,
        };
        Ok(Self { handle, tasks })
    }

    /// Asks every driver to stop after what it is doing (a collection finishes storing)
    /// and waits for them.
    pub async fn shutdown(mut self) {
        for driver in self.handle.drivers.values() {
            let _ = driver.send(Command::Shutdown);
        }
        while self.tasks.join_next().await.is_some() {}
        tracing::info!("scheduler stopped");
    }
}

impl SchedulerHandle {
    /// Tells the drivers new work is queued.
    pub fn wake(&self) {
        for driver in self.drivers.values() {
            let _ = driver.send(Command::Wake);
        }
    }

    /// Cancels a job: a queued one at once, one on a backend through its driver.
    ///
    /// # Errors
    ///
    /// Store faults.
    pub async fn cancel(&self, job: &Job) -> Result<(), StoreError> {
        if job.state == JobState::Queued
            && self
                .context
                .transition(job.id, JobState::Queued, JobState::Canceled, None)
                .await?
                .is_some()
        {
            return Ok(());
        }
        let current = self.context.store.job(job.id).await?;
        let Some(current) = current.filter(|job| !job.state.is_final()) else {
            return Ok(());
        };
        if let Some(driver) = current
            .backend_id
            .as_ref()
            .and_then(|id| self.drivers.get(id))
        {
            let _ = driver.send(Command::Cancel(current.id));
        }
        Ok(())
    }

    /// The shared context (store, blobs, bus).
    pub fn context(&self) -> &Arc<Context> {
        &self.context
    }
}

/// A job whose backend is no longer configured goes back to the queue, or fails when it
/// was collecting (its outputs live on a server we no longer reach).
async fn requeue_orphan(context: &Context, job: &Job) -> Result<(), StoreError> {
    tracing::warn!(job.id = %job.id, backend.id = ?job.backend_id, "job of an unknown backend");
    let (to, error) = match job.state {
        JobState::Dispatched | JobState::Running => (JobState::Queued, None),
        JobState::Canceling => (JobState::Canceled, None),
        _ => (
            JobState::Failed,
            Some(run::job_error(
                "backend_lost",
                "its backend is no longer configured",
            )),
        ),
    };
    context
        .transition(job.id, job.state, to, error)
        .await
        .map(|_| ())
}

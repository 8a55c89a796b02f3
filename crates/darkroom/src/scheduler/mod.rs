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
//!
//! Replicas sharing a store each run a slot per configured backend, but only the holder of
//! a backend's lease runs its driver (one websocket, one router of its prompts); the others
//! stand by and take the backend over when the lease lapses, adopting its unfinished jobs.
//! Every write a driver makes names this replica as the job's holder, so a replica that
//! lost its lease cannot overwrite its successor's work.

mod assets;
mod collect;
mod driver;
mod run;
mod slot;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::artifacts::LocalBlobStore;
use crate::jobs::bus::JobBus;
use crate::jobs::model::{BackendId, Job, JobError, JobId, JobState, ReplicaId};
use crate::store::{Lease, Store, StoreError, Transition};

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
    /// This process among the replicas sharing the store.
    pub replica: ReplicaId,
    /// How long a lease on a backend and its jobs lasts unless renewed; renewed every
    /// third of it. Another replica takes a backend over at most this long after its
    /// holder died.
    pub lease_duration: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            retention: time::Duration::days(7),
            max_attempts: 2,
            poll_interval: Duration::from_secs(1),
            lost_grace: Duration::from_secs(3),
            backend_lost_after: Duration::from_secs(60),
            replica: ReplicaId("local".to_owned()),
            lease_duration: Duration::from_secs(30),
        }
    }
}

impl Settings {
    /// How often leases are renewed, and lapsed ones looked for.
    pub fn heartbeat(&self) -> Duration {
        self.lease_duration / 3
    }
}

/// What every driver shares.
#[derive(Debug)]
pub struct Context {
    pub store: Arc<dyn Store>,
    pub blobs: LocalBlobStore,
    pub bus: Arc<JobBus>,
    pub settings: Settings,
    /// The backends whose lease this replica holds and whose driver runs here.
    driving: Mutex<HashSet<BackendId>>,
    /// Held by a slot deciding whether to take its backend, so two slots of this replica
    /// never both see it driving nothing.
    taking: tokio::sync::Mutex<()>,
}

impl Context {
    #[must_use]
    pub fn new(
        store: Arc<dyn Store>,
        blobs: LocalBlobStore,
        bus: Arc<JobBus>,
        settings: Settings,
    ) -> Self {
        Self {
            store,
            blobs,
            bus,
            settings,
            driving: Mutex::default(),
            taking: tokio::sync::Mutex::default(),
        }
    }

    /// Whether this replica drives the backend now.
    pub fn drives(&self, backend: &BackendId) -> bool {
        self.driving
            .lock()
            .is_ok_and(|driving| driving.contains(backend))
    }

    /// How many backends this replica drives now.
    fn driven_count(&self) -> usize {
        self.driving.lock().map_or(0, |driving| driving.len())
    }

    fn set_driving(&self, backend: &BackendId, driving: bool) {
        if let Ok(mut driven) = self.driving.lock() {
            if driving {
                driven.insert(backend.clone());
            } else {
                driven.remove(backend);
            }
        }
    }

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
        let change = self
            .change(job_id, from, to, error)
            .held_by(self.settings.replica.clone());
        self.commit(change).await
    }

    /// A transition with this replica's retention rules, held by nobody.
    fn change(
        &self,
        job_id: JobId,
        from: JobState,
        to: JobState,
        error: Option<JobError>,
    ) -> Transition {
        let now = OffsetDateTime::now_utc();
        let mut change = Transition::new(job_id, from, to, now);
        if let Some(error) = error {
            change = change.with_error(error);
        }
        if to.is_final() {
            change = change.with_expiry(now + self.settings.retention);
        }
        change
    }

    /// Stores a transition and publishes its event; `Ok(None)` when it lost the
    /// compare-and-set or another replica holds the job.
    async fn commit(&self, change: Transition) -> Result<Option<Job>, StoreError> {
        let (job_id, to) = (change.job_id, change.to);
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
            Err(StoreError::LeaseLost { holder, .. }) => {
                tracing::warn!(job.id = %job_id, replica.holder = %holder, "job taken over by another replica");
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }

    /// A lease for this replica from now on.
    pub fn lease(&self) -> Lease {
        Lease {
            holder: self.settings.replica.clone(),
            expires_at: OffsetDateTime::now_utc() + self.settings.lease_duration,
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
    /// Starts one slot per backend, which runs the backend's driver while this replica
    /// holds its lease. A driver first reconciles the unfinished jobs it adopts, then takes
    /// new work. Jobs of backends no longer configured are given up first.
    ///
    /// # Errors
    ///
    /// Store faults while reading unfinished jobs.
    pub async fn start(context: Context, backends: Vec<BackendSpec>) -> Result<Self, StoreError> {
        let context = Arc::new(context);
        for job in context.store.unfinished_jobs().await? {
            let known = |backend: &BackendId| backends.iter().any(|spec| &spec.id == backend);
            if job.state != JobState::Queued && !job.backend_id.as_ref().is_some_and(known) {
                requeue_orphan(&context, &job).await?;
            }
        }

        let mut drivers = HashMap::new();
        let mut tasks = JoinSet::new();
        for spec in backends {
            let (sender, receiver) = mpsc::unbounded_channel();
            drivers.insert(spec.id.clone(), sender);
            tasks.spawn(slot::run(spec, Arc::clone(&context), receiver));
        }
        tracing::info!(replica.id = %context.settings.replica, "scheduler replica");
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
        let driver = current
            .backend_id
            .as_ref()
            .filter(|backend| self.context.drives(backend))
            .and_then(|backend| self.drivers.get(backend));
        if let Some(driver) = driver {
            let _ = driver.send(Command::Cancel(current.id));
            return Ok(());
        }
        // Another replica drives the job's backend: mark the job, and its driver stops the
        // run when it next looks at the jobs it holds.
        let change = self
            .context
            .change(current.id, current.state, JobState::Canceling, None);
        self.context.commit(change).await.map(|_| ())
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
    // Whoever held it drove a backend this replica does not know: take it regardless.
    let change = context.change(job.id, job.state, to, error);
    context.commit(change).await.map(|_| ())
}

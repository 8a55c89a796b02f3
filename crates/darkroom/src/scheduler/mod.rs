//! The scheduler: which job runs where, and keeping every job honest about its state.
//!
//! One dispatcher task chooses, for queued jobs, a backend able to run them (priority,
//! fair sharing between owners, node classes and models, loaded checkpoints; see `plan`)
//! and claims them. One driver task per backend posts its jobs to its ComfyUI, follows the
//! runs over that backend's websocket, confirms each end in `/history`, has the outputs
//! collected, probes the backend's health and capabilities, and reconciles after every
//! socket loss. A managed backend also has a supervisor that runs its ComfyUI process.
//! At start-up, before any new work, every unfinished job is handed back to its backend's
//! driver, which checks it against `/history` and `/queue`.
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
pub mod board;
pub mod capability;
mod collect;
mod dispatcher;
mod driver;
mod early;
pub mod managed;
mod plan;
mod run;
mod slot;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::artifacts::BlobStore;
use crate::jobs::bus::JobBus;
use crate::jobs::model::{
    BackendId, Job, JobError, JobEvent, JobId, JobState, OutputRecord, ReplicaId,
};
use crate::jobs::requirements::Requirements;
use crate::metrics::Metrics;
use crate::store::{Ended, Ending, Lease, Store, StoreError, Transition};

use board::{BackendStatus, Board};
use capability::Missing;
pub(crate) use collect::display_name;
pub use driver::BackendSpec;
use managed::ProcessEvent;

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
    /// How long a run may take on its backend, from dispatch, before it is stopped there
    /// and its job fails with `run_timeout`; `None` lets runs take as long as they take.
    pub max_run_time: Option<Duration>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            retention: time::Duration::days(7),
            max_attempts: 3,
            poll_interval: Duration::from_secs(1),
            lost_grace: Duration::from_secs(3),
            backend_lost_after: Duration::from_secs(60),
            replica: ReplicaId("local".to_owned()),
            lease_duration: Duration::from_secs(30),
            max_run_time: None,
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
    pub blobs: Arc<dyn BlobStore>,
    pub bus: Arc<JobBus>,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    /// The live status of every backend as this replica sees it; filled by
    /// [`Scheduler::start`].
    pub board: Arc<Board>,
    /// The backends whose lease this replica holds and whose driver runs here.
    driving: Mutex<HashSet<BackendId>>,
    /// Held by a slot deciding whether to take its backend, so two slots of this replica
    /// never both see it driving nothing.
    taking: tokio::sync::Mutex<()>,
}

impl Context {
    /// A context with fresh metrics and an empty board.
    #[must_use]
    pub fn new(
        store: Arc<dyn Store>,
        blobs: Arc<dyn BlobStore>,
        bus: Arc<JobBus>,
        settings: Settings,
    ) -> Self {
        Self {
            store,
            blobs,
            bus,
            settings,
            metrics: Arc::new(Metrics::new()),
            board: Arc::new(Board::new(Vec::new())),
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
        let job_id = change.job_id;
        match self.store.transition(change).await {
            Ok(committed) => {
                self.announce(&committed.job, committed.event);
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

    /// A successful run's last steps in one commit: the move into `collecting` unless the
    /// job (in `from`) is there already, its last `output` (with its `blob`'s bytes when
    /// they were staged for this commit), and `succeeded`; publishes each
    /// step's event in order. What did not match (the job moved meanwhile, another replica
    /// holds it) is `None` in the answer, with every step after it.
    ///
    /// # Errors
    ///
    /// Store faults.
    pub async fn succeed_with_output(
        &self,
        job_id: JobId,
        from: JobState,
        output: OutputRecord,
        blob: Option<bytes::Bytes>,
    ) -> Result<Ended, StoreError> {
        let holder = self.settings.replica.clone();
        let ending = Ending {
            collecting: (from != JobState::Collecting).then(|| {
                self.change(job_id, from, JobState::Collecting, None)
                    .held_by(holder.clone())
            }),
            output,
            blob,
            holder: holder.clone(),
            at: OffsetDateTime::now_utc(),
            end: self
                .change(job_id, JobState::Collecting, JobState::Succeeded, None)
                .held_by(holder),
        };
        let ended = self.store.end_with_output(&ending).await?;
        if let Some(collecting) = &ended.collecting {
            self.announce(&collecting.job, collecting.event.clone());
        }
        if let Some(event) = &ended.output {
            self.bus.publish(event.clone());
            self.metrics.bytes_stored(ending.output.size_bytes);
        }
        if let Some(end) = &ended.end {
            self.announce(&end.job, end.event.clone());
        }
        Ok(ended)
    }

    /// Tells of a committed move of `job` (as the move left it), whose event is `event`:
    /// the log line, the job's event stream, for an end the stream's close and the
    /// metrics, and for a job back in the queue the dispatcher.
    fn announce(&self, job: &Job, event: JobEvent) {
        tracing::info!(job.id = %job.id, job.state = %job.state, "job state");
        self.bus.publish(event);
        if job.state.is_final() {
            self.bus.forget(job.id);
            self.metrics.job_finished(job);
        }
        if job.state == JobState::Queued {
            self.board.poke();
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

/// What a driver is told.
enum Command {
    /// Post this job, claimed for this backend by the dispatcher.
    Run {
        job: Box<Job>,
        front: bool,
    },
    Cancel(JobId),
    /// News from a managed backend's supervisor.
    Process(ProcessEvent),
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
            Self::Run { .. } => "Run",
            Self::Cancel(_) => "Cancel",
            Self::Process(_) => "Process",
            Self::Shutdown => "Shutdown",
        })
    }
}

/// The running scheduler: its handle and its tasks.
#[derive(Debug)]
pub struct Scheduler {
    pub handle: SchedulerHandle,
    tasks: JoinSet<()>,
    /// Stops the dispatcher.
    stop: CancellationToken,
    /// Stops the supervisors, which kill their processes: only once the drivers are done
    /// with them (a collection reads outputs from its ComfyUI).
    stop_processes: CancellationToken,
    supervisors: JoinSet<()>,
}

impl Scheduler {
    /// Starts one slot per backend (and a supervisor per managed backend), then the
    /// dispatcher. A slot runs the backend's driver while this replica holds its lease; a
    /// driver first reconciles the unfinished jobs it adopts, then takes the work the
    /// dispatcher claims for it. Jobs of backends no longer configured are given up first.
    ///
    /// # Errors
    ///
    /// Store faults while reading unfinished jobs.
    pub async fn start(
        mut context: Context,
        backends: Vec<BackendSpec>,
    ) -> Result<Self, StoreError> {
        let statuses = backends.iter().map(BackendSpec::status).collect();
        context.board = Arc::new(Board::new(statuses));
        // New jobs wake the dispatcher as soon as they are committed, even before their
        // submitters are answered (SQLite flushes its log meanwhile).
        context.store.watch_queue(Arc::clone(&context.board) as _);
        let context = Arc::new(context);
        for job in context.store.unfinished_jobs().await? {
            let known = |backend: &BackendId| backends.iter().any(|spec| &spec.id == backend);
            if job.state != JobState::Queued && !job.backend_id.as_ref().is_some_and(known) {
                requeue_orphan(&context, &job).await?;
            }
        }

        let stop = CancellationToken::new();
        let stop_processes = CancellationToken::new();
        let mut drivers = HashMap::new();
        let mut tasks = JoinSet::new();
        let mut supervisors = JoinSet::new();
        for spec in backends {
            let (sender, receiver) = mpsc::unbounded_channel();
            drivers.insert(spec.id.clone(), sender.clone());
            if let Some(managed) = spec.managed.clone() {
                let supervisor = managed::Supervisor {
                    id: spec.id.clone(),
                    spec: managed,
                    client: spec.client.clone(),
                    driver: sender,
                    context: Arc::clone(&context),
                    stop: stop_processes.clone(),
                };
                supervisors.spawn(supervisor.run());
            }
            tasks.spawn(slot::run(spec, Arc::clone(&context), receiver));
        }
        let dispatcher = dispatcher::Dispatcher {
            context: Arc::clone(&context),
            drivers: drivers.clone(),
            stop: stop.clone(),
        };
        tasks.spawn(dispatcher.run());
        tracing::info!(replica.id = %context.settings.replica, "scheduler replica");
        let handle = SchedulerHandle {
            drivers: Arc::new(drivers),
            context,
        };
        Ok(Self {
            handle,
            tasks,
            stop,
            stop_processes,
            supervisors,
        })
    }

    /// Stops placing jobs, asks every driver to stop after what it is doing (a collection
    /// finishes storing), stops the managed processes, and waits for all of it.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        for driver in self.handle.drivers.values() {
            let _ = driver.send(Command::Shutdown);
        }
        while self.tasks.join_next().await.is_some() {}
        self.stop_processes.cancel();
        while self.supervisors.join_next().await.is_some() {}
        tracing::info!("scheduler stopped");
    }
}

/// Why a job cannot be accepted: every backend was probed and each lacks something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unrunnable {
    /// Each backend with the first thing it lacks.
    pub backends: Vec<(BackendId, Missing)>,
}

impl std::fmt::Display for Unrunnable {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("no backend can run this workflow: ")?;
        for (index, (backend, missing)) in self.backends.iter().enumerate() {
            if index > 0 {
                formatter.write_str("; ")?;
            }
            write!(formatter, "backend {:?} lacks {missing}", backend.0)?;
        }
        Ok(())
    }
}

impl SchedulerHandle {
    /// Tells the dispatcher new work is queued.
    pub fn wake(&self) {
        self.context.board.poke();
    }

    /// Refuses requirements that no configured backend could ever meet: only when every
    /// backend's capabilities are known (probed at least once) and each lacks something.
    /// A backend not yet probed might run the job, so then it waits.
    ///
    /// # Errors
    ///
    /// [`Unrunnable`] naming, for each backend, a node class or model it lacks.
    pub fn check_runnable(&self, requirements: &Requirements) -> Result<(), Unrunnable> {
        let mut lacking = Vec::new();
        for status in self.context.board.snapshot() {
            let Some(capabilities) = &status.capabilities else {
                return Ok(());
            };
            match capabilities.missing(requirements) {
                None => return Ok(()),
                Some(missing) => lacking.push((status.id, missing)),
            }
        }
        if lacking.is_empty() {
            return Ok(());
        }
        Err(Unrunnable { backends: lacking })
    }

    /// Every backend's live status.
    pub fn backends(&self) -> Vec<BackendStatus> {
        self.context.board.snapshot()
    }

    /// Holds new work back from a backend (`true`) or gives it work again (`false`);
    /// jobs already on it run to their end. Returns its status, `None` for an unknown name.
    pub fn set_draining(&self, id: &BackendId, draining: bool) -> Option<BackendStatus> {
        let status = self.context.board.update(id, |status| {
            status.draining = draining;
            status.clone()
        })?;
        tracing::info!(backend.id = %id, draining, "backend drain changed");
        self.context.board.poke();
        Some(status)
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

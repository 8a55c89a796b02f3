//! The driver of one backend: claims jobs, posts them, follows them, finishes them.
//!
//! Everything here runs on one task per backend, so the runs of a backend need no locks.
//! A run ends only through `/history`: websocket messages make the driver look sooner,
//! the periodic poll makes sure it looks at all (lost messages, silent sockets). A prompt
//! that is in neither `/queue` nor `/history` was lost (the backend restarted): the job
//! is queued again with a fresh prompt id, up to `max_attempts`, and never called done.
//!
//! The driver does not choose its jobs: the dispatcher claims them for it. It keeps the
//! board up to date (its runs, health, capabilities), so the dispatcher knows its room.
//! Health, probes and the managed process's news live in `health`.
//!
//! A driver runs only while its replica holds the backend's lease, and the backend takes
//! work from this replica's dispatcher only once the driver has adopted the jobs left on
//! it. Every heartbeat it renews that lease and those of its jobs, and adopts the
//! backend's jobs whose holder's lease lapsed (a replica that died); when the renewal
//! fails it stops at once, without another write, and hands its command channel back to
//! the slot.

mod cancel;
mod finish;
mod health;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use comfy::events::ServerMessage;
use comfy::frames::BinaryFrame;
use comfy::{
    ClientId, ComfyError, ComfyUiClient, PromptId, PromptRequest, QueueSnapshot, SocketConfig,
    SocketEvent, SocketHandle, spawn_socket,
};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tracing::Instrument;

use super::board::BackendStatus;
use super::managed::{ManagedSpec, ProcessEvent};
use super::run::{Run, job_error};
use super::{Command, Context, assets};
use crate::jobs::bus::LivePreview;
use crate::jobs::model::{self, BackendId, Job, JobError, JobId, JobState, Progress};
use crate::store::{Dispatch, JobSnapshot, StoreError};

/// One backend to drive.
#[derive(Debug, Clone)]
pub struct BackendSpec {
    pub id: BackendId,
    pub client: ComfyUiClient,
    pub socket: SocketConfig,
    pub weight: u32,
    pub tags: Vec<String>,
    /// Prompts kept inside its ComfyUI at once.
    pub max_prompts: usize,
    /// Set when Darkroom runs the ComfyUI process itself.
    pub managed: Option<ManagedSpec>,
}

impl BackendSpec {
    /// A backend reached through `client`, with the default weight and two prompts.
    pub fn new(id: BackendId, client: ComfyUiClient) -> Self {
        Self {
            id,
            client,
            socket: SocketConfig::default(),
            weight: 1,
            tags: Vec::new(),
            max_prompts: 2,
            managed: None,
        }
    }

    /// Its first entry on the board.
    pub(in crate::scheduler) fn status(&self) -> BackendStatus {
        let mut status = BackendStatus::new(
            self.id.clone(),
            self.weight,
            self.tags.clone(),
            self.max_prompts,
        );
        status.managed = self.managed.is_some();
        status.log_file = self.managed.as_ref().map(ManagedSpec::log_file);
        status
    }
}

/// A job handed over by the dispatcher that waits for the socket to be posted.
struct Unposted {
    job: Job,
    front: bool,
    since: Instant,
}

/// How soon `/history` is asked again after an end hint found it empty (ComfyUI sends
/// `execution_success` before it writes the history entry).
const HINT_RETRY: Duration = Duration::from_millis(50);

/// Why a driver stopped.
pub(super) enum Ended {
    /// Asked to stop: the slot releases the lease.
    Shutdown,
    /// Another replica took the backend: the slot stands by with these commands again,
    /// keeping the managed process's latest news for the next driver.
    LeaseLost {
        commands: mpsc::UnboundedReceiver<Command>,
        process_news: Option<ProcessEvent>,
    },
}

pub(super) struct Driver {
    id: BackendId,
    client: ComfyUiClient,
    socket: SocketHandle,
    socket_events: mpsc::Receiver<SocketEvent>,
    context: Arc<Context>,
    commands: mpsc::UnboundedReceiver<Command>,
    runs: HashMap<PromptId, Run>,
    client_id: Option<ClientId>,
    connected_before: bool,
    unreachable_since: Option<Instant>,
    /// When the lease was last renewed; past its length, this driver may no longer be the
    /// only one, even if the store could not say so.
    lease_renewed_at: Instant,
    lease_lost: bool,
    stopping: bool,
    /// Jobs handed over while the socket was closed.
    unposted: Vec<Unposted>,
    /// Jobs received since the board was last written (their "assigned" marks go).
    taken: HashSet<JobId>,
    /// Claimed jobs without a prompt that this replica holds on the backend but the driver
    /// never received, as the last adoption saw them: the dispatcher may have them on the
    /// way, so they go back to the queue only if the next adoption still finds them.
    strays: HashSet<JobId>,
    /// Whether the jobs left on the backend were adopted since the driver started.
    adopted: bool,
    /// The managed process's latest news, handed to the next driver after a lease loss.
    process_news: Option<ProcessEvent>,
    health: health::HealthFacts,
}

impl Driver {
    pub(super) fn new(
        spec: BackendSpec,
        context: Arc<Context>,
        commands: mpsc::UnboundedReceiver<Command>,
        process_news: Option<ProcessEvent>,
    ) -> Self {
        let mut socket_config = spec.socket;
        socket_config.client_id_prefix = format!("darkroom-{}", spec.id);
        let (socket, socket_events) = spawn_socket(&spec.client, socket_config);
        let health = health::HealthFacts::new(spec.managed.is_some());
        Self {
            id: spec.id,
            client: spec.client,
            socket,
            socket_events,
            context,
            commands,
            runs: HashMap::new(),
            client_id: None,
            connected_before: false,
            unreachable_since: None,
            lease_renewed_at: Instant::now(),
            lease_lost: false,
            stopping: false,
            unposted: Vec::new(),
            taken: HashSet::new(),
            strays: HashSet::new(),
            adopted: false,
            process_news,
            health,
        }
    }

    pub(super) async fn run(mut self) -> Ended {
        let span = tracing::info_span!("backend", backend.id = %self.id);
        async move {
            if let Some(news) = self.process_news.clone() {
                self.on_process(news).await;
            }
            self.adopt().await;
            self.set_driven(true);
            self.poll().await;
            let mut poll = tokio::time::interval(self.context.settings.poll_interval);
            let mut heartbeat = tokio::time::interval(self.context.settings.heartbeat());
            heartbeat.reset();
            while !self.stopping {
                let hinted = self.runs.values().any(|run| run.end_hinted);
                tokio::select! {
                    event = self.socket_events.recv() => match event {
                        Some(event) => {
                            self.on_socket(event).await;
                            self.flush_progress().await;
                        }
                        None => break,
                    },
                    command = self.commands.recv() => self.on_command(command).await,
                    _ = poll.tick() => self.poll().await,
                    _ = heartbeat.tick() => self.heartbeat().await,
                    () = tokio::time::sleep(HINT_RETRY), if hinted => self.check_hinted().await,
                }
                self.sync_board();
            }
            if !self.lease_lost {
                self.requeue_unposted("darkroom is stopping").await;
            }
            self.socket.shutdown();
            self.set_driven(false);
            tracing::info!(lease_lost = self.lease_lost, "driver stopped");
            if self.lease_lost {
                Ended::LeaseLost {
                    commands: self.commands,
                    process_news: self.process_news,
                }
            } else {
                Ended::Shutdown
            }
        }
        .instrument(span)
        .await
    }

    /// Renews the backend's lease and its jobs', then adopts what lapsed. A lost lease stops
    /// the driver at once; so does a store that could not renew it for a whole lease.
    async fn heartbeat(&mut self) {
        let lease = self.context.lease();
        match self
            .context
            .store
            .renew_backend_lease(&self.id, &lease)
            .await
        {
            Ok(true) => self.lease_renewed_at = Instant::now(),
            Ok(false) => return self.lose_lease("another replica holds the backend"),
            Err(error) => {
                tracing::error!(%error, "backend lease not renewed");
                if self.lease_renewed_at.elapsed() >= self.context.settings.lease_duration {
                    self.lose_lease("the lease lapsed before the store could renew it");
                }
                return;
            }
        }
        if let Err(error) = self.context.store.renew_job_leases(&self.id, &lease).await {
            tracing::error!(%error, "job leases not renewed");
        }
        self.adopt().await;
    }

    /// Stops driving without another write: the runs are the new holder's now.
    fn lose_lease(&mut self, reason: &str) {
        tracing::warn!(
            reason,
            runs = self.runs.len(),
            "backend lease lost; driver stops"
        );
        self.runs.clear();
        self.unposted.clear();
        self.lease_lost = true;
        self.stopping = true;
    }

    /// Takes over the backend's jobs that nobody holds now (after a restart, or from a
    /// replica that died), and stops the runs another replica asked to cancel.
    async fn adopt(&mut self) {
        let adopted = self
            .context
            .store
            .adopt_jobs(&self.id, &self.context.lease(), OffsetDateTime::now_utc())
            .await;
        let jobs = match adopted {
            Ok(jobs) => jobs,
            Err(error) => return tracing::error!(%error, "cannot adopt the backend's jobs"),
        };
        let first = !std::mem::replace(&mut self.adopted, true);
        let mut strays = HashSet::new();
        for job in jobs {
            let known = self.runs.values().find(|run| run.job_id == job.id);
            let unposted = self
                .unposted
                .iter()
                .any(|unposted| unposted.job.id == job.id);
            match known {
                Some(run) if job.state == JobState::Canceling && !run.cancel_requested => {
                    self.cancel(job.id).await;
                }
                Some(_) => {}
                None if unposted => {}
                None if job.prompt_id.is_none() && !first && !self.strays.contains(&job.id) => {
                    strays.insert(job.id);
                }
                None => self.adopt_job(job).await,
            }
        }
        self.strays = strays;
    }

    /// Takes one job back: a posted run is followed again, checked against `/history` and
    /// `/queue` by the next poll.
    async fn adopt_job(&mut self, job: Job) {
        let Some(prompt_id) = job
            .prompt_id
            .as_ref()
            .map(|id| PromptId::new(id.0.as_str()))
        else {
            // Claimed but never posted: nothing ran.
            return self.settle(&job, JobState::Queued, None).await;
        };
        let mut run = Run::new(&job, prompt_id.clone(), job.state);
        run.cancel_requested = job.state == JobState::Canceling;
        run.adopted = true;
        run.dispatched_at = job.dispatched_at.unwrap_or(run.dispatched_at);
        tracing::info!(job.id = %job.id, prompt.id = %prompt_id, job.state = %job.state, "reconciling job");
        self.runs.insert(prompt_id, run);
    }

    async fn on_command(&mut self, command: Option<Command>) {
        match command {
            Some(Command::Run { job, front }) => {
                self.taken.insert(job.id);
                self.unposted.push(Unposted {
                    job: *job,
                    front,
                    since: Instant::now(),
                });
                self.post_unposted().await;
            }
            Some(Command::Process(event)) => {
                self.process_news = Some(event.clone());
                self.on_process(event).await;
            }
            Some(Command::Cancel(job_id)) => self.cancel(job_id).await,
            Some(Command::Shutdown) | None => self.stopping = true,
        }
    }

    async fn on_socket(&mut self, event: SocketEvent) {
        match event {
            SocketEvent::Connected { client_id } => {
                // A socket that opens is a backend that answers: without this, a backend
                // whose runs were all given up would never be offered work again.
                self.unreachable_since = None;
                self.client_id = Some(client_id);
                // Whatever came back may be another server: know it before giving it work.
                self.probe().await;
                if std::mem::replace(&mut self.connected_before, true) {
                    // Messages sent while we were away are gone: look at every run.
                    self.poll().await;
                }
                self.post_unposted().await;
            }
            SocketEvent::Disconnected { reason, .. } => {
                self.client_id = None;
                self.context
                    .board
                    .note_error(&self.id, format!("websocket lost: {reason}"));
            }
            SocketEvent::Message(message) => self.on_message(message).await,
            SocketEvent::Frame(BinaryFrame::Preview(preview)) => self.on_preview(preview),
            SocketEvent::Frame(frame) => tracing::debug!(?frame, "frame ignored"),
        }
    }

    async fn on_message(&mut self, message: ServerMessage) {
        let Some(prompt_id) = message.prompt_id().cloned() else {
            return;
        };
        let Some(run) = self.runs.get_mut(&prompt_id) else {
            tracing::debug!(prompt.id = %prompt_id, kind = message.kind(), "message for a prompt not ours");
            return;
        };
        let job_id = run.job_id;
        let started = matches!(message, ServerMessage::ExecutionStart(_))
            && run.state == JobState::Dispatched;
        let loaded = started.then(|| run.models.clone());
        if started {
            run.state = JobState::Running;
        }
        let write_progress = run.observe(&message);
        let progress = write_progress.then(|| run.progress());
        if message.hints_run_ended() {
            run.end_hinted = true;
        }
        if let ServerMessage::Executed(executed) = &message
            && run.state != JobState::Canceling
        {
            run.early
                .announce(&self.client, job_id, run.keep_previews, executed);
        }
        if let Some(models) = loaded {
            self.loaded(models);
        }

        if started {
            self.log_store_error(
                self.context
                    .transition(job_id, JobState::Dispatched, JobState::Running, None)
                    .await,
            );
        }
        if let Some(progress) = progress
            && let Some(run) = self.runs.get_mut(&prompt_id)
        {
            run.unwritten = Some(progress);
        }
        if message.hints_run_ended() {
            // The run's last snapshot goes before its end, so every run that reported
            // progress shows it, in order.
            let unwritten = self
                .runs
                .get_mut(&prompt_id)
                .and_then(|run| run.unwritten.take());
            if let Some(progress) = unwritten {
                self.write_progress(job_id, &progress).await;
            }
            self.check_history(&prompt_id).await;
        }
    }

    /// Writes each run's newest unwritten progress once no websocket message is waiting.
    /// A burst of messages (a fast node sends several at once) is one write, of its newest
    /// snapshot, instead of a commit per message that holds up the messages behind it,
    /// the run's end among them.
    async fn flush_progress(&mut self) {
        if !self.socket_events.is_empty() {
            return;
        }
        let due: Vec<(JobId, Progress)> = self
            .runs
            .values_mut()
            .filter_map(|run| run.unwritten.take().map(|progress| (run.job_id, progress)))
            .collect();
        for (job_id, progress) in due {
            self.write_progress(job_id, &progress).await;
        }
    }

    async fn write_progress(&self, job_id: JobId, progress: &Progress) {
        match self
            .context
            .store
            .update_progress(
                job_id,
                progress,
                &self.context.settings.replica,
                OffsetDateTime::now_utc(),
            )
            .await
        {
            Ok(event) => self.context.bus.publish(event),
            Err(StoreError::JobNotActive { .. } | StoreError::LeaseLost { .. }) => {}
            Err(error) => tracing::error!(job.id = %job_id, %error, "progress not stored"),
        }
    }

    fn on_preview(&self, preview: comfy::frames::Preview) {
        let named = preview
            .metadata
            .as_ref()
            .and_then(|metadata| metadata.prompt_id.clone());
        let run = match &named {
            Some(prompt_id) => self.runs.get(prompt_id),
            // Legacy frames name no prompt; one ComfyUI runs one prompt at a time.
            None => self
                .runs
                .values()
                .find(|run| run.state == JobState::Running),
        };
        let Some(run) = run else { return };
        let node_id = preview
            .metadata
            .as_ref()
            .and_then(|metadata| {
                metadata
                    .node_id
                    .as_ref()
                    .map(|node| node.as_str().to_owned())
            })
            .or_else(|| run.current_node().map(str::to_owned));
        let live = LivePreview {
            node_id,
            content_type: preview.format.mime_type(),
            image: preview.image,
        };
        self.context.bus.preview(run.job_id, live);
    }

    async fn check_hinted(&mut self) {
        let hinted: Vec<PromptId> = self
            .runs
            .iter()
            .filter(|(_, run)| run.end_hinted)
            .map(|(prompt_id, _)| prompt_id.clone())
            .collect();
        for prompt_id in hinted {
            self.check_history(&prompt_id).await;
        }
    }

    /// Asks `/history` about one run and finishes it when it is there.
    async fn check_history(&mut self, prompt_id: &PromptId) {
        match self.client.history(prompt_id).await {
            Ok(Some(entry)) => {
                self.unreachable_since = None;
                self.finish(prompt_id, entry).await;
            }
            Ok(None) => self.unreachable_since = None,
            Err(error) => self.note_unreachable(&error),
        }
    }

    /// Looks at every run: finished ones are finished, lost ones given up or retried.
    /// An idle backend gets a light health probe instead.
    async fn poll(&mut self) {
        if self.runs.is_empty() {
            self.probe_health().await;
        }
        let prompt_ids: Vec<PromptId> = self.runs.keys().cloned().collect();
        let mut queue: Option<QueueSnapshot> = None;
        for prompt_id in prompt_ids {
            self.check_history(&prompt_id).await;
            let Some(run) = self.runs.get(&prompt_id) else {
                continue;
            };
            if run.since.elapsed() < self.context.settings.lost_grace
                || self.unreachable_since.is_some()
            {
                continue;
            }
            if queue.is_none() {
                match self.client.queue().await {
                    Ok(snapshot) => queue = Some(snapshot),
                    Err(error) => {
                        self.note_unreachable(&error);
                        return;
                    }
                }
            }
            if queue
                .as_ref()
                .is_some_and(|queue| !queue.contains(&prompt_id))
            {
                // It may have finished between the two looks.
                self.check_history(&prompt_id).await;
                let never_arrived = self
                    .runs
                    .get(&prompt_id)
                    .map(|run| run.adopted && run.state == JobState::Dispatched);
                match never_arrived {
                    Some(true) => self.never_arrived(&prompt_id).await,
                    Some(false) => {
                        self.lose(&prompt_id, "the backend no longer knows the prompt")
                            .await;
                    }
                    None => {}
                }
            }
        }
        self.give_up_if_unreachable_too_long().await;
        self.stop_overlong_runs().await;
    }

    /// Fails every run that has been on the backend longer than `max_run_time`, with
    /// `run_timeout`, and stops it there. The job is failed first, so the interrupted
    /// run's history entry finds it final and changes nothing.
    async fn stop_overlong_runs(&mut self) {
        let Some(limit) = self.context.settings.max_run_time else {
            return;
        };
        let now = OffsetDateTime::now_utc();
        let overlong: Vec<PromptId> = self
            .runs
            .iter()
            .filter(|(_, run)| run.state != JobState::Canceling && now - run.dispatched_at > limit)
            .map(|(prompt_id, _)| prompt_id.clone())
            .collect();
        for prompt_id in overlong {
            let Some(run) = self.runs.remove(&prompt_id) else {
                continue;
            };
            if let Some(status) = self.current_status(run.job_id).await {
                let job = status.job;
                tracing::warn!(job.id = %job.id, prompt.id = %prompt_id, ?limit, "run took too long; stopping it");
                let error = job_error(
                    "run_timeout",
                    format!("the run took longer than the limit of {limit:?}"),
                );
                self.settle_from(job.id, job.state, JobState::Failed, Some(error))
                    .await;
            }
            self.stop_on_backend(&prompt_id).await;
        }
    }

    fn note_unreachable(&mut self, error: &ComfyError) {
        if self.unreachable_since.is_none() {
            tracing::warn!(%error, "backend unreachable");
            self.unreachable_since = Some(Instant::now());
            self.context
                .board
                .note_error(&self.id, format!("unreachable: {error}"));
        }
    }

    async fn give_up_if_unreachable_too_long(&mut self) {
        let too_long = self
            .unreachable_since
            .is_some_and(|since| since.elapsed() > self.context.settings.backend_lost_after);
        if too_long {
            let prompt_ids: Vec<PromptId> = self.runs.keys().cloned().collect();
            for prompt_id in prompt_ids {
                self.lose(&prompt_id, "the backend has been unreachable too long")
                    .await;
            }
        }
        let lost_after = self.context.settings.backend_lost_after;
        if self
            .unposted
            .iter()
            .any(|unposted| unposted.since.elapsed() > lost_after)
        {
            self.requeue_unposted("the backend has been unreachable too long")
                .await;
        }
    }

    /// Loses every run at once: the process running them is gone.
    async fn lose_all(&mut self, reason: &str) {
        let prompt_ids: Vec<PromptId> = self.runs.keys().cloned().collect();
        for prompt_id in prompt_ids {
            self.lose(&prompt_id, reason).await;
        }
    }

    /// Gives the jobs never posted back to the queue.
    async fn requeue_unposted(&mut self, reason: &str) {
        for unposted in std::mem::take(&mut self.unposted) {
            tracing::info!(job.id = %unposted.job.id, reason, "job handed back unposted");
            self.settle(&unposted.job, JobState::Queued, None).await;
        }
    }

    /// A run found at start-up, claimed but never heard starting, that the backend does not
    /// know: Darkroom stopped between the claim and the post, so nothing ran. The job goes
    /// back to the queue without a lost attempt, as one handed back unposted.
    async fn never_arrived(&mut self, prompt_id: &PromptId) {
        let Some(run) = self.runs.remove(prompt_id) else {
            return;
        };
        tracing::info!(job.id = %run.job_id, prompt.id = %prompt_id, "prompt never reached the backend; job queued again");
        self.settle_from(run.job_id, JobState::Dispatched, JobState::Queued, None)
            .await;
    }

    /// A run the backend lost: the job goes back to the queue for another attempt, or
    /// fails when it had its attempts.
    async fn lose(&mut self, prompt_id: &PromptId, reason: &str) {
        let Some(run) = self.runs.remove(prompt_id) else {
            return;
        };
        tracing::warn!(job.id = %run.job_id, prompt.id = %prompt_id, reason, "run lost");
        self.context.metrics.run_lost(&self.id.0);
        self.context.board.note_error(
            &self.id,
            format!("run of job {} lost: {reason}", run.job_id),
        );
        let Some(status) = self.current_status(run.job_id).await else {
            return;
        };
        let job = status.job;
        let retry = job.attempt < self.context.settings.max_attempts;
        let outcome = if retry && job.state != JobState::Canceling {
            "queued again"
        } else {
            "no attempt left"
        };
        self.record_attempt(
            job.id,
            job.attempt,
            "warn",
            format!(
                "attempt {} on backend {:?} lost: {reason}; {outcome}",
                job.attempt, self.id.0
            ),
            serde_json::json!({"outcome": "lost", "reason": reason}),
        )
        .await;
        let (to, error) = match job.state {
            JobState::Canceling => (JobState::Canceled, None),
            JobState::Dispatched | JobState::Running if retry => (JobState::Queued, None),
            _ => (
                JobState::Failed,
                Some(job_error(
                    "backend_lost",
                    format!(
                        "{reason} (attempt {} of {})",
                        job.attempt, self.context.settings.max_attempts
                    ),
                )),
            ),
        };
        self.settle_from(job.id, job.state, to, error).await;
    }

    /// Posts the jobs handed over, once the socket is open (prompts must carry the id of
    /// the socket that follows them).
    async fn post_unposted(&mut self) {
        while !self.stopping {
            let Some(client_id) = self.client_id.clone() else {
                return;
            };
            if self.unposted.is_empty() {
                return;
            }
            let unposted = self.unposted.remove(0);
            self.dispatch(unposted, client_id).await;
        }
    }

    /// Posts a claimed job. Its prompt id is recorded before the post (by the claim, or here
    /// for a job claimed without one), so a lost response is resolved by looking the id up
    /// rather than by posting twice.
    async fn dispatch(&mut self, unposted: Unposted, client_id: ClientId) {
        let Unposted { job, front, since } = unposted;
        let Some(mut graph) = job.workflow.as_object().cloned() else {
            let error = job_error("invalid_workflow", "the workflow is not an object of nodes");
            return self.settle(&job, JobState::Failed, Some(error)).await;
        };
        if let Err(error) = assets::resolve(&self.context, &self.client, &mut graph).await {
            return self.settle(&job, JobState::Failed, Some(error)).await;
        }
        let prompt_id = match &job.prompt_id {
            // Recorded by the claim, which also made this backend the job's.
            Some(claimed) => PromptId::new(claimed.0.as_str()),
            None => {
                let prompt_id = PromptId::random();
                let dispatch = self.dispatch_of(&job, &prompt_id);
                if let Err(error) = self.context.store.record_dispatch(job.id, &dispatch).await {
                    return tracing::warn!(job.id = %job.id, %error, "dispatch not recorded; job moved on");
                }
                prompt_id
            }
        };
        tracing::info!(job.id = %job.id, prompt.id = %prompt_id, attempt = job.attempt, "posting prompt");
        let run = Run::new(&job, prompt_id.clone(), JobState::Dispatched);
        self.runs.insert(prompt_id.clone(), run);

        let mut request = PromptRequest::new(graph, client_id);
        request.prompt_id = Some(prompt_id.clone());
        request.front = front;
        match self.client.queue_prompt(&request).await {
            Ok(accepted) => {
                self.context
                    .metrics
                    .prompt_accepted(&self.id.0, since.elapsed().as_secs_f64());
                self.record_attempt(
                    job.id,
                    job.attempt,
                    "info",
                    format!("attempt {} posted to backend {:?}", job.attempt, self.id.0),
                    serde_json::json!({"outcome": "posted", "prompt_id": accepted.prompt_id.as_str(), "front": front}),
                )
                .await;
                if !accepted.node_errors.is_empty() {
                    tracing::warn!(job.id = %job.id, nodes = ?accepted.node_errors.keys().collect::<Vec<_>>(), "some outputs failed validation and will not run");
                }
                if accepted.prompt_id != prompt_id {
                    // A server that ignores client-chosen ids (before 0.3.45).
                    self.rekey(&job, &prompt_id, accepted.prompt_id).await;
                }
            }
            Err(ComfyError::Rejected(rejection)) => {
                self.runs.remove(&prompt_id);
                self.context
                    .board
                    .note_error(&self.id, format!("prompt refused: {rejection}"));
                let error = job_error("invalid_workflow", rejection.to_string());
                self.settle(&job, JobState::Failed, Some(error)).await;
            }
            Err(error) if error.is_transient() => {
                // The prompt may or may not have arrived; the poll finds out by its id.
                tracing::warn!(job.id = %job.id, %error, "post of prompt unanswered");
            }
            Err(error) => {
                self.runs.remove(&prompt_id);
                self.context
                    .board
                    .note_error(&self.id, format!("prompt not posted: {error}"));
                self.settle(
                    &job,
                    JobState::Failed,
                    Some(job_error("dispatch_failed", error.to_string())),
                )
                .await;
            }
        }
    }

    async fn rekey(&mut self, job: &Job, ours: &PromptId, theirs: PromptId) {
        if let Some(mut run) = self.runs.remove(ours) {
            run.prompt_id = theirs.clone();
            self.runs.insert(theirs.clone(), run);
        }
        let dispatch = self.dispatch_of(job, &theirs);
        if let Err(error) = self.context.store.record_dispatch(job.id, &dispatch).await {
            tracing::error!(job.id = %job.id, %error, "server-chosen prompt id not recorded");
        }
    }

    /// The record of `job`'s current attempt on this backend under `prompt_id`.
    fn dispatch_of(&self, job: &Job, prompt_id: &PromptId) -> Dispatch {
        Dispatch {
            backend_id: self.id.clone(),
            prompt_id: model::PromptId(prompt_id.as_str().to_owned()),
            attempt: job.attempt,
            holder: self.context.settings.replica.clone(),
        }
    }

    /// Moves a job to `to` from wherever it is now; a lost race is fine.
    async fn settle(&self, job: &Job, to: JobState, error: Option<JobError>) {
        self.settle_from(job.id, job.state, to, error).await;
    }

    /// Moves job `id` from `from` to `to`; a lost race is fine.
    async fn settle_from(&self, id: JobId, from: JobState, to: JobState, error: Option<JobError>) {
        let result = self.context.transition(id, from, to, error).await;
        self.log_store_error(result);
    }

    /// A job's status while it is not final (the status, not the job: no workflows).
    async fn current_status(&self, job_id: JobId) -> Option<JobSnapshot> {
        match self.context.store.job_snapshot(job_id).await {
            Ok(Some(status)) if !status.job.state.is_final() => Some(status),
            Ok(_) => None,
            Err(error) => {
                tracing::error!(job.id = %job_id, %error, "cannot read job");
                None
            }
        }
    }

    fn log_store_error<T>(&self, result: Result<T, StoreError>) {
        if let Err(error) = result {
            tracing::error!(%error, "job state not stored");
        }
    }
}

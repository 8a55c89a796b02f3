//! The dispatcher: one task that places queued jobs on backends. It wakes when a job is
//! submitted, a backend's room or health changes, or a second passes; reads the queue's
//! candidates and the board; lets [`plan`](super::plan) choose; then claims each chosen
//! job with the store's compare-and-set and hands it to that backend's driver. The claim
//! also records the prompt id the driver will post the job under, so the driver can post
//! at once without a write of its own in between.
//!
//! Only the backends this replica drives (holds the lease of) are offered work: the board
//! marks the others as not accepting. Claims are the store's compare-and-set, so replicas
//! racing for one job never both take it, and each claim puts the job under this replica's
//! lease, which fences every later write of its run.
//!
//! A claim that loses (the job was canceled meanwhile, or another replica took it) is
//! skipped. A job is marked on the
//! board as assigned before its driver takes it, so the next pass counts its place.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::board::{Phase, RunSlot};
use super::plan::{Assignment, plan};
use super::{Command, Context};
use crate::jobs::model::{BackendId, JobState, PromptId};

/// Queued jobs read per owner for one pass: enough that an owner whose first jobs wait
/// for a busy backend still offers work to an idle one.
const CANDIDATES_PER_OWNER: u32 = 64;
/// A pass happens at least this often, whatever pokes arrive.
const PASS_EVERY: Duration = Duration::from_secs(1);

pub(super) struct Dispatcher {
    pub context: Arc<Context>,
    pub drivers: HashMap<BackendId, mpsc::UnboundedSender<Command>>,
    pub stop: CancellationToken,
}

impl Dispatcher {
    pub(super) async fn run(self) {
        let board = Arc::clone(&self.context.board);
        loop {
            tokio::select! {
                () = self.stop.cancelled() => break,
                () = board.changed() => {}
                () = tokio::time::sleep(PASS_EVERY) => {}
            }
            self.pass().await;
        }
        tracing::info!("dispatcher stopped");
    }

    async fn pass(&self) {
        let backends = self.context.board.snapshot();
        if !backends.iter().any(|backend| backend.accepting()) {
            return;
        }
        let candidates = match self
            .context
            .store
            .queued_candidates(CANDIDATES_PER_OWNER)
            .await
        {
            Ok(candidates) => candidates,
            Err(error) => return tracing::error!(%error, "cannot read the queue"),
        };
        if candidates.is_empty() {
            return;
        }
        for assignment in plan(&candidates, &backends) {
            if self.stop.is_cancelled() || !self.assign(assignment).await {
                break;
            }
        }
    }

    /// Claims one chosen job and hands it over. False when the store fails.
    async fn assign(&self, assignment: Assignment) -> bool {
        let Some(driver) = self.drivers.get(&assignment.backend) else {
            return true;
        };
        let now = OffsetDateTime::now_utc();
        let prompt_id = PromptId(comfy::PromptId::random().as_str().to_owned());
        let claimed = match self
            .context
            .store
            .claim_queued(
                assignment.job_id,
                &assignment.backend,
                &prompt_id,
                &self.context.lease(),
                now,
            )
            .await
        {
            Ok(Some(claimed)) => claimed,
            Ok(None) => return true,
            Err(error) => {
                tracing::error!(job.id = %assignment.job_id, %error, "cannot claim a job");
                return false;
            }
        };
        let job = claimed.job;
        self.context.bus.publish(claimed.event);
        self.context
            .metrics
            .job_claimed((now - job.created_at).as_seconds_f64());
        tracing::debug!(job.id = %job.id, backend.id = %assignment.backend, front = assignment.front, "job assigned");

        let slot = RunSlot {
            job_id: job.id,
            owner: assignment.owner,
            priority: assignment.priority,
            phase: Phase::Assigned,
        };
        self.context
            .board
            .update(&assignment.backend, |status| status.runs.push(slot));
        let job_id = job.id;
        if driver
            .send(Command::Run {
                job: Box::new(job),
                front: assignment.front,
            })
            .is_err()
        {
            // The driver stopped (shutdown): nothing was posted, so the job goes back to
            // the queue now. Left dispatched under its prompt id, start-up would look for
            // the prompt on the backend and count a lost attempt.
            self.context.board.update(&assignment.backend, |status| {
                status.runs.retain(|slot| slot.job_id != job_id);
            });
            let requeued = self
                .context
                .transition(job_id, JobState::Dispatched, JobState::Queued, None)
                .await;
            if let Err(error) = requeued {
                tracing::warn!(job.id = %job_id, %error, "claimed job not handed back; start-up reconciles it");
            }
        }
        true
    }
}

//! Ending a run from its history entry: a success has its outputs collected before the
//! job is called succeeded; a failure, an interrupt or a missing detail fail it with what
//! ComfyUI said; a run canceled meanwhile ends canceled.

use std::time::Duration;

use comfy::{HistoryEntry, PromptId, RunOutcome};

use super::Driver;
use crate::jobs::model::{JobError, JobState};
use crate::scheduler::collect::{self, CollectError, Collected, LastOutput};
use crate::scheduler::early::EarlyFetches;
use crate::scheduler::run::job_error;
use crate::store::JobSnapshot;

impl Driver {
    /// Ends a run from its history entry.
    pub(super) async fn finish(&mut self, prompt_id: &PromptId, entry: HistoryEntry) {
        let Some(run) = self.runs.remove(prompt_id) else {
            return;
        };
        if !run.heard
            && run.state != JobState::Canceling
            && self.client_id.is_some()
            && run.since.elapsed() > self.context.settings.lost_grace
        {
            // Finished without one message reaching us while "connected": a silent socket.
            tracing::warn!(prompt.id = %prompt_id, "run finished unheard; reopening the websocket");
            self.socket.reconnect();
        }
        // The status, not the job: no workflows are needed from here on.
        let Some(status) = self.current_status(run.job_id).await else {
            return;
        };
        let job = &status.job;
        match entry.outcome {
            RunOutcome::Success if job.state == JobState::Canceling => {
                self.settle_from(job.id, job.state, JobState::Canceled, None)
                    .await;
            }
            RunOutcome::Success => {
                self.collect_and_succeed(status, run.keep_previews, run.early, &entry)
                    .await;
            }
            RunOutcome::Failed(error) => {
                let traceback = (!error.traceback.is_empty()).then(|| error.traceback.concat());
                let failure = JobError {
                    code: "node_execution_error".to_owned(),
                    message: format!(
                        "node {} ({}) raised {}: {}",
                        error.node_id,
                        error.node_type,
                        error.exception_type,
                        error.exception_message.trim_end()
                    ),
                    node_id: Some(error.node_id.as_str().to_owned()),
                    class_type: Some(error.node_type.clone()),
                    exception_type: Some(error.exception_type.clone()),
                    traceback,
                };
                self.settle_from(job.id, job.state, JobState::Failed, Some(failure))
                    .await;
            }
            RunOutcome::Interrupted(_) if job.state == JobState::Canceling => {
                self.settle_from(job.id, job.state, JobState::Canceled, None)
                    .await;
            }
            RunOutcome::Interrupted(interrupted) => {
                let mut failure =
                    job_error("interrupted", "the run was interrupted on the backend");
                failure.node_id = interrupted.node_id.map(|node| node.as_str().to_owned());
                failure.class_type = interrupted.node_type;
                self.settle_from(job.id, job.state, JobState::Failed, Some(failure))
                    .await;
            }
            RunOutcome::FailedWithoutDetail => {
                let failure = job_error(
                    "execution_failed",
                    "the backend reported an error without detail",
                );
                self.settle_from(job.id, job.state, JobState::Failed, Some(failure))
                    .await;
            }
        }
    }

    async fn collect_and_succeed(
        &mut self,
        status: JobSnapshot,
        keep_previews: bool,
        early: EarlyFetches,
        entry: &HistoryEntry,
    ) {
        let JobSnapshot { job, outputs, .. } = status;
        let mut collecting = collect::Collecting {
            job_id: job.id,
            keep_previews,
            stored: outputs,
            state: job.state,
            early,
        };
        let mut last_error = None;
        for attempt in 0..3u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
            match collect::collect(&self.context, &self.client, &mut collecting, entry).await {
                Ok(Collected::MovedOn) => return,
                Ok(Collected::Stored { added, last }) => {
                    let count = added + usize::from(last.is_some());
                    tracing::info!(job.id = %job.id, outputs = count, "outputs stored");
                    match self.succeed(&mut collecting, last).await {
                        Ok(()) => return,
                        // The last output is not recorded: the next attempt stores it again.
                        Err(error) => last_error = Some(error),
                    }
                }
                Err(error) => last_error = Some(error),
            }
        }
        let message = last_error.map_or_else(String::new, |error| error.to_string());
        tracing::error!(job.id = %job.id, error = %message, "outputs not collected");
        self.settle_from(
            job.id,
            collecting.state,
            JobState::Failed,
            Some(job_error("output_lost", message)),
        )
        .await;
    }

    /// Ends a collected run: with its last output in one commit, or alone.
    ///
    /// # Errors
    ///
    /// Store faults, with the last output not recorded.
    async fn succeed(
        &self,
        collecting: &mut collect::Collecting,
        last: Option<Box<LastOutput>>,
    ) -> Result<(), CollectError> {
        let job_id = collecting.job_id;
        let Some(last) = last else {
            if collect::moved_to_collecting(&self.context, collecting).await? {
                self.settle_from(job_id, JobState::Collecting, JobState::Succeeded, None)
                    .await;
            }
            return Ok(());
        };
        let ended = self
            .context
            .succeed_with_output(job_id, collecting.state, last.record, last.blob)
            .await;
        drop(last.hold);
        let ended = ended?;
        if ended.collecting.is_some() {
            collecting.state = JobState::Collecting;
        }
        if ended.end.is_none() {
            let step = if ended.output.is_some() {
                "its end"
            } else {
                "its last output"
            };
            tracing::info!(job.id = %job_id, step, "the job moved on before the run's last step");
        }
        Ok(())
    }
}

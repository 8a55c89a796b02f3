//! Canceling a job on a backend: one never posted ends at once; a waiting prompt is
//! deleted from ComfyUI's queue; a running one is interrupted, and the job is `canceling`
//! until history confirms the end.

use comfy::{ComfyError, PromptId};

use super::Driver;
use crate::jobs::model::{JobId, JobState};
use crate::scheduler::early::EarlyFetches;

impl Driver {
    /// Cancels one of this backend's jobs.
    pub(super) async fn cancel(&mut self, job_id: JobId) {
        let Some(status) = self.current_status(job_id).await else {
            return;
        };
        let job = status.job;
        let found = self
            .runs
            .iter()
            .find(|(_, run)| run.job_id == job_id)
            .map(|(id, _)| id.clone());
        self.unposted.retain(|unposted| unposted.job.id != job_id);
        let Some(prompt_id) = found else {
            // Not posted (or already ended): nothing on the backend to stop.
            if job.state == JobState::Canceling {
                self.settle_from(job.id, job.state, JobState::Canceled, None)
                    .await;
            } else if let Ok(Some(job)) = self
                .context
                .transition(job.id, job.state, JobState::Canceling, None)
                .await
            {
                self.settle(&job, JobState::Canceled, None).await;
            }
            return;
        };
        if job.state != JobState::Canceling {
            match self
                .context
                .transition(job.id, job.state, JobState::Canceling, None)
                .await
            {
                Ok(Some(_)) => {}
                Ok(None) => return,
                Err(error) => return tracing::error!(job.id = %job_id, %error, "cannot cancel"),
            }
        }
        if let Some(run) = self.runs.get_mut(&prompt_id) {
            run.state = JobState::Canceling;
            run.cancel_requested = true;
            // A canceled run's outputs are not collected, even when it ends well.
            run.early = EarlyFetches::default();
        }
        self.stop_on_backend(&prompt_id).await;
    }

    /// Deletes a pending prompt from ComfyUI's queue, or interrupts it when it runs.
    pub(super) async fn stop_on_backend(&mut self, prompt_id: &PromptId) {
        if let Err(error) = self
            .client
            .delete_from_queue(std::slice::from_ref(prompt_id))
            .await
        {
            return self.note_unreachable(&error);
        }
        let queue = match self.client.queue().await {
            Ok(queue) => queue,
            Err(error) => return self.note_unreachable(&error),
        };
        if queue
            .running
            .iter()
            .any(|item| &item.prompt_id == prompt_id)
        {
            let interrupted = match self.client.interrupt(prompt_id).await {
                // Before 0.3.57 every interrupt is global; it is ours that runs, checked above.
                Err(ComfyError::Unsupported { .. }) => self.client.interrupt_whatever_runs().await,
                other => other,
            };
            if let Err(error) = interrupted {
                self.note_unreachable(&error);
            }
        } else if !queue.contains(prompt_id) {
            // Removed before it ran, or it just ended: history decides.
            self.check_history(prompt_id).await;
            if let Some(run) = self.runs.remove(prompt_id)
                && let Some(status) = self.current_status(run.job_id).await
            {
                let job = status.job;
                self.settle_from(job.id, job.state, JobState::Canceled, None)
                    .await;
            }
        }
    }
}

//! What the SQLite engine keeps in memory beside the database: the queue (see
//! `queue_index`) and the latest status of recently read or written jobs, so that status
//! reads and queue checks need no query.
//!
//! It is only correct because one process owns the database (`Store::is_shared` is false)
//! and every write to jobs and outputs goes through this process's store, which updates
//! the mirror after each commit while still holding the writer lock. A program that
//! wrote jobs into the same file from outside would leave it stale; `darkroom keys`
//! writes only API keys, which it marks changed for the server (`key_book`).
//!
//! A status read that misses runs its queries without the lock, so a write may commit
//! between them and the read's return: the read keeps what it found only when no write
//! committed since it started (the `epoch` did not move), so no stale status is ever kept.

use std::collections::HashMap;
use std::sync::Arc;

use super::queue_index::QueueIndex;
use crate::jobs::model::{JobId, JobState, JobSummary, OutputRecord};
use crate::jobs::requirements::Requirements;
use crate::store::JobSnapshot;
use crate::store::engine::Touch;
use crate::store::rows::to_micros;

/// Statuses kept at most: about 300 bytes each, so a few MiB. Which are dropped when it
/// is full does not matter for correctness: a dropped one is read again from the database.
const MAX_STATUSES: usize = 16_384;

/// A job's status as the database last committed it.
#[derive(Debug)]
pub(super) struct Status {
    pub job: JobSummary,
    pub outputs: Vec<OutputRecord>,
}

/// The queue and the status of recent jobs, kept in step with the database.
#[derive(Debug, Default)]
pub(super) struct Mirror {
    pub queue: QueueIndex,
    statuses: HashMap<JobId, Status>,
    /// Counts committed writes that touched a job, for reads that fill the statuses.
    epoch: u64,
}

impl Mirror {
    pub(super) fn new(queue: QueueIndex) -> Self {
        Self {
            queue,
            ..Self::default()
        }
    }

    /// A job's status and place in the queue, both as of the same commit.
    pub(super) fn snapshot(&self, id: JobId) -> Option<JobSnapshot> {
        let status = self.statuses.get(&id)?;
        Some(JobSnapshot {
            job: status.job.clone(),
            outputs: status.outputs.clone(),
            queue_position: self.position(&status.job),
        })
    }

    /// The place in the queue of a job in the state `job` shows.
    pub(super) fn position(&self, job: &JobSummary) -> Option<u64> {
        match job.state {
            JobState::Queued => self.queue.position(job.id),
            _ => None,
        }
    }

    pub(super) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Keeps a status read from the database while the mirror stood at `epoch`, unless a
    /// write committed since: then it may be older than that write.
    pub(super) fn fill(&mut self, status: Status, epoch: u64) {
        if self.epoch == epoch {
            self.keep(status);
        }
    }

    /// Records what a committed write changed.
    pub(super) fn apply(&mut self, touched: Touch) {
        match touched {
            Touch::Nothing => {}
            Touch::Job(job) => {
                self.epoch += 1;
                self.queue.apply(&job);
                // Transitions leave outputs as they are; a status not kept stays unknown.
                if let Some(status) = self.statuses.get_mut(&job.id) {
                    status.job = *job;
                }
            }
            Touch::Progress(id, progress) => {
                self.epoch += 1;
                if let Some(status) = self.statuses.get_mut(&id) {
                    status.job.progress = Some(*progress);
                }
            }
            Touch::Output(output) => {
                self.epoch += 1;
                if let Some(status) = self.statuses.get_mut(&output.job_id) {
                    status.outputs.push(*output);
                }
            }
            Touch::Forget(ids) => {
                self.epoch += 1;
                for id in ids {
                    self.statuses.remove(&id);
                }
            }
        }
    }

    /// Records a job just created: queued, without outputs.
    pub(super) fn created(&mut self, job: JobSummary, requirements: Requirements) {
        self.epoch += 1;
        let (priority, created_at) = (job.priority, to_micros(job.created_at));
        let requirements = Some(Arc::new(requirements));
        let owner = job.owner.clone();
        self.queue
            .insert(job.id, priority, created_at, owner, requirements);
        self.keep(Status {
            job,
            outputs: Vec::new(),
        });
    }

    fn keep(&mut self, status: Status) {
        let id = status.job.id;
        if self.statuses.len() >= MAX_STATUSES
            && !self.statuses.contains_key(&id)
            && let Some(evicted) = self.statuses.keys().next().copied()
        {
            self.statuses.remove(&evicted);
        }
        self.statuses.insert(id, status);
    }
}

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

use std::sync::Arc;

use hashlink::LruCache;

use super::queue_index::QueueIndex;
use crate::jobs::model::{JobId, JobState, JobSummary, OutputRecord};
use crate::jobs::requirements::Requirements;
use crate::store::JobSnapshot;
use crate::store::engine::Touch;
use crate::store::rows::to_micros;

/// Statuses kept at most: about 300 bytes each, so a few MiB. When it is full, the status
/// least recently read or written goes, so the jobs clients poll and the jobs running
/// stay; a dropped one is read again from the database, so which goes only costs time.
const MAX_STATUSES: usize = 16_384;

/// A job's status as the database last committed it.
#[derive(Debug)]
pub(super) struct Status {
    pub job: JobSummary,
    pub outputs: Vec<OutputRecord>,
}

/// The queue and the status of recent jobs, kept in step with the database.
#[derive(Debug)]
pub(super) struct Mirror {
    pub queue: QueueIndex,
    statuses: LruCache<JobId, Status>,
    /// Counts committed writes that touched a job, for reads that fill the statuses.
    epoch: u64,
}

impl Mirror {
    pub(super) fn new(queue: QueueIndex) -> Self {
        Self {
            queue,
            statuses: LruCache::new(MAX_STATUSES),
            epoch: 0,
        }
    }

    /// A job's status and place in the queue, both as of the same commit.
    pub(super) fn snapshot(&mut self, id: JobId) -> Option<JobSnapshot> {
        let status = self.statuses.get(&id)?;
        let (job, outputs) = (status.job.clone(), status.outputs.clone());
        let queue_position = self.position(&job);
        Some(JobSnapshot {
            job,
            outputs,
            queue_position,
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
                // A read that filled the status between the commit and now has it already.
                if let Some(status) = self.statuses.get_mut(&output.job_id)
                    && !status
                        .outputs
                        .iter()
                        .any(|kept| kept.asset_id == output.asset_id)
                {
                    status.outputs.push(*output);
                }
            }
            Touch::Forget(ids) => {
                self.epoch += 1;
                for id in ids {
                    self.statuses.remove(&id);
                }
            }
            Touch::Several(touches) => {
                for touched in touches {
                    self.apply(touched);
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
        self.statuses.insert(status.job.id, status);
    }
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use super::*;
    use crate::jobs::model::{
        AssetId, OriginFolder, OutputOrigin, OutputRecord, OutputType, Progress,
    };

    fn running(id: JobId) -> JobSummary {
        JobSummary {
            id,
            state: JobState::Collecting,
            backend_id: None,
            attempt: 1,
            priority: 0,
            owner: None,
            created_at: OffsetDateTime::UNIX_EPOCH,
            started_at: None,
            completed_at: None,
            expires_at: OffsetDateTime::UNIX_EPOCH,
            progress: None,
            error: None,
        }
    }

    fn output(job_id: JobId) -> OutputRecord {
        OutputRecord {
            job_id,
            asset_id: AssetId::new(),
            node_id: "9".to_owned(),
            name: "out.png".to_owned(),
            output_type: OutputType::Image,
            content_type: "image/png".to_owned(),
            size_bytes: 1,
            hash: format!("blake3:{}", "a".repeat(64)).parse().unwrap(),
            origin: OutputOrigin {
                filename: "out.png".to_owned(),
                subfolder: String::new(),
                folder: OriginFolder::Output,
            },
        }
    }

    #[test]
    fn a_kept_status_follows_progress_and_outputs_once_each() {
        let mut mirror = Mirror::new(QueueIndex::default());
        let id = JobId::new();
        let first = output(id);
        // A read that ran between the output's commit and its touch found it already.
        mirror.fill(
            Status {
                job: running(id),
                outputs: vec![first.clone()],
            },
            mirror.epoch(),
        );
        mirror.apply(Touch::Output(Box::new(first.clone())));
        let second = output(id);
        mirror.apply(Touch::Output(Box::new(second.clone())));
        let progress = Progress {
            value: 0.5,
            nodes_done: 1,
            nodes_total: 2,
            current_node: Some("9".to_owned()),
            current_node_class: Some("SaveImage".to_owned()),
            step: None,
            steps: None,
            message: None,
        };
        mirror.apply(Touch::Progress(id, Box::new(progress.clone())));

        let snapshot = mirror.snapshot(id).unwrap();
        assert_eq!(snapshot.outputs, vec![first, second]);
        assert_eq!(snapshot.job.progress, Some(progress));
    }

    #[test]
    fn when_full_the_status_least_recently_used_goes_not_the_one_polled() {
        let mut mirror = Mirror::new(QueueIndex::default());
        let kept = |mirror: &mut Mirror, id| {
            mirror.fill(
                Status {
                    job: running(id),
                    outputs: Vec::new(),
                },
                mirror.epoch(),
            )
        };
        let (polled, idle) = (JobId::new(), JobId::new());
        kept(&mut mirror, polled);
        kept(&mut mirror, idle);
        for _ in 2..MAX_STATUSES {
            kept(&mut mirror, JobId::new());
            // A client polls its job all along.
            assert!(mirror.snapshot(polled).is_some());
        }

        kept(&mut mirror, JobId::new());
        assert!(mirror.snapshot(polled).is_some(), "the polled job stays");
        assert!(
            mirror.snapshot(idle).is_none(),
            "the oldest job nobody read goes"
        );
    }
}

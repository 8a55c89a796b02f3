//! What callers hand the store and what it hands back, beyond the domain
//! records themselves: new jobs, transitions, queries, pages and sweeps.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;
use time::OffsetDateTime;

use crate::artifacts::BlobHash;
use crate::jobs::model::{
    Asset, AssetId, BackendId, EventKind, Job, JobError, JobEvent, JobId, JobState, JobSummary,
    OutputRecord, PromptId, ReplicaId, WorkflowFormat,
};
use crate::jobs::requirements::Requirements;
use crate::store::Durability;

/// A job to create. The store never reads the clock: every time comes from
/// the caller, so tests control it and one request carries one "now".
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    pub id: JobId,
    pub workflow: Value,
    pub original_workflow: Value,
    pub original_format: WorkflowFormat,
    pub template: Option<String>,
    pub parameters: Option<Value>,
    pub owner: Option<String>,
    /// Single use per owner for 24 hours from `created_at`.
    pub idempotency_key: Option<String>,
    pub keep_previews: bool,
    /// Higher runs sooner; 0 by default.
    pub priority: i32,
    /// What a backend needs to run the job; stored for the scheduler.
    pub requirements: Requirements,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    /// Refuse with `QueueFull` when this many jobs already wait; checked in
    /// the same transaction as the insert, so the bound holds under races.
    pub max_queued: Option<u64>,
    /// Refuse with `OwnerQueueFull` when this job's owner already has this many jobs
    /// waiting; checked in the same transaction too.
    pub max_queued_for_owner: Option<u64>,
}

impl NewJob {
    /// A job for an API-format graph submitted as is, with no template.
    #[must_use]
    pub fn api(workflow: Value, created_at: OffsetDateTime, expires_at: OffsetDateTime) -> Self {
        Self {
            id: JobId::new(),
            requirements: Requirements::of(&workflow),
            priority: 0,
            original_workflow: workflow.clone(),
            workflow,
            original_format: WorkflowFormat::Api,
            template: None,
            parameters: None,
            owner: None,
            idempotency_key: None,
            keep_previews: false,
            created_at,
            expires_at,
            max_queued: None,
            max_queued_for_owner: None,
        }
    }
}

/// A queued job as the scheduler weighs it: whose it is, how urgent, how old, and what
/// it needs. The choice among candidates is made in Rust, not in SQL.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedJob {
    pub id: JobId,
    pub owner: Option<String>,
    pub priority: i32,
    pub created_at: OffsetDateTime,
    /// Shared: the SQLite engine keeps each queued job's in memory and hands it out on
    /// every dispatcher pass.
    pub requirements: std::sync::Arc<Requirements>,
}

/// A compare-and-set move of one job from `from` to `to`.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub job_id: JobId,
    pub from: JobState,
    pub to: JobState,
    pub at: OffsetDateTime,
    /// Recorded on the job; meant for `failed`.
    pub error: Option<JobError>,
    /// A new retention deadline, e.g. counted from completion.
    pub expires_at: Option<OffsetDateTime>,
    /// The replica moving a job it holds: refused with `LeaseLost` when
    /// another replica holds the job now. `None` (the API, the sweep) moves
    /// the job whoever holds it.
    pub holder: Option<ReplicaId>,
}

impl Transition {
    #[must_use]
    pub fn new(job_id: JobId, from: JobState, to: JobState, at: OffsetDateTime) -> Self {
        Self {
            job_id,
            from,
            to,
            at,
            error: None,
            expires_at: None,
            holder: None,
        }
    }

    /// How durable the move must be: a final state (the client is told "done") and a
    /// cancel the client asked for wait for the disk; the steps of a run between them need
    /// only survive a crash of Darkroom (`store::durability`).
    #[must_use]
    pub fn durability(&self) -> Durability {
        if self.to.is_final() || self.to == JobState::Canceling {
            Durability::PowerSafe
        } else {
            Durability::CrashSafe
        }
    }

    #[must_use]
    pub fn with_error(mut self, error: JobError) -> Self {
        self.error = Some(error);
        self
    }

    #[must_use]
    pub fn with_expiry(mut self, expires_at: OffsetDateTime) -> Self {
        self.expires_at = Some(expires_at);
        self
    }

    #[must_use]
    pub fn held_by(mut self, holder: ReplicaId) -> Self {
        self.holder = Some(holder);
        self
    }
}

/// A job row and the event that announced its change, committed together.
#[derive(Debug, Clone, PartialEq)]
pub struct JobChange {
    pub job: Job,
    pub event: JobEvent,
}

/// The last steps of a successful run, for one commit: the move into `collecting` when the
/// job is not there yet, the run's last output, and the job's end.
#[derive(Debug, Clone)]
pub struct Ending {
    pub collecting: Option<Transition>,
    pub output: OutputRecord,
    /// The output's bytes, when its blob was staged for this commit rather than stored
    /// ([`crate::artifacts::BlobStore::stage_stream`]): written with the output, so the
    /// record and its blob commit together.
    pub blob: Option<bytes::Bytes>,
    /// The replica that stored the output.
    pub holder: ReplicaId,
    pub at: OffsetDateTime,
    /// The move out of `collecting`; its durability is the commit's.
    pub end: Transition,
}

/// What an [`Ending`]'s commit did, step by step. A step that did not match (the job moved
/// meanwhile, or another replica holds it) leaves itself and every step after it `None`,
/// and the steps before it committed.
#[derive(Debug, Default)]
pub struct Ended {
    pub collecting: Option<JobChange>,
    pub output: Option<JobEvent>,
    pub end: Option<JobChange>,
}

/// A job as a status read shows it, read together: its summary, its outputs in the order
/// they were stored, and its place in the queue (`None` unless it is `queued`).
#[derive(Debug, Clone, PartialEq)]
pub struct JobSnapshot {
    pub job: JobSummary,
    pub outputs: Vec<OutputRecord>,
    pub queue_position: Option<u64>,
}

/// Where a dispatched attempt went: written once ComfyUI accepted the prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatch {
    pub backend_id: BackendId,
    pub prompt_id: PromptId,
    /// The attempt this dispatch belongs to; a stale one is refused.
    pub attempt: u32,
    /// The replica that posted it; refused when another holds the job now.
    pub holder: ReplicaId,
}

/// A replica's hold on a backend or a job, good until `expires_at` unless
/// renewed. Times come from the replicas' clocks, which must agree to well
/// within a lease's length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub holder: ReplicaId,
    pub expires_at: OffsetDateTime,
}

/// An event to append to a job's stream.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub kind: EventKind,
    pub payload: Value,
    pub at: OffsetDateTime,
}

/// Which jobs to list. Empty `states` means every state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobQuery {
    pub states: Vec<JobState>,
    pub owner: Option<String>,
    pub template: Option<String>,
    pub limit: u32,
    pub offset: u64,
    /// Keyset paging: only jobs older than this one.
    pub after: Option<JobCursor>,
}

impl Default for JobQuery {
    fn default() -> Self {
        Self {
            states: Vec::new(),
            owner: None,
            template: None,
            limit: 50,
            offset: 0,
            after: None,
        }
    }
}

/// One page of jobs, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct JobPage {
    pub jobs: Vec<Job>,
    /// Jobs matching the filters, ignoring paging.
    pub total: u64,
    /// Set when more jobs follow this page.
    pub next: Option<JobCursor>,
}

/// A position in the newest-first job order: creation time, then id to
/// break ties, so paging never skips or repeats a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobCursor {
    pub created_at: OffsetDateTime,
    pub id: JobId,
}

impl JobCursor {
    #[must_use]
    pub fn of(job: &Job) -> Self {
        Self {
            created_at: job.created_at,
            id: job.id,
        }
    }
}

/// Opaque on the wire: `<unix microseconds>_<job id>`.
impl fmt::Display for JobCursor {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{}_{}",
            super::rows::to_micros(self.created_at),
            self.id
        )
    }
}

impl FromStr for JobCursor {
    type Err = crate::jobs::model::ModelError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let invalid = || crate::jobs::model::ModelError::Malformed {
            kind: "job cursor",
            value: value.to_owned(),
        };
        let (micros, id) = value.split_once('_').ok_or_else(invalid)?;
        let micros = micros.parse::<i64>().map_err(|_| invalid())?;
        let created_at = super::rows::from_micros(micros).map_err(|_| invalid())?;
        Ok(Self {
            created_at,
            id: id.parse()?,
        })
    }
}

/// What deleting an asset left to clean on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetRemoval {
    pub asset: Asset,
    /// The blob no remaining asset refers to; the caller deletes it.
    pub orphaned_blob: Option<BlobHash>,
}

/// What one expiry sweep did and what it leaves the caller to delete.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sweep {
    pub expired_jobs: Vec<JobId>,
    pub deleted_assets: Vec<AssetId>,
    /// Blobs no remaining asset refers to. The store cannot lock the disk:
    /// a `put` that deduplicates against one of these between this commit and
    /// the caller's delete would lose its bytes, so the caller serialises
    /// blob deletes with blob writes of the same hash.
    pub orphaned_blobs: Vec<BlobHash>,
}

/// The payload of a `status` event: the contract's status plus Darkroom's
/// finer state, and the error of a failed job.
pub(crate) fn status_payload(state: JobState, error: Option<&JobError>) -> Value {
    let mut payload = serde_json::json!({
        "status": state.public_status(),
        "state": state,
    });
    if let (Some(error), Some(fields)) = (error, payload.as_object_mut()) {
        fields.insert(
            "error".to_owned(),
            serde_json::to_value(error).unwrap_or_default(),
        );
    }
    payload
}

#[cfg(test)]
mod durability_tests {
    use super::*;

    fn durability_of(from: JobState, to: JobState) -> Durability {
        let id: JobId = "00000000-0000-4000-8000-000000000001".parse().unwrap();
        Transition::new(id, from, to, OffsetDateTime::UNIX_EPOCH).durability()
    }

    #[test]
    fn ends_and_cancels_wait_for_the_disk_and_the_steps_between_do_not() {
        use JobState::*;
        for (from, to) in [
            (Collecting, Succeeded),
            (Running, Failed),
            (Canceling, Canceled),
        ] {
            assert_eq!(
                durability_of(from, to),
                Durability::PowerSafe,
                "{from} -> {to}"
            );
        }
        assert_eq!(durability_of(Running, Canceling), Durability::PowerSafe);
        for (from, to) in [
            (Queued, Dispatched),
            (Dispatched, Running),
            (Running, Collecting),
            (Dispatched, Queued),
        ] {
            assert_eq!(
                durability_of(from, to),
                Durability::CrashSafe,
                "{from} -> {to}"
            );
        }
    }
}

//! The job's domain types: identifiers, the state machine, and the records the
//! store keeps for jobs, their events, outputs and assets.
//!
//! These types are plain data with serde derives; times are UTC and travel as
//! RFC 3339. Nothing here does I/O. `JobState` is Darkroom's own, finer view;
//! `JobStatus` is what the Comfy API v2 contract shows, and the only mapping
//! between the two is `JobState::public_status`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::artifacts::BlobHash;

/// A string that should have named a Darkroom record but did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("{kind} must be a lowercase hyphenated uuid, got {value:?}")]
    InvalidId { kind: &'static str, value: String },
    #[error("unknown {kind} {value:?}")]
    UnknownName { kind: &'static str, value: String },
    #[error("malformed {kind} {value:?}")]
    Malformed { kind: &'static str, value: String },
}

/// Declares a uuid-backed identifier that accepts only the canonical spelling,
/// so one record never has two ids that compare differently as strings.
macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh random (v4) id.
            #[must_use]
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(formatter)
            }
        }

        impl FromStr for $name {
            type Err = ModelError;

            fn from_str(value: &str) -> Result<Self, Self::Err> {
                let invalid = || ModelError::InvalidId { kind: $kind, value: value.to_owned() };
                let uuid = Uuid::try_parse(value).map_err(|_| invalid())?;
                if uuid.hyphenated().to_string() != value {
                    return Err(invalid());
                }
                Ok(Self(uuid))
            }
        }

        impl TryFrom<String> for $name {
            type Error = ModelError;

            fn try_from(value: String) -> Result<Self, Self::Error> {
                value.parse()
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.to_string()
            }
        }
    };
}

uuid_id!(
    /// Identifies a job; the `id` of the v2 `Job`.
    JobId,
    "job id"
);
uuid_id!(
    /// Identifies an asset; an output's `id` in the v2 contract is its asset id.
    AssetId,
    "asset id"
);

/// Declares a string newtype for names that other systems choose.
macro_rules! name_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(value)
            }
        }
    };
}

name_id!(
    /// Names one configured ComfyUI backend.
    BackendId
);
name_id!(
    /// ComfyUI's id for one run, returned by `POST /prompt`.
    PromptId
);
name_id!(
    /// Names one Darkroom process among the replicas sharing a store: the holder of
    /// leases on backends and jobs.
    ReplicaId
);

/// Declares a unit enum stored and sent as a fixed lowercase name.
macro_rules! named_enum {
    ($(#[$doc:meta])* $name:ident, $kind:literal { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &[$name] = &[$($name::$variant),+];

            /// The name used on the wire and in the database.
            #[must_use]
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ModelError;

            fn from_str(value: &str) -> Result<Self, Self::Err> {
                match value {
                    $($text => Ok($name::$variant),)+
                    _ => Err(ModelError::UnknownName { kind: $kind, value: value.to_owned() }),
                }
            }
        }
    };
}

named_enum!(
    /// Darkroom's own job states; finer than the contract's `JobStatus`.
    JobState, "job state" {
        Queued => "queued",
        Dispatched => "dispatched",
        Running => "running",
        Collecting => "collecting",
        Succeeded => "succeeded",
        Failed => "failed",
        Canceling => "canceling",
        Canceled => "canceled",
        Expired => "expired",
    }
);

named_enum!(
    /// The job status of the Comfy API v2 contract.
    JobStatus, "job status" {
        Queued => "queued",
        Running => "running",
        Succeeded => "succeeded",
        Canceling => "canceling",
        Canceled => "canceled",
        Failed => "failed",
        Expired => "expired",
    }
);

impl JobState {
    /// Whether the job has stopped for good: nothing will run it again.
    /// `Expired` is final too; it only follows another final state.
    #[must_use]
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Canceled | Self::Expired
        )
    }

    /// Whether the state machine allows moving from `self` to `next`.
    ///
    /// Beyond the happy path in DESIGN.md this allows three edges the
    /// scheduler needs: `dispatched`/`running` back to `queued` (a retry after
    /// a lost backend, which bumps the attempt), `dispatched` straight to
    /// `collecting` (history shows a finished run whose websocket messages
    /// were lost), and `queued` straight to `canceled` (nothing to interrupt).
    /// `canceling` may end `failed` when the backend dies before confirming.
    #[must_use]
    pub fn can_transition_to(self, next: JobState) -> bool {
        use JobState::{
            Canceled, Canceling, Collecting, Dispatched, Expired, Failed, Queued, Running,
            Succeeded,
        };
        matches!(
            (self, next),
            (Queued, Dispatched | Canceled)
                | (Dispatched, Running | Collecting | Queued)
                | (Running, Collecting | Queued)
                | (Collecting, Succeeded)
                | (
                    Queued | Dispatched | Running | Collecting,
                    Failed | Canceling
                )
                | (Canceling, Canceled | Failed)
                | (Succeeded | Failed | Canceled, Expired)
        )
    }

    /// The contract's view: a dispatched job still waits, so it shows as
    /// queued; a collecting job is not done until its outputs are stored, so
    /// it shows as running.
    #[must_use]
    pub fn public_status(self) -> JobStatus {
        match self {
            Self::Queued | Self::Dispatched => JobStatus::Queued,
            Self::Running | Self::Collecting => JobStatus::Running,
            Self::Succeeded => JobStatus::Succeeded,
            Self::Failed => JobStatus::Failed,
            Self::Canceling => JobStatus::Canceling,
            Self::Canceled => JobStatus::Canceled,
            Self::Expired => JobStatus::Expired,
        }
    }
}

/// Whether the state machine allows `from -> to`; see
/// [`JobState::can_transition_to`].
#[must_use]
pub fn transition_allowed(from: JobState, to: JobState) -> bool {
    from.can_transition_to(to)
}

named_enum!(
    /// The shape a job's original workflow was submitted in.
    WorkflowFormat, "workflow format" {
        Api => "api",
        Save => "save",
    }
);

named_enum!(
    /// The kind of a job event, as named on the SSE stream.
    EventKind, "event kind" {
        Status => "status",
        Progress => "progress",
        Preview => "preview",
        Output => "output",
        Log => "log",
    }
);

named_enum!(
    /// The contract's normalised output kind.
    OutputType, "output type" {
        Image => "image",
        Video => "video",
        Audio => "audio",
        Text => "text",
        File => "file",
        Latent => "latent",
    }
);

named_enum!(
    /// ComfyUI's folder an output file came from (`type` in its history).
    OriginFolder, "origin folder" {
        Output => "output",
        Temp => "temp",
        Input => "input",
    }
);

/// A progress snapshot in the contract's `Progress` shape; each one is
/// complete, so a client re-syncs from any single snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Overall fraction between 0 and 1.
    pub value: f64,
    pub nodes_done: u32,
    pub nodes_total: u32,
    pub current_node: Option<String>,
    pub current_node_class: Option<String>,
    pub step: Option<u32>,
    pub steps: Option<u32>,
    pub message: Option<String>,
}

/// Why a job failed, in the contract's `JobError` shape plus the exception
/// type ComfyUI reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    /// A stable snake_case code such as `node_execution_error`.
    pub code: String,
    pub message: String,
    pub node_id: Option<String>,
    pub class_type: Option<String>,
    pub exception_type: Option<String>,
    pub traceback: Option<String>,
}

/// One job as the store keeps it. The queue position is not stored: it is
/// computed from the queue when asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    pub state: JobState,
    /// The API-format graph that is (or will be) posted to ComfyUI.
    pub workflow: Value,
    /// The workflow as the client sent it, for `GET /jobs/{id}/workflow`.
    pub original_workflow: Value,
    pub original_format: WorkflowFormat,
    pub template: Option<String>,
    pub parameters: Option<Value>,
    pub backend_id: Option<BackendId>,
    pub prompt_id: Option<PromptId>,
    /// How many times the job was handed to a backend; 0 while never claimed.
    pub attempt: u32,
    /// Higher runs sooner; 0 by default. Owners share backends fairly within a priority.
    pub priority: i32,
    /// The API key id that submitted the job.
    pub owner: Option<String>,
    pub idempotency_key: Option<String>,
    /// Keep `temp` preview files as outputs too.
    pub keep_previews: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub dispatched_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub completed_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub progress: Option<Progress>,
    pub error: Option<JobError>,
}

/// A job as a status read shows it: every field but the workflows and parameters, which
/// only running the job needs and which are most of its row's bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSummary {
    pub id: JobId,
    pub state: JobState,
    pub backend_id: Option<BackendId>,
    pub attempt: u32,
    pub priority: i32,
    pub owner: Option<String>,
    pub created_at: OffsetDateTime,
    pub started_at: Option<OffsetDateTime>,
    pub completed_at: Option<OffsetDateTime>,
    pub expires_at: OffsetDateTime,
    pub progress: Option<Progress>,
    pub error: Option<JobError>,
}

impl From<&Job> for JobSummary {
    fn from(job: &Job) -> Self {
        Self {
            id: job.id,
            state: job.state,
            backend_id: job.backend_id.clone(),
            attempt: job.attempt,
            priority: job.priority,
            owner: job.owner.clone(),
            created_at: job.created_at,
            started_at: job.started_at,
            completed_at: job.completed_at,
            expires_at: job.expires_at,
            progress: job.progress.clone(),
            error: job.error.clone(),
        }
    }
}

/// Something that happened to a job; `seq` counts from 1 per job with no
/// gaps, so a client resumes a stream with "everything after N".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEvent {
    pub job_id: JobId,
    pub seq: u64,
    pub kind: EventKind,
    pub payload: Value,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// Where in ComfyUI an output file came from, as its history names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OutputOrigin {
    pub filename: String,
    pub subfolder: String,
    #[serde(rename = "type")]
    pub folder: OriginFolder,
}

/// One stored output of a job. Its bytes are the asset `asset_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputRecord {
    pub job_id: JobId,
    pub asset_id: AssetId,
    pub node_id: String,
    /// The file name shown to clients.
    pub name: String,
    #[serde(rename = "type")]
    pub output_type: OutputType,
    pub content_type: String,
    pub size_bytes: u64,
    pub hash: BlobHash,
    pub origin: OutputOrigin,
}

/// A record pointing at one stored blob. Several assets may share a blob
/// (same hash); the blob goes only when the last of them does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Asset {
    pub id: AssetId,
    pub hash: BlobHash,
    pub size_bytes: u64,
    pub content_type: String,
    /// The client-facing file name (the contract's `file_path`); never a
    /// location on disk, which follows from the hash alone.
    pub file_path: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// `None` keeps the asset until it is deleted.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    pub owner: Option<String>,
    /// The job that produced it; `None` for uploads.
    pub job_id: Option<JobId>,
}

//! The board: what each backend is and does right now. Its driver writes it, the
//! dispatcher reads it to place jobs, the API and metrics read it to show operators.
//!
//! It holds only live facts (health, runs, capabilities, loaded models, recent errors);
//! nothing here is durable, the store is. It is this replica's view: with several replicas
//! on one PostgreSQL, each backend is driven by the one replica holding its lease, and
//! every other replica shows it as `standby`, without health, runs or probes of its own.
//! Every change pokes the dispatcher, which looks again at the queue.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::Notify;

use super::capability::Capabilities;
use crate::jobs::model::{BackendId, JobId};

/// How many recent errors a backend keeps for operators.
const RECENT_ERRORS: usize = 10;

/// A backend's health, as probes and its socket show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Not yet ready: a managed process starting, or never reached since start-up.
    Starting,
    /// Socket open, capabilities probed: takes work.
    Up,
    /// Answers, but not well enough for new work (socket down, failing calls, failed probe).
    Degraded,
    Down,
}

/// What operators see: the health, or `draining` while an operator holds new work back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendState {
    Starting,
    Up,
    Degraded,
    Down,
    Draining,
    /// Another replica holds its lease and drives it; this one does not.
    Standby,
}

impl BackendState {
    pub const ALL: [Self; 6] = [
        Self::Starting,
        Self::Up,
        Self::Degraded,
        Self::Down,
        Self::Draining,
        Self::Standby,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Up => "up",
            Self::Degraded => "degraded",
            Self::Down => "down",
            Self::Draining => "draining",
            Self::Standby => "standby",
        }
    }
}

/// Where a job on a backend stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Claimed for the backend by the dispatcher; its driver has not taken it yet.
    Assigned,
    /// Posted (or being posted), waiting in ComfyUI's queue.
    Waiting,
    /// ComfyUI runs it.
    Running,
}

/// One job that occupies a place in a backend's ComfyUI queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunSlot {
    pub job_id: JobId,
    pub owner: Option<String>,
    pub priority: i32,
    pub phase: Phase,
}

/// Something that went wrong on a backend, for `/api/backends`.
#[derive(Debug, Clone, Serialize)]
pub struct RecentError {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub message: String,
}

/// Everything live about one backend.
#[derive(Debug, Clone)]
pub struct BackendStatus {
    pub id: BackendId,
    pub weight: u32,
    pub tags: Vec<String>,
    /// Prompts kept inside its ComfyUI at once.
    pub max_prompts: usize,
    pub managed: bool,
    /// Whether this replica holds the backend's lease and its driver has taken the jobs
    /// left on it: only then does this replica's dispatcher give it work.
    pub driven: bool,
    pub health: Health,
    pub draining: bool,
    pub version: Option<String>,
    /// From its `/object_info`, probed each time it comes (back) up; kept while it is down
    /// so submissions can still be checked against it.
    pub capabilities: Option<Arc<Capabilities>>,
    /// Whether the capabilities were probed since the backend last came up.
    pub probed: bool,
    pub runs: Vec<RunSlot>,
    /// Model files of the last run it started: what it most likely holds in memory.
    pub loaded: Vec<String>,
    pub errors: VecDeque<RecentError>,
    /// The process id of a managed backend while it runs.
    pub pid: Option<u32>,
    /// How many times a managed backend's process was started again.
    pub restarts: u64,
    pub log_file: Option<PathBuf>,
}

impl BackendStatus {
    pub fn new(id: BackendId, weight: u32, tags: Vec<String>, max_prompts: usize) -> Self {
        Self {
            id,
            weight: weight.max(1),
            tags,
            max_prompts: max_prompts.max(1),
            managed: false,
            driven: false,
            health: Health::Starting,
            draining: false,
            version: None,
            capabilities: None,
            probed: false,
            runs: Vec::new(),
            loaded: Vec::new(),
            errors: VecDeque::new(),
            pid: None,
            restarts: 0,
            log_file: None,
        }
    }

    /// The state operators see.
    pub fn state(&self) -> BackendState {
        match self.health {
            _ if !self.driven => BackendState::Standby,
            Health::Up | Health::Degraded if self.draining => BackendState::Draining,
            Health::Starting => BackendState::Starting,
            Health::Up => BackendState::Up,
            Health::Degraded => BackendState::Degraded,
            Health::Down => BackendState::Down,
        }
    }

    /// Whether the dispatcher may give it new work.
    pub fn accepting(&self) -> bool {
        self.driven
            && self.health == Health::Up
            && self.probed
            && !self.draining
            && self.capabilities.is_some()
    }

    pub fn note_error(&mut self, message: impl Into<String>) {
        if self.errors.len() == RECENT_ERRORS {
            self.errors.pop_front();
        }
        self.errors.push_back(RecentError {
            at: OffsetDateTime::now_utc(),
            message: message.into(),
        });
    }
}

/// The live status of every backend, shared by drivers, dispatcher and API.
#[derive(Debug)]
pub struct Board {
    backends: Mutex<Vec<BackendStatus>>,
    changed: Notify,
}

impl Board {
    pub fn new(backends: Vec<BackendStatus>) -> Self {
        Self {
            backends: Mutex::new(backends),
            changed: Notify::new(),
        }
    }

    /// Every backend's status, copied.
    pub fn snapshot(&self) -> Vec<BackendStatus> {
        self.lock().clone()
    }

    /// One backend's status, copied.
    pub fn status(&self, id: &BackendId) -> Option<BackendStatus> {
        self.lock().iter().find(|status| &status.id == id).cloned()
    }

    /// Changes one backend's status. Returns what `change` returned, or `None` for an
    /// unknown backend. When the change leaves the backend fewer runs (one ended, or one
    /// the dispatcher marked was refused at its post), the dispatcher is poked: a place
    /// is free. The caller pokes it for other changes (health, readiness).
    pub fn update<T>(
        &self,
        id: &BackendId,
        change: impl FnOnce(&mut BackendStatus) -> T,
    ) -> Option<T> {
        let mut backends = self.lock();
        let status = backends.iter_mut().find(|status| &status.id == id)?;
        let before = status.runs.len();
        let answer = change(status);
        let freed = status.runs.len() < before;
        drop(backends);
        if freed {
            self.poke();
        }
        Some(answer)
    }

    /// Records an error of one backend.
    pub fn note_error(&self, id: &BackendId, message: impl Into<String>) {
        let message = message.into();
        self.update(id, |status| status.note_error(message));
    }

    /// Tells the dispatcher to look at the queue again. Pokes while it is busy collapse
    /// into one more look.
    pub fn poke(&self) {
        self.changed.notify_one();
    }

    /// Waits for the next poke.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Whether a backend could take a job now: one that takes work and has a free place.
    pub fn has_room(&self) -> bool {
        self.lock()
            .iter()
            .any(|backend| backend.accepting() && backend.runs.len() < backend.max_prompts)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<BackendStatus>> {
        self.backends.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The store asks the board whether a job just submitted would be placed at once, and
/// pokes the dispatcher as soon as it is committed.
impl crate::store::QueueWatch for Board {
    fn placing(&self) -> bool {
        self.has_room()
    }

    fn committed(&self) {
        self.poke();
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;
    use crate::jobs::model::JobId;

    #[test]
    fn a_place_freed_on_a_backend_wakes_the_dispatcher() {
        let id = BackendId::from("a");
        let board = Board::new(vec![BackendStatus::new(id.clone(), 1, Vec::new(), 2)]);
        let slot = RunSlot {
            job_id: JobId::new(),
            owner: None,
            priority: 0,
            phase: Phase::Assigned,
        };
        board.update(&id, |status| status.runs.push(slot));
        assert!(
            board.changed().now_or_never().is_none(),
            "a place taken wakes nobody"
        );
        // What a driver does with a job refused at its post: the dispatcher's mark goes,
        // and nothing takes its place.
        board.update(&id, |status| status.runs.clear());
        assert!(
            board.changed().now_or_never().is_some(),
            "the freed place wakes the dispatcher"
        );
    }
}

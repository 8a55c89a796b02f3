//! The driver's view of its backend's health: probes (`/system_stats`, `/object_info`),
//! the managed process's news, and what it writes on the board for the dispatcher and
//! operators. A backend takes work only once probed since it last came up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::Driver;
use crate::jobs::model::{EventKind, JobId};
use crate::scheduler::board::{Health, Phase, RunSlot};
use crate::scheduler::capability::Capabilities;
use crate::scheduler::managed::ProcessEvent;
use crate::store::NewEvent;

/// How often an idle backend is asked whether it still answers.
const HEALTH_EVERY: Duration = Duration::from_secs(5);
/// How long a probe may take (a large install's `/object_info` is the slowest call).
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a managed backend's process stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Process {
    Starting,
    Ready,
    Down,
}

/// What the driver knows about its backend's health.
#[derive(Debug)]
pub(super) struct HealthFacts {
    /// `None` for a backend reached by URL.
    process: Option<Process>,
    probed: bool,
    version: Option<String>,
    capabilities: Option<Arc<Capabilities>>,
    /// The last light probe's answer; `None` before the first.
    answers: Option<bool>,
    last_probe: Option<Instant>,
    /// What was last written on the board: own runs and whether it took work.
    written: Option<(usize, bool)>,
}

impl HealthFacts {
    pub(super) fn new(managed: bool) -> Self {
        Self {
            process: managed.then_some(Process::Starting),
            probed: false,
            version: None,
            capabilities: None,
            answers: None,
            last_probe: None,
            written: None,
        }
    }
}

impl Driver {
    /// The backend's health from the facts at hand.
    fn health(&self) -> Health {
        match self.health.process {
            Some(Process::Starting) => return Health::Starting,
            Some(Process::Down) => return Health::Down,
            Some(Process::Ready) | None => {}
        }
        let connected = self.client_id.is_some();
        if connected && self.health.probed && self.unreachable_since.is_none() {
            Health::Up
        } else if connected || self.health.answers == Some(true) {
            Health::Degraded
        } else if !self.connected_before && self.health.answers.is_none() {
            Health::Starting
        } else {
            Health::Down
        }
    }

    /// Reads the backend's version and capabilities; until this succeeds after a
    /// (re)connection, the backend takes no work.
    pub(super) async fn probe(&mut self) {
        self.health.probed = false;
        self.health.last_probe = Some(Instant::now());
        let probe = async {
            let stats = self.client.system_stats().await?;
            let info = self.client.object_info().await?;
            Ok::<_, comfy::ComfyError>((stats, info))
        };
        match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
            Ok(Ok((stats, info))) => {
                let capabilities = Arc::new(Capabilities::from_object_info(&info));
                tracing::info!(
                    comfyui.version = ?stats.system.comfyui_version,
                    node_classes = capabilities.class_count(),
                    "backend probed"
                );
                self.health.version = stats.system.comfyui_version;
                self.health.capabilities = Some(capabilities);
                self.health.probed = true;
                self.health.answers = Some(true);
            }
            Ok(Err(error)) => {
                self.health.answers = Some(false);
                self.context
                    .board
                    .note_error(&self.id, format!("probe failed: {error}"));
                self.note_unreachable(&error);
            }
            Err(_) => {
                self.context.board.note_error(
                    &self.id,
                    format!("probe not answered within {PROBE_TIMEOUT:?}"),
                );
            }
        }
    }

    /// A light probe of an idle backend, now and then; probes capabilities again when the
    /// socket is open but they are not known.
    pub(super) async fn probe_health(&mut self) {
        let due = self
            .health
            .last_probe
            .is_none_or(|at| at.elapsed() >= HEALTH_EVERY);
        if !due || self.health.process == Some(Process::Starting) {
            return;
        }
        if self.client_id.is_some() && !self.health.probed {
            return self.probe().await;
        }
        self.health.last_probe = Some(Instant::now());
        match self.client.system_stats().await {
            Ok(_) => {
                self.health.answers = Some(true);
                self.unreachable_since = None;
            }
            Err(error) => {
                self.health.answers = Some(false);
                self.note_unreachable(&error);
            }
        }
    }

    /// News from the supervisor of a managed backend.
    pub(super) async fn on_process(&mut self, event: ProcessEvent) {
        match event {
            ProcessEvent::Started { .. } => {
                self.health.process = Some(Process::Starting);
                self.health.probed = false;
            }
            ProcessEvent::Ready => {
                self.health.process = Some(Process::Ready);
                // A new process may be another version: ask again what it supports.
                self.client.forget_capabilities();
                self.unreachable_since = None;
                self.socket.reconnect();
            }
            ProcessEvent::Exited { description } => {
                self.health.process = Some(Process::Down);
                self.health.probed = false;
                self.context.board.note_error(&self.id, description);
                self.context
                    .board
                    .update(&self.id, |status| status.loaded.clear());
                // Its runs died with it; another backend (or this one, restarted) runs
                // them again.
                self.lose_all("the backend process exited").await;
            }
        }
    }

    /// Says on the board whether this replica drives the backend. A backend no longer
    /// driven here keeps no runs or health of this replica's.
    pub(super) fn set_driven(&mut self, driven: bool) {
        let health = self.health();
        self.context.board.update(&self.id, |status| {
            status.driven = driven;
            if !driven {
                status.runs.clear();
                status.health = health;
                status.probed = false;
            }
        });
        self.health.written = None;
        self.context.board.poke();
    }

    /// Remembers the models of the run that just started: they are now loaded there.
    pub(super) fn loaded(&self, models: Vec<String>) {
        if !models.is_empty() {
            self.context
                .board
                .update(&self.id, |status| status.loaded = models);
        }
    }

    /// Writes this backend's runs and health on the board, and pokes the dispatcher when
    /// its room or readiness changed.
    pub(super) fn sync_board(&mut self) {
        let mut slots: Vec<RunSlot> = self
            .runs
            .values()
            .map(|run| RunSlot {
                job_id: run.job_id,
                owner: run.owner.clone(),
                priority: run.priority,
                phase: if run.state == crate::jobs::model::JobState::Dispatched {
                    Phase::Waiting
                } else {
                    Phase::Running
                },
            })
            .collect();
        slots.extend(self.unposted.iter().map(|unposted| RunSlot {
            job_id: unposted.job.id,
            owner: unposted.job.owner.clone(),
            priority: unposted.job.priority,
            phase: Phase::Waiting,
        }));
        let health = self.health();
        let taken = std::mem::take(&mut self.taken);
        let own = slots.len();
        let facts = &self.health;
        let accepting = self.context.board.update(&self.id, |status| {
            status
                .runs
                .retain(|slot| slot.phase == Phase::Assigned && !taken.contains(&slot.job_id));
            status.runs.extend(slots);
            status.health = health;
            status.probed = facts.probed;
            status.version.clone_from(&facts.version);
            if facts.capabilities.is_some() {
                status.capabilities.clone_from(&facts.capabilities);
            }
            status.accepting()
        });
        let written = Some((own, accepting.unwrap_or(false)));
        if written != self.health.written {
            self.health.written = written;
            self.context.board.poke();
        }
    }

    /// Records one attempt's news in the job's event log: which attempt, which backend,
    /// what happened.
    pub(super) async fn record_attempt(
        &self,
        job_id: JobId,
        attempt: u32,
        level: &str,
        message: String,
        details: Value,
    ) {
        let mut payload = json!({
            "level": level,
            "message": message,
            "attempt": attempt,
            "backend": self.id.0,
        });
        if let (Some(fields), Value::Object(details)) = (payload.as_object_mut(), details) {
            fields.extend(details);
        }
        let event = NewEvent {
            kind: EventKind::Log,
            payload,
            at: OffsetDateTime::now_utc(),
        };
        match self.context.store.append_event(job_id, event).await {
            Ok(event) => self.context.bus.publish(event),
            Err(error) => tracing::error!(job.id = %job_id, %error, "attempt not recorded"),
        }
    }
}

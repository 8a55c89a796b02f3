//! One run of a job on a backend: what the websocket said about it so far, turned into the
//! contract's progress snapshot.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use comfy::PromptId;
use comfy::events::ServerMessage;
use serde_json::Value;

use super::early::EarlyFetches;
use crate::jobs::model::{Job, JobError, JobId, JobState, Progress};
use crate::jobs::requirements::Requirements;

/// How often at most a run's progress is written while the node stays the same.
const PROGRESS_EVERY: Duration = Duration::from_millis(150);

/// What the driver tracks of one posted prompt.
#[derive(Debug)]
pub struct Run {
    pub job_id: JobId,
    pub owner: Option<String>,
    pub priority: i32,
    /// Whether the job keeps `temp` previews among its outputs.
    pub keep_previews: bool,
    /// The model files the job loads, for the backend's "loaded" list once it starts.
    pub models: Vec<String>,
    pub prompt_id: PromptId,
    pub state: JobState,
    /// When it was posted (or adopted), for the lost-prompt grace.
    pub since: Instant,
    /// When it was dispatched, by the wall clock (adopted runs keep their first one), for
    /// the longest run time.
    pub dispatched_at: time::OffsetDateTime,
    /// A message said the run ended; `/history` is due now.
    pub end_hinted: bool,
    /// Any websocket message arrived for it (a run that finishes without one points at a
    /// silent socket).
    pub heard: bool,
    /// Cancel asked; an interrupt or queue delete was sent.
    pub cancel_requested: bool,
    /// Found unfinished at start-up, not posted by this process. The claim records the
    /// prompt id before the post, so such a run never heard starting may never have
    /// reached the backend.
    pub adopted: bool,
    classes: HashMap<String, String>,
    done: HashSet<String>,
    current: Option<String>,
    step: Option<(u64, u64)>,
    last_written: Option<Instant>,
    /// A snapshot not written yet because more websocket messages were waiting: only the
    /// newest of a burst is written (`Driver::flush_progress`).
    pub unwritten: Option<Progress>,
    /// Output files announced by `executed` and being fetched while the run goes on.
    pub early: EarlyFetches,
}

impl Run {
    pub fn new(job: &Job, prompt_id: PromptId, state: JobState) -> Self {
        let graph = &job.workflow;
        let models = Requirements::of(graph)
            .model_files()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let classes = graph
            .as_object()
            .map(|nodes| {
                nodes
                    .iter()
                    .map(|(id, node)| {
                        let class = node.get("class_type").and_then(Value::as_str).unwrap_or("");
                        (id.clone(), class.to_owned())
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            job_id: job.id,
            owner: job.owner.clone(),
            priority: job.priority,
            keep_previews: job.keep_previews,
            models,
            prompt_id,
            state,
            since: Instant::now(),
            dispatched_at: time::OffsetDateTime::now_utc(),
            end_hinted: false,
            heard: false,
            cancel_requested: false,
            adopted: false,
            classes,
            done: HashSet::new(),
            current: None,
            unwritten: None,
            early: EarlyFetches::default(),
            step: None,
            last_written: None,
        }
    }

    /// Takes in one message of this run. Returns true when the progress snapshot changed
    /// enough to be written.
    pub fn observe(&mut self, message: &ServerMessage) -> bool {
        self.heard = true;
        match message {
            ServerMessage::ExecutionCached(cached) => {
                self.done
                    .extend(cached.nodes.iter().map(|node| node.as_str().to_owned()));
                true
            }
            ServerMessage::Executing(executing) => match &executing.node {
                Some(node) => {
                    if let Some(previous) = self.current.replace(node.as_str().to_owned()) {
                        self.done.insert(previous);
                    }
                    self.step = None;
                    self.write_now()
                }
                None => false,
            },
            ServerMessage::Progress(progress) => {
                self.step = Some((progress.value, progress.max));
                let last_step = progress.value >= progress.max;
                if last_step {
                    self.write_now()
                } else {
                    self.write_if_due()
                }
            }
            ServerMessage::Executed(executed) => {
                self.done.insert(executed.node.as_str().to_owned());
                self.write_if_due()
            }
            _ => false,
        }
    }

    fn write_now(&mut self) -> bool {
        self.last_written = Some(Instant::now());
        true
    }

    fn write_if_due(&mut self) -> bool {
        let due = self
            .last_written
            .is_none_or(|at| at.elapsed() >= PROGRESS_EVERY);
        if due {
            self.last_written = Some(Instant::now());
        }
        due
    }

    /// The node running now, for previews of servers that do not name it.
    pub fn current_node(&self) -> Option<&str> {
        self.current.as_deref()
    }

    /// The contract's progress snapshot: nodes done plus the running node's step fraction,
    /// over all nodes.
    pub fn progress(&self) -> Progress {
        let nodes_total = u32::try_from(self.classes.len()).unwrap_or(u32::MAX).max(1);
        let nodes_done = u32::try_from(self.done.len())
            .unwrap_or(u32::MAX)
            .min(nodes_total);
        let fraction = match self.step {
            Some((value, max)) if max > 0 => value.min(max) as f64 / max as f64,
            _ => 0.0,
        };
        let running = self
            .current
            .as_ref()
            .filter(|node| !self.done.contains(*node));
        let partial = if running.is_some() { fraction } else { 0.0 };
        let value = ((f64::from(nodes_done) + partial) / f64::from(nodes_total)).clamp(0.0, 1.0);
        let current_node_class = self
            .current
            .as_ref()
            .and_then(|node| self.classes.get(node))
            .cloned();
        let (step, steps) = match self.step {
            Some((value, max)) => (u32::try_from(value).ok(), u32::try_from(max).ok()),
            None => (None, None),
        };
        let message = match (&current_node_class, step, steps) {
            (Some(class), Some(step), Some(steps)) => Some(format!("{class} {step}/{steps}")),
            (Some(class), _, _) => Some(class.clone()),
            _ => None,
        };
        Progress {
            value,
            nodes_done,
            nodes_total,
            current_node: self.current.clone(),
            current_node_class,
            step,
            steps,
            message,
        }
    }
}

/// A job error with a code and message and nothing else.
pub fn job_error(code: &str, message: impl Into<String>) -> JobError {
    JobError {
        code: code.to_owned(),
        message: message.into(),
        node_id: None,
        class_type: None,
        exception_type: None,
        traceback: None,
    }
}

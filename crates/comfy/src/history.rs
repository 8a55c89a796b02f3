//! `GET /history/{prompt_id}`: the authoritative record that a run finished, and its outputs.
//!
//! A run is over only when its history entry exists; websocket messages are hints. The
//! entry's `outputs` map node ids to the node's UI dict, whose keys vary by node (`images`,
//! `gifs`, `audio`, `3d`, `text`, `animated`, custom ones). Every key of every node is
//! turned into [`Output`] values: files, texts, or the raw JSON of what we do not know.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::events::{ExecutionError, ExecutionInterrupted};
use crate::ids::{NodeId, PromptId};
use crate::outputs::{Output, parse_node_outputs};

/// One finished run as ComfyUI recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    pub prompt_id: PromptId,
    pub outcome: RunOutcome,
    /// Every output of every node, in the order the server listed them.
    pub outputs: Vec<Output>,
    /// Ids of nodes served from ComfyUI's cache in this run (from `execution_cached`).
    pub cached_nodes: Vec<NodeId>,
    /// Milliseconds since the epoch of `execution_start` and of the final message.
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
}

/// How a recorded run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RunOutcome {
    Success,
    /// A node raised; the message carries node id, class and exception.
    Failed(Box<ExecutionError>),
    /// `/interrupt` stopped it (ComfyUI records `status_str: "error"` for this too).
    Interrupted(ExecutionInterrupted),
    /// `status_str` is `error` but no message says why (the `ExecutionBlocked` path sends
    /// its error without recording it).
    FailedWithoutDetail,
}

#[derive(Debug, Deserialize)]
struct RawEntry {
    #[serde(default)]
    outputs: Map<String, Value>,
    #[serde(default)]
    status: Option<RawStatus>,
}

#[derive(Debug, Deserialize)]
struct RawStatus {
    #[serde(default)]
    status_str: String,
    #[serde(default)]
    completed: bool,
    #[serde(default)]
    messages: Vec<(String, Value)>,
}

/// Errors reading a history body.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("history body is not an object keyed by prompt id")]
    NotAnObject,
    #[error("history entry for {prompt_id} is malformed: {message}")]
    Malformed { prompt_id: String, message: String },
}

/// Reads the body of `GET /history/{prompt_id}`: `{}` (unknown, pending or running) gives
/// `None`.
///
/// # Errors
///
/// [`HistoryError`] when the body or the entry does not have ComfyUI's shape.
pub fn parse_history_body(
    prompt_id: &PromptId,
    body: &Value,
) -> Result<Option<HistoryEntry>, HistoryError> {
    let Value::Object(entries) = body else {
        return Err(HistoryError::NotAnObject);
    };
    match entries.get(prompt_id.as_str()) {
        None => Ok(None),
        Some(entry) => parse_history_entry(prompt_id, entry).map(Some),
    }
}

/// Reads one history entry (the value under the prompt id).
///
/// # Errors
///
/// [`HistoryError::Malformed`] when `outputs` or `status` has the wrong shape.
pub fn parse_history_entry(
    prompt_id: &PromptId,
    entry: &Value,
) -> Result<HistoryEntry, HistoryError> {
    let malformed = |message: String| HistoryError::Malformed {
        prompt_id: prompt_id.to_string(),
        message,
    };
    let raw: RawEntry =
        serde_json::from_value(entry.clone()).map_err(|error| malformed(error.to_string()))?;

    let mut outputs = Vec::new();
    for (node_id, ui) in &raw.outputs {
        outputs.extend(parse_node_outputs(&NodeId::new(node_id.as_str()), ui));
    }

    // ComfyUI before January 2024 wrote no status block; such an entry only exists once
    // the run completed, so it counts as a success.
    let status = raw.status.unwrap_or(RawStatus {
        status_str: "success".to_owned(),
        completed: true,
        messages: Vec::new(),
    });
    let timeline = Timeline::read(&status.messages).map_err(malformed)?;
    let outcome = if status.status_str == "success" && status.completed {
        RunOutcome::Success
    } else if let Some(error) = timeline.error {
        RunOutcome::Failed(Box::new(error))
    } else if let Some(interrupted) = timeline.interrupted {
        RunOutcome::Interrupted(interrupted)
    } else {
        RunOutcome::FailedWithoutDetail
    };

    Ok(HistoryEntry {
        prompt_id: prompt_id.clone(),
        outcome,
        outputs,
        cached_nodes: timeline.cached_nodes,
        started_at_ms: timeline.started_at_ms,
        finished_at_ms: timeline.finished_at_ms,
    })
}

/// What `status.messages` says about the run.
#[derive(Default)]
struct Timeline {
    error: Option<ExecutionError>,
    interrupted: Option<ExecutionInterrupted>,
    cached_nodes: Vec<NodeId>,
    started_at_ms: Option<i64>,
    finished_at_ms: Option<i64>,
}

impl Timeline {
    fn read(messages: &[(String, Value)]) -> Result<Self, String> {
        let mut timeline = Self::default();
        for (kind, data) in messages {
            let timestamp = data.get("timestamp").and_then(Value::as_i64);
            match kind.as_str() {
                "execution_start" => timeline.started_at_ms = timestamp,
                "execution_cached" => {
                    let nodes = data.get("nodes").cloned().unwrap_or(Value::Null);
                    timeline.cached_nodes = serde_json::from_value(nodes).unwrap_or_default();
                }
                "execution_success" => timeline.finished_at_ms = timestamp,
                "execution_error" => {
                    let error = serde_json::from_value(data.clone())
                        .map_err(|error| format!("execution_error message: {error}"))?;
                    timeline.error = Some(error);
                    timeline.finished_at_ms = timestamp;
                }
                "execution_interrupted" => {
                    let interrupted = serde_json::from_value(data.clone())
                        .map_err(|error| format!("execution_interrupted message: {error}"))?;
                    timeline.interrupted = Some(interrupted);
                    timeline.finished_at_ms = timestamp;
                }
                other => tracing::debug!(message.kind = other, "unknown history status message"),
            }
        }
        Ok(timeline)
    }
}

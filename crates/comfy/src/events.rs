//! The JSON messages ComfyUI sends on its websocket, typed.
//!
//! Every message is `{"type": ..., "data": {...}}`. Known types become [`ServerMessage`]
//! variants; unknown ones (custom nodes invent their own) are kept as raw JSON. A known
//! type whose fields are missing or mistyped is a [`MessageError`], never a panic.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ids::{NodeId, PromptId};

/// One websocket text message from ComfyUI.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerMessage {
    Status(Status),
    ExecutionStart(ExecutionStart),
    ExecutionCached(ExecutionCached),
    Executing(Executing),
    Progress(Progress),
    ProgressState(ProgressState),
    Executed(Executed),
    ExecutionSuccess(ExecutionSuccess),
    ExecutionError(Box<ExecutionError>),
    ExecutionInterrupted(ExecutionInterrupted),
    /// The server's answer to our feature-flag handshake.
    FeatureFlags(Map<String, Value>),
    /// A type we do not know, kept whole.
    Unknown {
        kind: String,
        data: Value,
    },
}

impl ServerMessage {
    /// The prompt the message is about, when it names one.
    pub fn prompt_id(&self) -> Option<&PromptId> {
        match self {
            Self::ExecutionStart(message) => Some(&message.prompt_id),
            Self::ExecutionCached(message) => Some(&message.prompt_id),
            Self::Executing(message) => message.prompt_id.as_ref(),
            Self::Progress(message) => message.prompt_id.as_ref(),
            Self::ProgressState(message) => Some(&message.prompt_id),
            Self::Executed(message) => Some(&message.prompt_id),
            Self::ExecutionSuccess(message) => Some(&message.prompt_id),
            Self::ExecutionError(message) => Some(&message.prompt_id),
            Self::ExecutionInterrupted(message) => Some(&message.prompt_id),
            Self::Status(_) | Self::FeatureFlags(_) | Self::Unknown { .. } => None,
        }
    }

    /// The `type` of the message on the wire.
    pub fn kind(&self) -> &str {
        match self {
            Self::Status(_) => "status",
            Self::ExecutionStart(_) => "execution_start",
            Self::ExecutionCached(_) => "execution_cached",
            Self::Executing(_) => "executing",
            Self::Progress(_) => "progress",
            Self::ProgressState(_) => "progress_state",
            Self::Executed(_) => "executed",
            Self::ExecutionSuccess(_) => "execution_success",
            Self::ExecutionError(_) => "execution_error",
            Self::ExecutionInterrupted(_) => "execution_interrupted",
            Self::FeatureFlags(_) => "feature_flags",
            Self::Unknown { kind, .. } => kind,
        }
    }

    /// True for the messages after which a look at `/history` may find the run finished:
    /// `execution_success`, `execution_error`, `execution_interrupted`, and `executing`
    /// with `node: null`. None of them proves the history entry exists yet.
    pub fn hints_run_ended(&self) -> bool {
        match self {
            Self::ExecutionSuccess(_) | Self::ExecutionError(_) | Self::ExecutionInterrupted(_) => {
                true
            }
            Self::Executing(message) => message.node.is_none() && message.prompt_id.is_some(),
            _ => false,
        }
    }
}

/// A message that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("websocket message is not JSON: {0}")]
    NotJson(String),
    #[error("websocket message has no string \"type\"")]
    NoType,
    #[error("websocket message {kind:?} is malformed: {message}")]
    Malformed { kind: String, message: String },
}

/// `status`: the queue length, broadcast on every queue change; the first one carries the
/// socket's `sid`.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub queue_remaining: u64,
    pub sid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ExecutionStart {
    pub prompt_id: PromptId,
    #[serde(default)]
    pub timestamp: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ExecutionCached {
    pub prompt_id: PromptId,
    #[serde(default)]
    pub nodes: Vec<NodeId>,
    #[serde(default)]
    pub timestamp: Option<i64>,
}

/// `executing`: a node started; `node: None` with a prompt id means the run is over. On a
/// reconnect ComfyUI may send it with a node and no prompt id.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Executing {
    #[serde(default)]
    pub node: Option<NodeId>,
    #[serde(default)]
    pub display_node: Option<NodeId>,
    #[serde(default)]
    pub prompt_id: Option<PromptId>,
}

/// `progress`: step `value` of `max` in one node.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Progress {
    pub value: u64,
    pub max: u64,
    #[serde(default)]
    pub prompt_id: Option<PromptId>,
    #[serde(default)]
    pub node: Option<NodeId>,
}

/// `progress_state`: every node that is not pending, with its state.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ProgressState {
    pub prompt_id: PromptId,
    pub nodes: BTreeMap<String, NodeProgress>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct NodeProgress {
    pub value: f64,
    pub max: f64,
    /// `running`, `finished` (and `error`, which ComfyUI defines).
    pub state: String,
    #[serde(default)]
    pub node_id: Option<NodeId>,
    #[serde(default)]
    pub display_node_id: Option<NodeId>,
    #[serde(default)]
    pub real_node_id: Option<NodeId>,
}

/// `executed`: an output node finished, with its UI dict.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Executed {
    pub prompt_id: PromptId,
    pub node: NodeId,
    #[serde(default)]
    pub display_node: Option<NodeId>,
    #[serde(default)]
    pub output: Value,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ExecutionSuccess {
    pub prompt_id: PromptId,
    #[serde(default)]
    pub timestamp: Option<i64>,
}

/// `execution_error`: a node raised.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ExecutionError {
    pub prompt_id: PromptId,
    pub node_id: NodeId,
    pub node_type: String,
    #[serde(default)]
    pub executed: Vec<NodeId>,
    #[serde(default)]
    pub exception_message: String,
    #[serde(default)]
    pub exception_type: String,
    #[serde(default)]
    pub traceback: Vec<String>,
    #[serde(default)]
    pub current_inputs: Value,
    #[serde(default)]
    pub current_outputs: Value,
    #[serde(default)]
    pub timestamp: Option<i64>,
}

/// `execution_interrupted`: `/interrupt` stopped the run at a node.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ExecutionInterrupted {
    pub prompt_id: PromptId,
    #[serde(default)]
    pub node_id: Option<NodeId>,
    #[serde(default)]
    pub node_type: Option<String>,
    #[serde(default)]
    pub executed: Vec<NodeId>,
    #[serde(default)]
    pub timestamp: Option<i64>,
}

/// Reads one websocket text message.
///
/// # Errors
///
/// [`MessageError`] when the text is not JSON, has no `type`, or a known type lacks a
/// field it must have.
pub fn parse_message(text: &str) -> Result<ServerMessage, MessageError> {
    let value: Value =
        serde_json::from_str(text).map_err(|error| MessageError::NotJson(error.to_string()))?;
    let kind = value
        .get("type")
        .and_then(Value::as_str)
        .ok_or(MessageError::NoType)?;
    let data = value.get("data").cloned().unwrap_or(Value::Null);
    typed_message(kind, data)
}

fn typed_message(kind: &str, data: Value) -> Result<ServerMessage, MessageError> {
    fn read<T: serde::de::DeserializeOwned>(kind: &str, data: Value) -> Result<T, MessageError> {
        serde_json::from_value(data).map_err(|error| MessageError::Malformed {
            kind: kind.to_owned(),
            message: error.to_string(),
        })
    }
    let message = match kind {
        "status" => ServerMessage::Status(read_status(&data)?),
        "execution_start" => ServerMessage::ExecutionStart(read(kind, data)?),
        "execution_cached" => ServerMessage::ExecutionCached(read(kind, data)?),
        "executing" => ServerMessage::Executing(read(kind, data)?),
        "progress" => ServerMessage::Progress(read(kind, data)?),
        "progress_state" => ServerMessage::ProgressState(read(kind, data)?),
        "executed" => ServerMessage::Executed(read(kind, data)?),
        "execution_success" => ServerMessage::ExecutionSuccess(read(kind, data)?),
        "execution_error" => ServerMessage::ExecutionError(Box::new(read(kind, data)?)),
        "execution_interrupted" => ServerMessage::ExecutionInterrupted(read(kind, data)?),
        "feature_flags" => ServerMessage::FeatureFlags(read(kind, data)?),
        _ => ServerMessage::Unknown {
            kind: kind.to_owned(),
            data,
        },
    };
    Ok(message)
}

fn read_status(data: &Value) -> Result<Status, MessageError> {
    let queue_remaining = data
        .pointer("/status/exec_info/queue_remaining")
        .and_then(Value::as_u64)
        .ok_or_else(|| MessageError::Malformed {
            kind: "status".to_owned(),
            message: "missing status.exec_info.queue_remaining".to_owned(),
        })?;
    let sid = data.get("sid").and_then(Value::as_str).map(str::to_owned);
    Ok(Status {
        queue_remaining,
        sid,
    })
}

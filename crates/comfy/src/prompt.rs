//! `POST /prompt`: what we send, what comes back, and the typed form of a refusal.
//!
//! A refusal keeps every node error ComfyUI reported (node id, class, input, error type,
//! message), because the gateway maps them back to parameter names for its users.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ids::{ClientId, NodeId, PromptId};

/// A graph in ComfyUI's API format: node id to `{class_type, inputs, _meta?}`.
pub type ApiGraph = Map<String, Value>;

/// The body of `POST /prompt`.
#[derive(Debug, Clone, Serialize)]
pub struct PromptRequest {
    pub prompt: ApiGraph,
    pub client_id: ClientId,
    /// Chosen by the caller so a lost response can still be looked up (ComfyUI 0.3.45+).
    /// The client drops it for older servers and reports the id the server chose.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_id: Option<PromptId>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub extra_data: Map<String, Value>,
    /// Places the prompt at the front of ComfyUI's own queue.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub front: bool,
}

impl PromptRequest {
    /// A request for `graph` posted by the socket `client_id`, with a fresh prompt id.
    pub fn new(graph: ApiGraph, client_id: ClientId) -> Self {
        Self {
            prompt: graph,
            client_id,
            prompt_id: Some(PromptId::random()),
            extra_data: Map::new(),
            front: false,
        }
    }
}

/// A 200 from `POST /prompt`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PromptAccepted {
    pub prompt_id: PromptId,
    /// The queue number ComfyUI assigned (its priority; lower runs first).
    pub number: f64,
    /// Output nodes that failed validation and will not run, even though the prompt was
    /// accepted. ComfyUI only logs "Output will be ignored"; callers should treat a
    /// non-empty map as a refusal of those outputs.
    #[serde(default)]
    pub node_errors: BTreeMap<NodeId, NodeError>,
}

/// A 400 from `POST /prompt`: nothing was queued.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct PromptRejection {
    pub error: PromptErrorSummary,
    #[serde(default)]
    pub node_errors: BTreeMap<NodeId, NodeError>,
}

impl std::fmt::Display for PromptRejection {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{} ({})", self.error.message, self.error.kind)?;
        for (node_id, node) in &self.node_errors {
            for error in &node.errors {
                write!(
                    formatter,
                    "; node {node_id} ({}): {}",
                    node.class_type, error
                )?;
            }
        }
        Ok(())
    }
}

/// The top-level `error` of a refusal, such as `prompt_outputs_failed_validation`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct PromptErrorSummary {
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
    #[serde(default)]
    pub details: String,
    #[serde(default)]
    pub extra_info: Value,
}

/// All errors of one node, with the outputs they block.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct NodeError {
    #[serde(default)]
    pub errors: Vec<InputError>,
    #[serde(default)]
    pub dependent_outputs: Vec<NodeId>,
    #[serde(default)]
    pub class_type: String,
}

/// One validation failure, usually about one input of the node.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct InputError {
    /// `required_input_missing`, `value_not_in_list`, `value_bigger_than_max`, ...
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
    #[serde(default)]
    pub details: String,
    #[serde(default)]
    pub extra_info: InputErrorInfo,
}

impl InputError {
    /// The input this error is about, when ComfyUI named one.
    pub fn input_name(&self) -> Option<&str> {
        self.extra_info.input_name.as_deref()
    }
}

impl std::fmt::Display for InputError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(input) = self.input_name() {
            write!(formatter, "input {input:?}: ")?;
        }
        formatter.write_str(&self.message)?;
        if !self.details.is_empty() {
            write!(formatter, " ({})", self.details)?;
        }
        Ok(())
    }
}

/// The `extra_info` of an input error; every field is optional on the wire.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct InputErrorInfo {
    #[serde(default)]
    pub input_name: Option<String>,
    #[serde(default)]
    pub input_config: Value,
    #[serde(default)]
    pub received_value: Value,
}

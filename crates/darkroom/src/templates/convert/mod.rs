//! UI-format to API-format conversion: a workflow as ComfyUI's editor saves it (`nodes`
//! and `links`, with positions, notes, reroutes, subgraphs) turned into the graph that
//! `POST /prompt` takes, the way the editor does it when it queues, but on the server and
//! with the backend's `/object_info` as the only knowledge of node classes.
//!
//! What it does, step by step:
//!
//! - Saved widget values become named inputs in the backend's declared input order,
//!   skipping the extra values some widgets store (a seed's "control after generate", the
//!   buttons after an upload); see [`widgets`].
//! - A link into an input, including a widget turned into a socket, is followed back
//!   through reroutes, subgraph borders and bypassed nodes to a backend node's output; a
//!   Primitive node's link becomes its value; a link from a muted node gives nothing.
//! - Bypassed nodes hand each output's link to their input of the same type; muted nodes
//!   are left out; notes, reroutes and Primitive nodes exist only in the editor and are
//!   dropped.
//! - Subgraphs and legacy group nodes are expanded: inner nodes get the editor's ids
//!   (`"75:12"` for node 12 inside instance 75), nested as deep as they go.
//! - A node class the backend does not know is an error naming the node and its type,
//!   unless the node is muted or bypassed (the backend never sees it then).
//!
//! This module only converts. It does not check values against the schema (the backend
//! validates the graph it receives), fetch `/object_info`, or talk to any server.

mod emit;
mod error;
mod group_node;
mod resolve;
mod scope;
mod widgets;
mod workflow;

use comfy::ApiGraph;
use comfy::server_info::ObjectInfo;
use serde_json::Value;

pub use error::ConvertError;

use resolve::Resolver;
use scope::Context;
use workflow::Workflow;

/// A converted workflow: the API graph, and what was left out or changed on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversion {
    /// Node id to `{class_type, inputs, _meta: {title}}`, ready for `POST /prompt`.
    pub graph: ApiGraph,
    pub notes: Vec<ConversionNote>,
}

/// Something the conversion left out, so a person can see why a node is missing from
/// the API graph. Node ids are API ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConversionNote {
    /// An editor-only node (note, reroute, Primitive node) that never reaches the backend.
    Dropped { node: String, node_type: String },
    /// A muted node: left out, and what it fed gets nothing from it.
    Muted { node: String, node_type: String },
    /// A bypassed node: left out, its inputs handed on to what its outputs fed.
    Bypassed { node: String, node_type: String },
    /// A linked input that gets nothing (its source is muted, or the link leads nowhere)
    /// and has no widget value to fall back on.
    Unfed { node: String, input: String },
}

impl std::fmt::Display for ConversionNote {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Dropped { node, node_type } => {
                write!(
                    formatter,
                    "node {node} ({node_type}) exists only in the editor: dropped"
                )
            }
            Self::Muted { node, node_type } => {
                write!(formatter, "node {node} ({node_type}) is muted: left out")
            }
            Self::Bypassed { node, node_type } => {
                write!(
                    formatter,
                    "node {node} ({node_type}) is bypassed: its inputs pass through"
                )
            }
            Self::Unfed { node, input } => {
                write!(
                    formatter,
                    "input {input:?} of node {node} is linked to nothing that runs"
                )
            }
        }
    }
}

/// Whether `workflow` is in the editor's format (top-level `nodes` and `links` lists)
/// rather than the API format (an object of nodes keyed by id).
pub fn is_ui_format(workflow: &Value) -> bool {
    let list = |key: &str| workflow.get(key).is_some_and(Value::is_array);
    list("nodes") && list("links")
}

/// Converts an editor workflow into an API graph for a backend with `object_info`.
///
/// # Errors
///
/// [`ConvertError::NotUiFormat`] when `workflow` is not an editor export;
/// [`ConvertError::UnknownNodeType`] naming the node and its type when a node that would
/// run has a class `object_info` does not list; the other [`ConvertError`]s for a
/// workflow the editor could not have saved (missing subgraph definitions, a subgraph
/// inside itself, malformed nodes or links, links in a circle).
pub fn ui_to_api(workflow: &Value, object_info: &ObjectInfo) -> Result<Conversion, ConvertError> {
    if !is_ui_format(workflow) {
        return Err(ConvertError::NotUiFormat {
            reason: "expected top-level \"nodes\" and \"links\" lists".to_owned(),
        });
    }
    let workflow = Workflow::parse(workflow)?;
    let context = Context {
        workflow: &workflow,
        info: object_info,
    };
    let scopes = scope::build(context)?;
    let (graph, notes) = emit::emit(Resolver {
        context,
        scopes: &scopes,
    })?;
    Ok(Conversion { graph, notes })
}

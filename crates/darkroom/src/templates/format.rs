//! A template's workflow in either of ComfyUI's formats, brought to the API format that
//! discovery, injection and the backend read: UI-format exports (`nodes` and `links`, as
//! the editor saves them) are converted with the backend's `/object_info`.

use comfy::server_info::ObjectInfo;
use serde_json::Value;

use super::convert;
use super::error::TemplateError;
use super::graph::Graph;

/// Which format a template was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkflowFormat {
    Api,
    Ui,
}

/// The workflow as an API-format graph, with the format it came in.
///
/// # Errors
///
/// A graph of the wrong shape, naming the node; a UI-format workflow when no backend's
/// `/object_info` is at hand or the conversion fails.
pub fn to_api(
    name: &str,
    workflow: &Value,
    info: Option<&ObjectInfo>,
) -> Result<(WorkflowFormat, Graph), TemplateError> {
    if convert::is_ui_format(workflow) {
        let info = info.ok_or_else(|| TemplateError::NeedsObjectInfo {
            name: name.to_owned(),
        })?;
        let conversion =
            convert::ui_to_api(workflow, info).map_err(|error| TemplateError::Conversion {
                name: name.to_owned(),
                detail: error.to_string(),
            })?;
        return Ok((WorkflowFormat::Ui, conversion.graph));
    }
    let invalid = |detail: String| TemplateError::Workflow {
        name: name.to_owned(),
        detail,
    };
    let Value::Object(graph) = workflow else {
        return Err(invalid(
            "the workflow must be a JSON object of nodes keyed by node id".into(),
        ));
    };
    if graph.is_empty() {
        return Err(invalid("the workflow has no nodes".into()));
    }
    for (node_id, node) in graph {
        let class = node.get("class_type").and_then(Value::as_str);
        let inputs = node.get("inputs").is_some_and(Value::is_object);
        if class.is_none() || !inputs {
            return Err(invalid(format!(
                "node {node_id:?} must be an object with a string \"class_type\" and an object \"inputs\""
            )));
        }
    }
    Ok((WorkflowFormat::Api, graph.clone()))
}

//! Checks on a submitted API-format graph, before anything is stored: the UI format
//! refused, each node's shape, links that point nowhere, classes no backend knows, and
//! `core/ASSET` references to assets that do not exist.
//!
//! Each problem names its node and field, so the `invalid_workflow` answer can carry
//! `details.node_errors` as `{node_id: [{field, reason, message}]}`. Deeper checks (input
//! types, required inputs) are ComfyUI's, at dispatch.

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::api::ApiError;
use crate::api::node_classes::NodeCatalog;
use crate::auth::Caller;
use crate::jobs::model::{Asset, AssetId};
use crate::store::Store;

/// The graph's nodes, keyed by node id.
pub type Graph = Map<String, Value>;

/// One thing wrong with one node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeProblem {
    pub node_id: String,
    /// The field at fault: `class_type`, `inputs`, or an input's name; empty for the node.
    pub field: String,
    /// A stable snake_case reason.
    pub reason: &'static str,
    pub message: String,
}

/// Refuses a UI-format export (`nodes` and `links` arrays) with the contract's code.
///
/// # Errors
///
/// `422 workflow_format_ui`.
pub fn refuse_ui_format(value: &Map<String, Value>) -> Result<(), ApiError> {
    let is_array = |key: &str| value.get(key).is_some_and(Value::is_array);
    if is_array("nodes") && is_array("links") {
        return Err(ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "workflow_format_ui",
            "the workflow is in ComfyUI's UI format (top-level \"nodes\" and \"links\"); \
             submit the API format (ComfyUI: Export (API)); conversion from the UI format \
             comes with templates",
        ));
    }
    Ok(())
}

/// Every structural problem of `graph`; classes are checked only when `catalog` is known.
pub fn problems(graph: &Graph, catalog: Option<&NodeCatalog>) -> Vec<NodeProblem> {
    let mut found = Vec::new();
    for (node_id, node) in graph {
        check_node(graph, node_id, node, catalog, &mut found);
    }
    if found.is_empty()
        && let Some((node_id, input)) = first_cycle(graph)
    {
        let message = format!(
            "node {node_id:?}: input {input:?} is fed, through its links, by the node's own output; \
             a graph must not loop"
        );
        found.push(NodeProblem::new(&node_id, &input, "cycle", message));
    }
    found
}

/// The first input found whose links lead back to its own node, by a depth-first walk
/// from every node (ComfyUI refuses such graphs only after queueing them). Iterative, so a
/// long chain of nodes cannot overflow the stack.
fn first_cycle(graph: &Graph) -> Option<(String, String)> {
    use std::collections::HashMap;

    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    let links = |node_id: &str| -> Vec<(String, String)> {
        let inputs = graph
            .get(node_id)
            .and_then(|node| node.get("inputs"))
            .and_then(Value::as_object);
        inputs
            .into_iter()
            .flatten()
            .filter_map(|(input, value)| match value.as_array().map(Vec::as_slice) {
                Some([Value::String(source), Value::Number(_)]) if graph.contains_key(source) => {
                    Some((input.clone(), source.clone()))
                }
                _ => None,
            })
            .collect()
    };

    let mut marks: HashMap<String, Mark> = HashMap::new();
    for start in graph.keys() {
        if marks.contains_key(start) {
            continue;
        }
        // Each frame: a node and the links of it still to follow.
        let mut stack = vec![(start.clone(), links(start))];
        marks.insert(start.clone(), Mark::Open);
        while let Some((node_id, pending)) = stack.last_mut() {
            let Some((input, source)) = pending.pop() else {
                marks.insert(node_id.clone(), Mark::Done);
                stack.pop();
                continue;
            };
            match marks.get(&source) {
                Some(Mark::Open) => return Some((node_id.clone(), input)),
                Some(Mark::Done) => {}
                None => {
                    marks.insert(source.clone(), Mark::Open);
                    let next = links(&source);
                    stack.push((source, next));
                }
            }
        }
    }
    None
}

impl NodeProblem {
    fn new(node_id: &str, field: &str, reason: &'static str, message: String) -> Self {
        Self {
            node_id: node_id.to_owned(),
            field: field.to_owned(),
            reason,
            message,
        }
    }
}

fn check_node(
    graph: &Graph,
    node_id: &str,
    node: &Value,
    catalog: Option<&NodeCatalog>,
    found: &mut Vec<NodeProblem>,
) {
    let Some(node) = node.as_object() else {
        let message =
            format!("node {node_id:?} must be an object with \"class_type\" and \"inputs\"");
        found.push(NodeProblem::new(node_id, "", "not_an_object", message));
        return;
    };
    let class_type = check_class(node_id, node, catalog, found);
    let named = match class_type {
        Some(class_type) => format!("node {node_id:?} ({class_type})"),
        None => format!("node {node_id:?}"),
    };

    let inputs = match node.get("inputs") {
        Some(Value::Object(inputs)) => inputs,
        Some(_) => {
            let message = format!("{named}: \"inputs\" must be an object");
            found.push(NodeProblem::new(
                node_id,
                "inputs",
                "invalid_inputs",
                message,
            ));
            return;
        }
        None => {
            let message = format!("{named} has no \"inputs\"");
            found.push(NodeProblem::new(
                node_id,
                "inputs",
                "missing_inputs",
                message,
            ));
            return;
        }
    };
    for (input, value) in inputs {
        if let Some((reason, problem)) = link_problem(graph, catalog, value) {
            let message = format!("{named}: input {input:?} {problem}");
            found.push(NodeProblem::new(node_id, input, reason, message));
        }
    }
}

/// The node's `class_type` when it is a string; a missing, malformed or unknown one is a
/// problem (unknown only when the backends' catalogue is at hand).
fn check_class<'node>(
    node_id: &str,
    node: &'node Map<String, Value>,
    catalog: Option<&NodeCatalog>,
    found: &mut Vec<NodeProblem>,
) -> Option<&'node str> {
    let (reason, message) = match node.get("class_type") {
        Some(Value::String(class_type)) => match catalog {
            Some(catalog) if !catalog.knows(class_type) => (
                "unknown_class_type",
                format!("node {node_id:?}: class_type {class_type:?} is not known to any backend"),
            ),
            _ => return Some(class_type),
        },
        Some(_) => (
            "invalid_class_type",
            format!("node {node_id:?}: \"class_type\" must be a string"),
        ),
        None => (
            "missing_class_type",
            format!("node {node_id:?} has no \"class_type\""),
        ),
    };
    found.push(NodeProblem::new(node_id, "class_type", reason, message));
    node.get("class_type").and_then(Value::as_str)
}

/// An input holding `[node_id, output_index]` is a link; what is wrong with it, if anything.
fn link_problem(
    graph: &Graph,
    catalog: Option<&NodeCatalog>,
    value: &Value,
) -> Option<(&'static str, String)> {
    let [Value::String(source), Value::Number(index)] = value.as_array()?.as_slice() else {
        return None;
    };
    let Some(index) = index.as_u64() else {
        return Some((
            "invalid_link",
            format!(
                "links to node {source:?} with output index {index}, which is not a whole number"
            ),
        ));
    };
    let Some(source_node) = graph.get(source) else {
        return Some((
            "link_to_missing_node",
            format!("links to node {source:?}, which does not exist"),
        ));
    };
    let source_class = source_node.get("class_type").and_then(Value::as_str)?;
    let outputs = catalog?.output_count(source_class)?;
    if usize::try_from(index).is_ok_and(|index| index < outputs) {
        return None;
    }
    let message = format!(
        "links to output {index} of node {source:?} ({source_class}), which has {outputs} outputs"
    );
    Some(("link_to_missing_output", message))
}

/// The `invalid_workflow` answer for `problems`: the first one as the message, all of them
/// in `details.node_errors`.
pub fn invalid_workflow(problems: &[NodeProblem]) -> ApiError {
    let mut node_errors = Map::new();
    for problem in problems {
        let entry = node_errors
            .entry(problem.node_id.clone())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = entry {
            list.push(json!({"field": problem.field, "reason": problem.reason, "message": problem.message}));
        }
    }
    let mut message = problems
        .first()
        .map(|problem| problem.message.clone())
        .unwrap_or_default();
    if problems.len() > 1 {
        message.push_str(&more_problems(problems.len() - 1));
    }
    ApiError::invalid_workflow(message).with_details(json!({"node_errors": node_errors}))
}

/// One `core/ASSET` reference found in a node's inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct AssetReference {
    pub node_id: String,
    pub field: String,
    /// `info.id` as given; `None` when the reference has none.
    pub asset_id: Option<String>,
}

/// Every `{"__type": "core/ASSET", ...}` object anywhere in the nodes' inputs.
pub fn asset_references(graph: &Graph) -> Vec<AssetReference> {
    let mut found = Vec::new();
    for (node_id, node) in graph {
        let Some(inputs) = node.get("inputs").and_then(Value::as_object) else {
            continue;
        };
        for (field, value) in inputs {
            collect_references(value, &mut |reference: &Map<String, Value>| {
                let asset_id = reference
                    .get("info")
                    .and_then(|info| info.get("id"))
                    .and_then(Value::as_str);
                found.push(AssetReference {
                    node_id: node_id.clone(),
                    field: field.clone(),
                    asset_id: asset_id.map(str::to_owned),
                });
            });
        }
    }
    found
}

fn collect_references(value: &Value, found: &mut impl FnMut(&Map<String, Value>)) {
    match value {
        Value::Object(object)
            if object.get("__type").and_then(Value::as_str) == Some("core/ASSET") =>
        {
            found(object);
        }
        Value::Object(object) => object
            .values()
            .for_each(|value| collect_references(value, found)),
        Value::Array(items) => items
            .iter()
            .for_each(|value| collect_references(value, found)),
        _ => {}
    }
}

/// Refuses the graph when a reference names no live asset. The references stay in the
/// graph as they are: the scheduler resolves them when it dispatches.
///
/// # Errors
///
/// `422 missing_asset` naming every bad reference; a store fault.
pub async fn check_assets(
    store: &dyn Store,
    caller: &Caller,
    graph: &Graph,
) -> Result<(), ApiError> {
    let now = OffsetDateTime::now_utc();
    let mut missing = Vec::new();
    for reference in asset_references(graph) {
        let asset = usable_asset(store, caller, reference.asset_id.as_deref(), now).await?;
        if asset.is_none() {
            missing.push(reference);
        }
    }
    let Some(first) = missing.first() else {
        return Ok(());
    };

    let describe = |reference: &AssetReference| match &reference.asset_id {
        Some(id) => format!(
            "node {:?} input {:?}: asset {id:?} does not exist",
            reference.node_id, reference.field
        ),
        None => format!(
            "node {:?} input {:?}: the core/ASSET reference has no \"info.id\"",
            reference.node_id, reference.field
        ),
    };
    let mut message = describe(first);
    if missing.len() > 1 {
        message.push_str(&format!(" (and {} more missing assets)", missing.len() - 1));
    }
    let details: Vec<Value> = missing
        .iter()
        .map(|reference| json!({"node_id": reference.node_id, "field": reference.field, "asset_id": reference.asset_id}))
        .collect();
    Err(ApiError::new(
        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        "missing_asset",
        message,
    )
    .with_details(json!({"missing_assets": details})))
}

/// The asset `id` names, when it exists, has not expired and `caller` may use it: another
/// key's asset is as missing as one that never was.
///
/// # Errors
///
/// Store faults.
pub async fn usable_asset(
    store: &dyn Store,
    caller: &Caller,
    id: Option<&str>,
    now: OffsetDateTime,
) -> Result<Option<Asset>, ApiError> {
    let Some(id) = id.and_then(|id| id.parse::<AssetId>().ok()) else {
        return Ok(None);
    };
    let asset = store.asset(id).await?;
    Ok(asset.filter(|asset| {
        asset.expires_at.is_none_or(|expires_at| expires_at > now)
            && caller.may_see(asset.owner.as_deref())
    }))
}

/// What a message naming one problem adds for the `more` others.
pub(crate) fn more_problems(more: usize) -> String {
    let noun = if more == 1 { "problem" } else { "problems" };
    format!(" (and {more} more {noun})")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(value: Value) -> Graph {
        value.as_object().cloned().unwrap()
    }

    fn reasons(problems: &[NodeProblem]) -> Vec<(&str, &str, &str)> {
        problems
            .iter()
            .map(|problem| {
                (
                    problem.node_id.as_str(),
                    problem.field.as_str(),
                    problem.reason,
                )
            })
            .collect()
    }

    #[test]
    fn a_sound_graph_has_no_problems() {
        let graph = graph(json!({
            "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "size": [512, 512]}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}},
        }));
        assert!(problems(&graph, None).is_empty());
    }

    #[test]
    fn each_malformed_node_is_named_with_its_field() {
        let graph = graph(json!({
            "1": 7,
            "2": {"inputs": {}},
            "3": {"class_type": "SaveImage"},
            "4": {"class_type": "SaveImage", "inputs": {"images": ["99", 0]}},
        }));
        let found = problems(&graph, None);
        assert_eq!(
            reasons(&found),
            vec![
                ("1", "", "not_an_object"),
                ("2", "class_type", "missing_class_type"),
                ("3", "inputs", "missing_inputs"),
                ("4", "images", "link_to_missing_node"),
            ]
        );
        assert_eq!(
            found[3].message,
            "node \"4\" (SaveImage): input \"images\" links to node \"99\", which does not exist"
        );
    }

    #[test]
    fn classes_and_outputs_are_checked_against_the_catalogue() {
        let catalog: NodeCatalog = [("EmptyImage".to_owned(), 1), ("SaveImage".to_owned(), 0)]
            .into_iter()
            .collect();
        let graph = graph(json!({
            "1": {"class_type": "EmptyImage", "inputs": {}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 3]}},
            "3": {"class_type": "Imaginary", "inputs": {}},
        }));
        let found = problems(&graph, Some(&catalog));
        assert_eq!(
            reasons(&found),
            vec![
                ("2", "images", "link_to_missing_output"),
                ("3", "class_type", "unknown_class_type"),
            ]
        );
        assert_eq!(
            found[1].message,
            "node \"3\": class_type \"Imaginary\" is not known to any backend"
        );
        assert!(
            problems(&graph, None).is_empty(),
            "without a catalogue only shape is checked"
        );
    }

    #[test]
    fn the_first_problem_is_the_message_and_all_are_details() {
        let graph = graph(json!({"1": 7, "2": 8}));
        let error = invalid_workflow(&problems(&graph, None));
        assert_eq!(error.code, "invalid_workflow");
        assert!(
            error.message.ends_with("(and 1 more problem)"),
            "{}",
            error.message
        );
        let details = error.details.unwrap();
        assert_eq!(details["node_errors"]["2"][0]["reason"], "not_an_object");
    }

    #[test]
    fn ui_exports_are_recognised() {
        let ui = graph(json!({"nodes": [], "links": [], "version": 0.4}));
        assert_eq!(
            refuse_ui_format(&ui).unwrap_err().code,
            "workflow_format_ui"
        );
        let api = graph(json!({"nodes": {"class_type": "X", "inputs": {}}}));
        assert!(refuse_ui_format(&api).is_ok());
    }

    #[test]
    fn asset_references_are_found_at_any_depth() {
        let graph = graph(json!({
            "5": {"class_type": "LoadImage", "inputs": {
                "image": {"__type": "core/ASSET", "info": {"id": "a"}},
                "list": [{"deep": {"__type": "core/ASSET", "info": {}}}],
            }},
        }));
        let found = asset_references(&graph);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].asset_id.as_deref(), Some("a"));
        assert_eq!(found[1].field, "list");
        assert_eq!(found[1].asset_id, None);
    }
}

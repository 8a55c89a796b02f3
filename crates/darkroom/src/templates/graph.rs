//! The API-format graph as templates read it: nodes keyed by id, each with a `class_type`,
//! `inputs` (literal values, or links `[source_id, output_index]`) and an optional
//! `_meta.title`; and walking a link back to the node that really produces its value.
//!
//! Read-only helpers; nothing here changes a graph.

use std::collections::HashSet;

use serde_json::{Map, Value};

/// An API-format graph: node id to node.
pub type Graph = Map<String, Value>;

/// Where a link comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub node_id: String,
    pub output: u64,
}

/// The link an input value holds, if it is one.
pub fn as_link(value: &Value) -> Option<Source> {
    let [Value::String(node_id), Value::Number(output)] = value.as_array()?.as_slice() else {
        return None;
    };
    Some(Source {
        node_id: node_id.clone(),
        output: output.as_u64()?,
    })
}

pub fn class_type<'a>(graph: &'a Graph, node_id: &str) -> Option<&'a str> {
    graph.get(node_id)?.get("class_type")?.as_str()
}

/// The title a person gave the node in the editor, if any.
pub fn title<'a>(graph: &'a Graph, node_id: &str) -> Option<&'a str> {
    graph.get(node_id)?.pointer("/_meta/title")?.as_str()
}

pub fn inputs<'a>(graph: &'a Graph, node_id: &str) -> Option<&'a Map<String, Value>> {
    graph.get(node_id)?.get("inputs")?.as_object()
}

/// The input's value when it is a literal (not a link).
pub fn literal<'a>(graph: &'a Graph, node_id: &str, input: &str) -> Option<&'a Value> {
    inputs(graph, node_id)?
        .get(input)
        .filter(|value| as_link(value).is_none())
}

/// The link feeding `input`, if the input is linked.
pub fn link(graph: &Graph, node_id: &str, input: &str) -> Option<Source> {
    as_link(inputs(graph, node_id)?.get(input)?)
}

/// Names of the node's literal inputs, in the graph's order.
pub fn literal_names<'a>(graph: &'a Graph, node_id: &str) -> Vec<&'a str> {
    inputs(graph, node_id)
        .into_iter()
        .flatten()
        .filter(|(_, value)| as_link(value).is_none())
        .map(|(name, _)| name.as_str())
        .collect()
}

/// Node ids in a stable, human order: numeric ids by number, then the rest by text.
pub fn ordered_ids(graph: &Graph) -> Vec<&str> {
    let mut ids: Vec<&str> = graph.keys().map(String::as_str).collect();
    ids.sort_by_key(|id| (id.parse::<u64>().unwrap_or(u64::MAX), *id));
    ids
}

/// Follows the link into `node_id.input` back past pass-through nodes, to the node that
/// produces the value. `None` when the input is not linked or the link points nowhere.
pub fn trace(graph: &Graph, node_id: &str, input: &str) -> Option<Source> {
    let mut source = link(graph, node_id, input)?;
    let mut seen = HashSet::new();
    // A cycle of reroutes is a broken graph; `seen` makes it end instead of spin.
    while is_passthrough(graph, &source.node_id) && seen.insert(source.node_id.clone()) {
        let only_input = inputs(graph, &source.node_id)?.values().next()?;
        source = as_link(only_input)?;
    }
    graph.contains_key(&source.node_id).then_some(source)
}

/// A reroute-like node: "reroute" in its class name and a link as its only input. ComfyUI's
/// own `Reroute` lives only in the editor, but node packs ship backend reroutes named so
/// (`Reroute (rgthree)`, `ReroutePrimitive|pysssss`). Nodes that merely have one linked
/// input (`ConditioningZeroOut`, `ImageInvert`) change their value and are not passed.
fn is_passthrough(graph: &Graph, node_id: &str) -> bool {
    let Some(class) = class_type(graph, node_id) else {
        return false;
    };
    let reroute_like = class.to_ascii_lowercase().contains("reroute");
    let Some(inputs) = inputs(graph, node_id) else {
        return false;
    };
    reroute_like && inputs.len() == 1 && inputs.values().all(|value| as_link(value).is_some())
}

/// Every node upstream of `node_id` (through any input), not including itself.
pub fn upstream(graph: &Graph, node_id: &str) -> HashSet<String> {
    let mut seen = HashSet::new();
    let mut pending = vec![node_id.to_owned()];
    while let Some(current) = pending.pop() {
        for value in inputs(graph, &current).into_iter().flat_map(Map::values) {
            if let Some(source) = as_link(value)
                && graph.contains_key(&source.node_id)
                && seen.insert(source.node_id.clone())
            {
                pending.push(source.node_id);
            }
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn graph(value: Value) -> Graph {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn tracing_skips_reroutes_and_stops_at_the_producer() {
        let graph = graph(json!({
            "1": {"class_type": "CLIPTextEncode", "inputs": {"text": "hi", "clip": ["9", 1]}},
            "2": {"class_type": "Reroute", "inputs": {"": ["1", 0]}},
            "3": {"class_type": "Reroute (rgthree)", "inputs": {"value": ["2", 0]}},
            "4": {"class_type": "KSampler", "inputs": {"positive": ["3", 0], "seed": 5}},
        }));
        assert_eq!(
            trace(&graph, "4", "positive"),
            Some(Source {
                node_id: "1".into(),
                output: 0
            })
        );
        assert_eq!(trace(&graph, "4", "seed"), None);
        assert_eq!(literal(&graph, "4", "seed"), Some(&json!(5)));
    }

    #[test]
    fn a_cycle_of_reroutes_ends() {
        let graph = graph(json!({
            "1": {"class_type": "Reroute", "inputs": {"x": ["2", 0]}},
            "2": {"class_type": "Reroute", "inputs": {"x": ["1", 0]}},
            "3": {"class_type": "KSampler", "inputs": {"positive": ["1", 0]}},
        }));
        assert!(trace(&graph, "3", "positive").is_some());
    }

    #[test]
    fn ids_sort_as_numbers() {
        let graph = graph(json!({"10": {}, "9": {}, "2:1": {}, "1": {}}));
        assert_eq!(ordered_ids(&graph), vec!["1", "9", "10", "2:1"]);
    }
}

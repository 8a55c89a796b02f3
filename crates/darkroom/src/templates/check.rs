//! Checking a filled-in graph against a backend's `/object_info` before the job is
//! accepted, the way ComfyUI will check it at dispatch: known classes, required inputs,
//! values of the right kind within bounds and choices, and links to outputs of the right
//! type. Like ComfyUI, only nodes that feed an output node are checked.
//!
//! Each violation names its node and input; the caller turns those it can into the
//! parameter bound there.

use std::collections::BTreeSet;

use comfy::server_info::ObjectInfo;
use serde_json::Value;

use super::graph::{self, Graph};
use super::spec::{self, InputSpec, ValueKind, out_of_bounds};

/// One input (or node) the backend would refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub node_id: String,
    /// `None` for a problem of the whole node.
    pub input: Option<String>,
    /// Reads after the input's name: "must be one of ...", "is required".
    pub problem: String,
}

/// Everything in `graph` the backend described by `info` would refuse.
pub fn violations(graph: &Graph, info: &ObjectInfo) -> Vec<Violation> {
    let mut found = Vec::new();
    let outputs: Vec<&str> = graph::ordered_ids(graph)
        .into_iter()
        .filter(|id| {
            let class = graph::class_type(graph, id);
            class
                .and_then(|class| info.get(class))
                .is_some_and(|schema| schema.output_node)
        })
        .collect();
    let mut in_scope: BTreeSet<String> = BTreeSet::new();
    for output in &outputs {
        in_scope.insert((*output).to_owned());
        in_scope.extend(graph::upstream(graph, output));
    }
    // Unknown classes are reported wherever they are: no output can be seen through them.
    for node_id in graph::ordered_ids(graph) {
        let class = graph::class_type(graph, node_id).unwrap_or_default();
        if !info.contains_key(class) {
            found.push(node_problem(
                node_id,
                format!("has class {class:?}, which the backend does not know"),
            ));
        } else if in_scope.contains(node_id) {
            check_node(graph, info, node_id, class, &mut found);
        }
    }
    if outputs.is_empty() && found.is_empty() {
        found.push(node_problem(
            "",
            "the graph has no output node, so the backend would run nothing".into(),
        ));
    }
    found
}

fn node_problem(node_id: &str, problem: String) -> Violation {
    Violation {
        node_id: node_id.to_owned(),
        input: None,
        problem,
    }
}

fn check_node(
    graph: &Graph,
    info: &ObjectInfo,
    node_id: &str,
    class: &str,
    found: &mut Vec<Violation>,
) {
    let inputs = graph::inputs(graph, node_id);
    for (name, spec) in spec::class_inputs(info, class).unwrap_or_default() {
        let problem = match inputs.and_then(|inputs| inputs.get(&name)) {
            None if spec.required => Some("is required and missing".to_owned()),
            None => None,
            Some(value) => match graph::as_link(value) {
                Some(source) => link_problem(graph, info, &source, &spec),
                None => value_problem(value, &spec),
            },
        };
        if let Some(problem) = problem {
            found.push(Violation {
                node_id: node_id.to_owned(),
                input: Some(name),
                problem,
            });
        }
    }
}

fn link_problem(
    graph: &Graph,
    info: &ObjectInfo,
    source: &graph::Source,
    spec: &InputSpec,
) -> Option<String> {
    let Some(class) = graph::class_type(graph, &source.node_id) else {
        return Some(format!(
            "links to node {:?}, which does not exist",
            source.node_id
        ));
    };
    let outputs = &info.get(class)?.output;
    let index = usize::try_from(source.output).unwrap_or(usize::MAX);
    let Some(output_type) = outputs.get(index) else {
        return Some(format!(
            "links to output {} of node {} ({class}), which has {} outputs",
            source.output,
            source.node_id,
            outputs.len()
        ));
    };
    let (ValueKind::Link(wanted), Some(given)) = (&spec.kind, output_type.as_str()) else {
        return None;
    };
    (!types_match(given, wanted)).then(|| {
        format!(
            "takes {wanted} but is linked to a {given} output of node {} ({class})",
            source.node_id
        )
    })
}

/// ComfyUI's rule: equal names, a `*` on either side, or one name among comma-separated
/// alternatives.
fn types_match(given: &str, wanted: &str) -> bool {
    let names = |types: &str| {
        types
            .split(',')
            .map(str::trim)
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let (given, wanted) = (names(given), names(wanted));
    given
        .iter()
        .any(|name| name == "*" || wanted.iter().any(|want| want == "*" || want == name))
}

fn value_problem(value: &Value, spec: &InputSpec) -> Option<String> {
    let fits = match &spec.kind {
        ValueKind::Int => value.as_number().and_then(spec::as_integer).is_some(),
        ValueKind::Float => value.is_number(),
        ValueKind::String => !value.is_object() && !value.is_array() && !value.is_null(),
        ValueKind::Boolean => value.is_boolean(),
        ValueKind::Combo if is_asset(value) => return None,
        ValueKind::Combo if !spec.choices.contains(value) => {
            return Some(format!(
                "must be one of {} on the backend, got {value}",
                list(&spec.choices)
            ));
        }
        ValueKind::Combo => true,
        ValueKind::Link(wanted) => {
            return Some(format!(
                "must be linked to a {wanted} output, got the value {value}"
            ));
        }
    };
    if !fits {
        return Some(format!("must be {}, got {value}", kind_name(&spec.kind)));
    }
    let number = value.as_number()?;
    let outside = out_of_bounds(number, spec.min.as_ref(), spec.max.as_ref());
    if !outside {
        return None;
    }
    let min = spec
        .min
        .as_ref()
        .map_or("any".to_owned(), ToString::to_string);
    let max = spec
        .max
        .as_ref()
        .map_or("any".to_owned(), ToString::to_string);
    Some(format!(
        "must be between {min} and {max} on the backend, got {value}"
    ))
}

/// An uploaded-asset reference: the scheduler turns it into a file name at dispatch.
fn is_asset(value: &Value) -> bool {
    value.get("__type").and_then(Value::as_str) == Some("core/ASSET")
}

fn kind_name(kind: &ValueKind) -> &'static str {
    match kind {
        ValueKind::Int => "an integer",
        ValueKind::Float => "a number",
        ValueKind::String => "text",
        ValueKind::Boolean => "true or false",
        ValueKind::Combo | ValueKind::Link(_) => "a choice",
    }
}

fn list(choices: &[Value]) -> String {
    if choices.is_empty() {
        return "its choices (it offers none)".to_owned();
    }
    let shown: Vec<String> = choices.iter().take(12).map(Value::to_string).collect();
    match choices.len().saturating_sub(12) {
        0 => shown.join(", "),
        more => format!("{} (and {more} more)", shown.join(", ")),
    }
}

//! Explicit bindings: `NODE.INPUT` targets from a manifest, nodes titled with a parameter's
//! name, and the check that every binding lands on an existing node input whose kind of
//! value suits the parameter's type.
//!
//! With a backend's `/object_info` the input's kind is exact; without it, the value the
//! graph holds there stands in (a string, a whole number, a fraction, a boolean).

use comfy::server_info::ObjectInfo;
use serde_json::Value;

use super::discover::IMAGE_LOADERS;
use super::graph::{self, Graph};
use super::manifest::split_target;
use super::params::{Binding, ParameterType};
use super::spec::{self, InputSpec, ValueKind};

/// Inputs that hold a seed, whatever their node.
const SEED_INPUTS: &[&str] = &["seed", "noise_seed"];

/// Resolves `NODE.INPUT`, NODE being a node id or the title of exactly one node.
///
/// # Errors
///
/// Why the target names no single node input, as the end of a sentence about it.
pub fn target(graph: &Graph, target: &str) -> Result<Binding, String> {
    let (node, input) = split_target(target).ok_or_else(|| {
        "must be NODE.INPUT: a node id or title, a dot, and an input name".to_owned()
    })?;
    let node_id = if graph.contains_key(node) {
        node.to_owned()
    } else {
        let titled: Vec<&str> = graph::ordered_ids(graph)
            .into_iter()
            .filter(|id| graph::title(graph, id) == Some(node))
            .collect();
        match titled.as_slice() {
            [only] => (*only).to_owned(),
            [] => {
                return Err(format!(
                    "names node {node:?}, which no node id or title matches"
                ));
            }
            many => {
                return Err(format!(
                    "names title {node:?}, which {} nodes have ({}); use a node id",
                    many.len(),
                    many.join(", ")
                ));
            }
        }
    };
    Ok(Binding {
        node_id,
        input: input.to_owned(),
    })
}

/// The backend's spec of the bound input, when it is known.
pub fn input_spec(
    graph: &Graph,
    binding: &Binding,
    info: Option<&ObjectInfo>,
) -> Option<InputSpec> {
    let class = graph::class_type(graph, &binding.node_id)?;
    spec::input_spec(info?, class, &binding.input)
}

/// Checks that `binding` lands on an existing input that takes a value `kind` can give.
///
/// # Errors
///
/// What is wrong, as the end of a sentence about the binding.
pub fn check(
    graph: &Graph,
    binding: &Binding,
    kind: ParameterType,
    info: Option<&ObjectInfo>,
) -> Result<(), String> {
    lands(graph, binding, info)?;
    let (node_id, input) = (&binding.node_id, &binding.input);
    let class = graph::class_type(graph, node_id).unwrap_or_default();
    let literal = graph::literal(graph, node_id, input);
    match (input_spec(graph, binding, info), literal) {
        (Some(spec), _) if !spec_fits(kind, &spec) => Err(format!(
            "lands on input {input:?} of node {node_id} ({class}), which takes {}; a {} parameter cannot fill it",
            describe_kind(&spec.kind),
            kind.as_str()
        )),
        (Some(_), _) => Ok(()),
        (None, Some(value)) if !literal_fits(kind, value) => Err(format!(
            "lands on input {input:?} of node {node_id} ({class}), which holds {value}; a {} parameter cannot fill it",
            kind.as_str()
        )),
        (None, _) => Ok(()),
    }
}

/// Checks that `binding` names an existing input that holds a value, not a link.
///
/// # Errors
///
/// What is wrong, as the end of a sentence about the binding.
pub fn lands(graph: &Graph, binding: &Binding, info: Option<&ObjectInfo>) -> Result<(), String> {
    let (node_id, input) = (&binding.node_id, &binding.input);
    let Some(class) = graph::class_type(graph, node_id) else {
        return Err(format!("names node {node_id:?}, which does not exist"));
    };
    if let Some(source) = graph::link(graph, node_id, input) {
        return Err(format!(
            "lands on input {input:?} of node {node_id} ({class}), which is fed by a link from node {}; only values can be bound",
            source.node_id
        ));
    }
    let declared = input_spec(graph, binding, info)
        .is_some_and(|spec| !matches!(spec.kind, ValueKind::Link(_)));
    if graph::literal(graph, node_id, input).is_none() && !declared {
        return Err(format!(
            "names input {input:?}, which node {node_id} ({class}) does not have"
        ));
    }
    Ok(())
}

fn spec_fits(kind: ParameterType, spec: &InputSpec) -> bool {
    use ParameterType as P;
    match &spec.kind {
        ValueKind::Int => matches!(kind, P::Integer | P::Seed),
        ValueKind::Float => matches!(kind, P::Number | P::Integer),
        ValueKind::String => matches!(kind, P::Text | P::Choice),
        ValueKind::Boolean => kind == P::Boolean,
        ValueKind::Combo if spec.image_upload => matches!(kind, P::Image | P::Choice),
        ValueKind::Combo => kind == P::Choice,
        ValueKind::Link(_) => false,
    }
}

/// Without a spec, the graph's value decides: a whole number may be an INT or a FLOAT.
fn literal_fits(kind: ParameterType, value: &Value) -> bool {
    use ParameterType as P;
    match value {
        Value::String(_) => matches!(kind, P::Text | P::Choice | P::Image),
        Value::Number(number) if number.is_f64() => kind == P::Number,
        Value::Number(_) => matches!(kind, P::Integer | P::Seed | P::Number),
        Value::Bool(_) => kind == P::Boolean,
        _ => false,
    }
}

fn describe_kind(kind: &ValueKind) -> String {
    match kind {
        ValueKind::Int => "an integer (INT)".into(),
        ValueKind::Float => "a number (FLOAT)".into(),
        ValueKind::String => "text (STRING)".into(),
        ValueKind::Boolean => "a boolean (BOOLEAN)".into(),
        ValueKind::Combo => "one of a list (COMBO)".into(),
        ValueKind::Link(link_type) => format!("only links of type {link_type}"),
    }
}

/// The parameter type an input suggests, for a parameter no one typed.
pub fn infer(graph: &Graph, binding: &Binding, info: Option<&ObjectInfo>) -> Option<ParameterType> {
    let seed = SEED_INPUTS.contains(&binding.input.as_str());
    if let Some(spec) = input_spec(graph, binding, info) {
        return match spec.kind {
            ValueKind::Int if seed => Some(ParameterType::Seed),
            ValueKind::Int => Some(ParameterType::Integer),
            ValueKind::Float => Some(ParameterType::Number),
            ValueKind::String => Some(ParameterType::Text),
            ValueKind::Boolean => Some(ParameterType::Boolean),
            ValueKind::Combo if spec.image_upload => Some(ParameterType::Image),
            ValueKind::Combo => Some(ParameterType::Choice),
            ValueKind::Link(_) => None,
        };
    }
    let class = graph::class_type(graph, &binding.node_id).unwrap_or_default();
    let loader = IMAGE_LOADERS.contains(&class) && binding.input == "image";
    match graph::literal(graph, &binding.node_id, &binding.input)? {
        Value::String(_) if loader => Some(ParameterType::Image),
        Value::String(_) => Some(ParameterType::Text),
        Value::Number(number) if number.is_f64() => Some(ParameterType::Number),
        Value::Number(_) if seed => Some(ParameterType::Seed),
        Value::Number(_) => Some(ParameterType::Integer),
        Value::Bool(_) => Some(ParameterType::Boolean),
        _ => None,
    }
}

/// A title that binds: a lowercase identifier such as `prompt` or `style_strength`. The
/// editor's own titles ("KSampler", "Load Image") never look like this, so a title of
/// this shape is a person's decision.
pub fn parameter_title(title: &str) -> bool {
    let mut chars = title.chars();
    chars.next().is_some_and(|first| first.is_ascii_lowercase())
        && title.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The inputs a node titled `name` binds: the input of that name, the text of a text
/// encoder, or the node's one value.
///
/// # Errors
///
/// When the node has several values and none is named `name`.
pub fn titled_inputs(graph: &Graph, node_id: &str, name: &str) -> Result<Vec<Binding>, String> {
    let binding = |input: &str| Binding {
        node_id: node_id.to_owned(),
        input: input.to_owned(),
    };
    let values = graph::literal_names(graph, node_id);
    if values.contains(&name) {
        return Ok(vec![binding(name)]);
    }
    let texts: Vec<&str> = values
        .iter()
        .copied()
        .filter(|input| graph::literal(graph, node_id, input).is_some_and(Value::is_string))
        .collect();
    let encoder = graph::link(graph, node_id, "clip").is_some();
    match (values.as_slice(), encoder) {
        ([only], _) => Ok(vec![binding(only)]),
        (_, true) if !texts.is_empty() => Ok(texts.into_iter().map(binding).collect()),
        ([], _) => Err("has no value to bind".to_owned()),
        (many, _) => Err(format!(
            "has {} values ({}); name one in the manifest with bind = \"{node_id}.INPUT\"",
            many.len(),
            many.join(", ")
        )),
    }
}

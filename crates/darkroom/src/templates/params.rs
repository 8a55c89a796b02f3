//! A template's parameters: their types, where each is bound in the graph, and how one is
//! described once a backend's `/object_info` fills in bounds, choices and defaults.

use std::fmt;

use comfy::server_info::ObjectInfo;
use serde::{Deserialize, Serialize};
use serde_json::{Number, Value};

use super::graph::{self, Graph};
use super::spec::{self, ValueKind};

/// The largest seed a random draw gives: 2^53 - 1, the largest integer a JavaScript client
/// reads back exactly, so the recorded seed reproduces the picture wherever it travels.
pub const RANDOM_SEED_MAX: u64 = (1 << 53) - 1;

/// What a parameter takes, as the schema publishes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParameterType {
    Text,
    Integer,
    Number,
    Boolean,
    Choice,
    /// An uploaded asset id, handed to the backend as a file at dispatch.
    Image,
    /// An integer, or `"random"` for a fresh one.
    Seed,
}

impl ParameterType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Integer => "integer",
            Self::Number => "number",
            Self::Boolean => "boolean",
            Self::Choice => "choice",
            Self::Image => "image",
            Self::Seed => "seed",
        }
    }
}

/// One node input a parameter's value is written into.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Binding {
    pub node_id: String,
    pub input: String,
}

impl fmt::Display for Binding {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}.{}", self.node_id, self.input)
    }
}

/// How a parameter came to exist, for `template show`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Found by tracing the graph; the text says which rule.
    Discovered(String),
    /// A node titled with the parameter's name.
    Title,
    /// Bound by the manifest.
    Manifest,
}

/// A parameter as the template declares it, before a backend is consulted.
#[derive(Debug, Clone, PartialEq)]
pub struct Parameter {
    pub name: String,
    pub kind: ParameterType,
    pub bindings: Vec<Binding>,
    pub origin: Origin,
    pub description: Option<String>,
    /// The manifest's default. A list for a choice means "the first of these the backend
    /// offers".
    pub default: Option<Value>,
    pub min: Option<Number>,
    pub max: Option<Number>,
    pub choices: Option<Vec<Value>>,
}

/// A parameter fully described: what the schema publishes and injection enforces.
#[derive(Debug, Clone, PartialEq)]
pub struct ParameterSpec {
    pub name: String,
    pub kind: ParameterType,
    pub bindings: Vec<Binding>,
    pub description: Option<String>,
    /// `None` makes the parameter required.
    pub default: Option<Value>,
    pub min: Option<Number>,
    pub max: Option<Number>,
    pub choices: Option<Vec<Value>>,
    pub multiline: bool,
}

impl Parameter {
    /// The parameter with bounds, choices and default from the manifest, then the graph's
    /// value, then `info` when a backend answered.
    pub fn resolve(&self, graph: &Graph, info: Option<&ObjectInfo>) -> ParameterSpec {
        let first = self.bindings.first();
        let input_spec = first.and_then(|binding| {
            let class = graph::class_type(graph, &binding.node_id)?;
            spec::input_spec(info?, class, &binding.input)
        });
        let input_spec = input_spec.as_ref();

        let mut min = self.min.clone().or_else(|| input_spec?.min.clone());
        let mut max = self.max.clone().or_else(|| input_spec?.max.clone());
        if self.kind == ParameterType::Seed {
            min = min.or_else(|| Some(Number::from(0)));
            max = max.or_else(|| Some(Number::from(u64::MAX)));
        }
        let offered = input_spec
            .filter(|spec| spec.kind == ValueKind::Combo && self.kind == ParameterType::Choice)
            .map(|spec| spec.choices.clone());
        let choices = self.choices.clone().or(offered);
        let graph_value = first
            .and_then(|binding| graph::literal(graph, &binding.node_id, &binding.input))
            .cloned();
        let default = match self.kind {
            ParameterType::Image => None,
            _ => self
                .declared_default(choices.as_deref())
                .or(graph_value)
                .or_else(|| input_spec?.default.clone()),
        };

        ParameterSpec {
            name: self.name.clone(),
            kind: self.kind,
            bindings: self.bindings.clone(),
            description: self
                .description
                .clone()
                .or_else(|| input_spec?.tooltip.clone()),
            default,
            min,
            max,
            choices,
            multiline: input_spec.is_some_and(|spec| spec.multiline),
        }
    }

    /// The manifest's default, with a candidate list narrowed to what is offered.
    fn declared_default(&self, offered: Option<&[Value]>) -> Option<Value> {
        match (&self.default, self.kind) {
            (Some(Value::Array(candidates)), ParameterType::Choice) => {
                let available =
                    |candidate: &&Value| offered.is_none_or(|list| list.contains(candidate));
                candidates
                    .iter()
                    .find(available)
                    .or(candidates.first())
                    .cloned()
            }
            (default, _) => default.clone(),
        }
    }
}

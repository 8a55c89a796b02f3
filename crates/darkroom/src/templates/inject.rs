//! Filling a template in: each value checked against its parameter's type, bounds and
//! choices, then written into the parsed graph at every binding. Nothing is spliced into
//! text, and a value is either injected or refused with an error naming its parameter.

use rand::Rng;
use serde_json::{Map, Number, Value, json};

use super::error::ParameterError;
use super::graph::Graph;
use super::params::{ParameterSpec, ParameterType, RANDOM_SEED_MAX};
use super::spec::{as_integer, out_of_bounds};
use crate::jobs::model::AssetId;

/// How many choices an error message lists before pointing at the schema.
const CHOICES_SHOWN: usize = 12;
/// How much of a refused value an error message quotes.
const QUOTED_CHARS: usize = 80;

/// A filled-in template.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// The graph to submit.
    pub graph: Graph,
    /// Every parameter's value as used, defaults and drawn seeds included: recorded with
    /// the job so the run can be repeated.
    pub parameters: Map<String, Value>,
    /// Image parameters and the assets they name, for the caller to check exist.
    pub assets: Vec<(String, AssetId)>,
}

/// Injects `given` into a copy of `graph`. A `null` value counts as not given.
///
/// # Errors
///
/// Every [`ParameterError`] found, unknown names first.
pub fn instantiate(
    graph: &Graph,
    specs: &[ParameterSpec],
    given: &Map<String, Value>,
) -> Result<Instance, Vec<ParameterError>> {
    let mut errors: Vec<ParameterError> = unknown(specs, given);
    let mut instance = Instance {
        graph: graph.clone(),
        parameters: Map::new(),
        assets: Vec::new(),
    };
    for spec in specs {
        let (value, from_default) = match given.get(&spec.name).filter(|value| !value.is_null()) {
            Some(value) => (value, false),
            None => match &spec.default {
                Some(default) => (default, true),
                None => {
                    let expected = describe(spec);
                    errors.push(ParameterError::Missing {
                        parameter: spec.name.clone(),
                        expected,
                    });
                    continue;
                }
            },
        };
        match check(spec, value) {
            Ok((injected, recorded)) => {
                if let (ParameterType::Image, Some(id)) =
                    (spec.kind, recorded.as_str().and_then(|id| id.parse().ok()))
                {
                    instance.assets.push((spec.name.clone(), id));
                }
                set(&mut instance.graph, spec, &injected);
                instance.parameters.insert(spec.name.clone(), recorded);
            }
            Err(error) if from_default => errors.push(as_default(error)),
            Err(error) => errors.push(error),
        }
    }
    if errors.is_empty() {
        Ok(instance)
    } else {
        Err(errors)
    }
}

fn unknown(specs: &[ParameterSpec], given: &Map<String, Value>) -> Vec<ParameterError> {
    let names: Vec<String> = specs
        .iter()
        .map(|spec| format!("{:?}", spec.name))
        .collect();
    let known = if names.is_empty() {
        "no parameters".to_owned()
    } else {
        names.join(", ")
    };
    given
        .keys()
        .filter(|name| !specs.iter().any(|spec| &spec.name == *name))
        .map(|name| ParameterError::Unknown {
            parameter: name.clone(),
            known: known.clone(),
        })
        .collect()
}

fn set(graph: &mut Graph, spec: &ParameterSpec, value: &Value) {
    for binding in &spec.bindings {
        let inputs = graph
            .get_mut(&binding.node_id)
            .and_then(|node| node.get_mut("inputs"))
            .and_then(Value::as_object_mut);
        // Bindings were checked when the template loaded; a node cannot be missing here.
        if let Some(inputs) = inputs {
            inputs.insert(binding.input.clone(), value.clone());
        }
    }
}

/// A default the backend does not accept is the template's fault, but it still blocks
/// the job: the message says the value was the default, not the client's.
fn as_default(error: ParameterError) -> ParameterError {
    match error {
        ParameterError::WrongType {
            parameter,
            expected,
            got,
        } => ParameterError::WrongType {
            parameter,
            expected,
            got: format!("{got} (the template's default)"),
        },
        ParameterError::OutOfBounds {
            parameter,
            expected,
            got,
        } => ParameterError::OutOfBounds {
            parameter,
            expected,
            got: format!("{got} (the template's default)"),
        },
        ParameterError::NotAChoice {
            parameter,
            expected,
            got,
        } => ParameterError::NotAChoice {
            parameter,
            expected,
            got: format!("{got} (the template's default)"),
        },
        other => other,
    }
}

/// The value to write into the graph and the value to record, or why `value` is refused.
///
/// # Errors
///
/// A [`ParameterError`] naming the parameter and what it may be.
pub fn check(spec: &ParameterSpec, value: &Value) -> Result<(Value, Value), ParameterError> {
    let wrong_type = || ParameterError::WrongType {
        parameter: spec.name.clone(),
        expected: describe(spec),
        got: quote(value),
    };
    let checked = match (spec.kind, value) {
        (ParameterType::Seed, Value::String(text)) if text == "random" => {
            Value::from(draw_seed(spec))
        }
        (ParameterType::Seed | ParameterType::Integer, Value::Number(number)) => {
            Value::Number(whole(number).ok_or_else(wrong_type)?)
        }
        (ParameterType::Number, Value::Number(_)) => value.clone(),
        (ParameterType::Boolean, Value::Bool(_)) => value.clone(),
        (ParameterType::Text | ParameterType::Choice, Value::String(_)) => value.clone(),
        (ParameterType::Choice, Value::Number(_)) if spec.choices.is_some() => value.clone(),
        (ParameterType::Image, Value::String(id)) => {
            let id: AssetId = id.parse().map_err(|_| wrong_type())?;
            let reference = json!({"__type": "core/ASSET", "info": {"id": id.to_string()}});
            return Ok((reference, Value::String(id.to_string())));
        }
        _ => return Err(wrong_type()),
    };
    within_bounds(spec, &checked)?;
    in_choices(spec, &checked)?;
    Ok((checked.clone(), checked))
}

/// A whole number, also when written `20.0`.
fn whole(number: &Number) -> Option<Number> {
    if as_integer(number).is_some() {
        return Some(number.clone());
    }
    let float = number.as_f64()?;
    // 2^63 bounds the exactly representable i64 range.
    (float.fract() == 0.0 && float.abs() < 9.2e18).then(|| Number::from(float as i64))
}

fn draw_seed(spec: &ParameterSpec) -> u64 {
    let low = spec.min.as_ref().and_then(as_integer).unwrap_or(0).max(0);
    let high = spec
        .max
        .as_ref()
        .and_then(as_integer)
        .unwrap_or(i128::from(RANDOM_SEED_MAX));
    let low = u64::try_from(low).unwrap_or(0);
    let high = u64::try_from(high.min(i128::from(RANDOM_SEED_MAX)))
        .unwrap_or(RANDOM_SEED_MAX)
        .max(low);
    rand::rng().random_range(low..=high)
}

fn within_bounds(spec: &ParameterSpec, value: &Value) -> Result<(), ParameterError> {
    let Some(number) = value.as_number() else {
        return Ok(());
    };
    let outside = out_of_bounds(number, spec.min.as_ref(), spec.max.as_ref());
    if outside {
        return Err(ParameterError::OutOfBounds {
            parameter: spec.name.clone(),
            expected: describe(spec),
            got: quote(value),
        });
    }
    Ok(())
}

fn in_choices(spec: &ParameterSpec, value: &Value) -> Result<(), ParameterError> {
    match &spec.choices {
        Some(choices) if !choices.contains(value) => Err(ParameterError::NotAChoice {
            parameter: spec.name.clone(),
            expected: describe(spec),
            got: quote(value),
        }),
        _ => Ok(()),
    }
}

/// Everything the parameter may be, as the end of "must be ...".
pub fn describe(spec: &ParameterSpec) -> String {
    if let Some(choices) = &spec.choices {
        return describe_choices(choices);
    }
    let range = |noun: &str| match (&spec.min, &spec.max) {
        (Some(min), Some(max)) => format!("{noun} between {min} and {max}"),
        (Some(min), None) => format!("{noun} of at least {min}"),
        (None, Some(max)) => format!("{noun} of at most {max}"),
        (None, None) => noun.to_owned(),
    };
    match spec.kind {
        ParameterType::Text | ParameterType::Choice => "a string".to_owned(),
        ParameterType::Integer => range("an integer"),
        ParameterType::Number => range("a number"),
        ParameterType::Boolean => "true or false".to_owned(),
        ParameterType::Seed => format!("{}, or \"random\"", range("an integer")),
        ParameterType::Image => "the id of an uploaded asset".to_owned(),
    }
}

fn describe_choices(choices: &[Value]) -> String {
    if choices.is_empty() {
        return "one of the backend's choices, and it offers none".to_owned();
    }
    let shown: Vec<String> = choices.iter().take(CHOICES_SHOWN).map(quote).collect();
    let more = choices.len().saturating_sub(CHOICES_SHOWN);
    match more {
        0 => format!("one of {}", shown.join(", ")),
        _ => format!(
            "one of {} (and {more} more: see the template's schema)",
            shown.join(", ")
        ),
    }
}

fn quote(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= QUOTED_CHARS {
        return text;
    }
    let cut: String = text.chars().take(QUOTED_CHARS).collect();
    format!("{cut}...")
}

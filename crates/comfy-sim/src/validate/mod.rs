//! `POST /prompt` validation, following ComfyUI's `validate_prompt`.
//!
//! The outcome has the same shape and quirks as the real one: the whole
//! prompt is refused (400) only when *no* output node validates; otherwise
//! the valid outputs run and the failed ones come back in `node_errors` of a
//! 200. Values are converted in place (`"64"` becomes `64` for an INT input),
//! so the queue and history show the converted graph, as ComfyUI's do.

mod inputs;
mod values;

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::catalogue::Catalogue;
use crate::pyfmt;

/// A prompt accepted for the queue.
#[derive(Debug)]
pub(crate) struct Accepted {
    /// Output node ids to execute, in prompt order.
    pub outputs: Vec<String>,
    /// Errors of outputs that will be skipped; usually empty.
    pub node_errors: Map<String, Value>,
}

/// A prompt refused with 400: the body is `{"error", "node_errors"}`.
#[derive(Debug)]
pub(crate) struct Rejected {
    pub error: Value,
    pub node_errors: Map<String, Value>,
}

impl Rejected {
    pub fn body(&self) -> Value {
        json!({"error": self.error, "node_errors": self.node_errors})
    }

    fn prompt_level(kind: &str, message: String, details: String) -> Box<Self> {
        Box::new(Self {
            error: json!({"type": kind, "message": message, "details": details, "extra_info": {}}),
            node_errors: Map::new(),
        })
    }
}

/// What the validation of one node concluded; `errors` empty with `valid`
/// false means "an upstream node failed", which ComfyUI does not report
/// against this node.
#[derive(Debug, Clone)]
struct Verdict {
    valid: bool,
    errors: Vec<Value>,
}

/// A Python exception raised while validating, reported the way ComfyUI's
/// `except Exception` branches report it.
#[derive(Debug, Clone)]
struct PyException {
    kind: &'static str,
    message: String,
}

/// Validates `prompt` in place.
///
/// # Errors
///
/// Returns the 400 body when the prompt cannot be queued.
pub(crate) fn validate(
    prompt: &mut Map<String, Value>,
    partial_targets: Option<&Vec<Value>>,
    catalogue: &Catalogue,
    image_exists: &dyn Fn(&str) -> bool,
) -> Result<Accepted, Box<Rejected>> {
    let outputs = output_nodes(prompt, partial_targets, catalogue)?;

    let mut checker = inputs::Checker {
        catalogue,
        image_exists,
        verdicts: HashMap::new(),
        order: Vec::new(),
        visiting: Default::default(),
    };
    let mut good = Vec::new();
    let mut failed_outputs: Vec<Vec<Value>> = Vec::new();
    let mut node_errors = Map::new();
    for output in &outputs {
        let verdict = match checker.node(prompt, output) {
            Ok(verdict) => verdict,
            Err(exception) => {
                let verdict = Verdict {
                    valid: false,
                    errors: vec![exception_reason(&exception)],
                };
                checker.record(output, verdict.clone());
                verdict
            }
        };
        if verdict.valid {
            good.push(output.clone());
            continue;
        }
        failed_outputs.push(verdict.errors);
        // ComfyUI walks every verdict so far, so an upstream failure shared
        // by two outputs lists both in `dependent_outputs`.
        for node_id in &checker.order {
            let Some(node_verdict) = checker.verdicts.get(node_id) else {
                continue;
            };
            if node_verdict.valid || node_verdict.errors.is_empty() {
                continue;
            }
            let entry = node_errors.entry(node_id.clone()).or_insert_with(|| {
                json!({
                    "errors": node_verdict.errors,
                    "dependent_outputs": [],
                    "class_type": prompt[node_id]["class_type"],
                })
            });
            if let Some(dependents) = entry["dependent_outputs"].as_array_mut() {
                dependents.push(json!(output));
            }
        }
    }

    if good.is_empty() {
        let details: Vec<String> = failed_outputs
            .iter()
            .flatten()
            .map(|reason| {
                format!(
                    "{}: {}",
                    pyfmt::str(&reason["message"]),
                    pyfmt::str(&reason["details"])
                )
            })
            .collect();
        let mut rejected = Rejected::prompt_level(
            "prompt_outputs_failed_validation",
            "Prompt outputs failed validation".to_owned(),
            details.join("\n"),
        );
        rejected.node_errors = node_errors;
        return Err(rejected);
    }
    Ok(Accepted {
        outputs: good,
        node_errors,
    })
}

/// The prompt-level checks that come before any input is looked at.
fn output_nodes(
    prompt: &Map<String, Value>,
    partial_targets: Option<&Vec<Value>>,
    catalogue: &Catalogue,
) -> Result<Vec<String>, Box<Rejected>> {
    let mut outputs = Vec::new();
    for (node_id, node) in prompt {
        let Some(class_type) = node.get("class_type") else {
            return Err(Rejected::prompt_level(
                "invalid_prompt",
                "Cannot execute because a node is missing the class_type property.".to_owned(),
                format!("Node ID '#{node_id}'"),
            ));
        };
        let Some(class) = class_type.as_str().and_then(|name| catalogue.get(name)) else {
            return Err(Rejected::prompt_level(
                "invalid_prompt",
                format!(
                    "Cannot execute because node {} does not exist.",
                    pyfmt::str(class_type)
                ),
                format!("Node ID '#{node_id}'"),
            ));
        };
        let targeted = partial_targets.is_none_or(|targets| {
            targets
                .iter()
                .any(|target| target.as_str() == Some(node_id))
        });
        if class.is_output() && targeted {
            outputs.push(node_id.clone());
        }
    }
    if outputs.is_empty() {
        return Err(Rejected::prompt_level(
            "prompt_no_outputs",
            "Prompt has no outputs".to_owned(),
            String::new(),
        ));
    }
    Ok(outputs)
}

fn exception_reason(exception: &PyException) -> Value {
    json!({
        "type": "exception_during_validation",
        "message": "Exception when validating node",
        "details": exception.message,
        "extra_info": {"exception_type": exception.kind, "traceback": fake_traceback()},
    })
}

fn fake_traceback() -> Vec<&'static str> {
    vec![
        "  File \"comfy-sim/execution.py\", line 1, in validate_prompt\n    \
         m = await validate_inputs(prompt_id, prompt, o, validated)\n",
    ]
}

/// The 400 the `fail_next_validation` knob injects: a custom validation
/// failure on the first node of the graph.
pub(crate) fn injected_rejection(prompt: &Map<String, Value>, outputs: &[String]) -> Box<Rejected> {
    let mut rejected = Rejected::prompt_level(
        "prompt_outputs_failed_validation",
        "Prompt outputs failed validation".to_owned(),
        String::new(),
    );
    if let Some((node_id, node)) = prompt.iter().next() {
        let input_name = node["inputs"]
            .as_object()
            .and_then(|inputs| inputs.keys().next().cloned());
        rejected.node_errors.insert(
            node_id.clone(),
            json!({
                "errors": [{
                    "type": "custom_validation_failed",
                    "message": "Custom validation failed for node",
                    "details": "simulated validation failure",
                    "extra_info": {"input_name": input_name.unwrap_or_default()},
                }],
                "dependent_outputs": outputs,
                "class_type": node["class_type"],
            }),
        );
    }
    rejected
}

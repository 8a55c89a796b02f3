//! Validation of one node's inputs, following ComfyUI's `validate_inputs`:
//! required inputs, links (target, slot, type), widget values (in
//! `values`), and `LoadImage`'s check that the file exists.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value, json};

use super::values::constant;
use super::{PyException, Verdict};
use crate::catalogue::{Behaviour, Catalogue};
use crate::pyfmt;

pub(super) struct Checker<'a> {
    pub catalogue: &'a Catalogue,
    pub image_exists: &'a dyn Fn(&str) -> bool,
    pub verdicts: HashMap<String, Verdict>,
    /// Node ids in the order their verdicts were reached, like the Python
    /// dict ComfyUI iterates when it builds `node_errors`.
    pub order: Vec<String>,
    /// Nodes whose validation is under way: meeting one again is a cycle,
    /// which Python reports as a `RecursionError`.
    pub visiting: HashSet<String>,
}

impl Checker<'_> {
    pub fn record(&mut self, node_id: &str, verdict: Verdict) {
        if self.verdicts.insert(node_id.to_owned(), verdict).is_none() {
            self.order.push(node_id.to_owned());
        }
    }

    pub fn node(
        &mut self,
        prompt: &mut Map<String, Value>,
        node_id: &str,
    ) -> Result<Verdict, PyException> {
        if let Some(verdict) = self.verdicts.get(node_id) {
            return Ok(verdict.clone());
        }
        if !self.visiting.insert(node_id.to_owned()) {
            return Err(PyException {
                kind: "RecursionError",
                message: "maximum recursion depth exceeded".to_owned(),
            });
        }
        let verdict = self.check(prompt, node_id);
        self.visiting.remove(node_id);
        verdict
    }

    fn check(
        &mut self,
        prompt: &mut Map<String, Value>,
        node_id: &str,
    ) -> Result<Verdict, PyException> {
        let node = prompt
            .get(node_id)
            .ok_or_else(|| key_error(&json!(node_id)))?;
        let inputs = node
            .get("inputs")
            .and_then(Value::as_object)
            .cloned()
            .ok_or_else(|| key_error(&json!("inputs")))?;
        let class_name = node["class_type"].as_str().unwrap_or_default().to_owned();
        let Some(class) = self.catalogue.get(&class_name).cloned() else {
            return Err(key_error(&json!(class_name)));
        };

        let mut errors = Vec::new();
        let mut valid = true;
        let mut converted = Vec::new();
        for (name, group, spec) in class.inputs() {
            let config = json!([spec[0], spec.get(1).cloned().unwrap_or_else(|| json!({}))]);
            let Some(value) = inputs.get(name) else {
                if group == "required" {
                    errors.push(reason(
                        "required_input_missing",
                        "Required input is missing",
                        name,
                        json!({"input_name": name}),
                    ));
                }
                continue;
            };
            if let Value::Array(link) = value {
                match self.link(prompt, name, link, &config)? {
                    LinkCheck::Fine => {}
                    LinkCheck::UpstreamInvalid => valid = false,
                    LinkCheck::Error(error) => errors.push(error),
                }
                continue;
            }
            if class.behaviour == Behaviour::LoadImage && name == "image" {
                let file = pyfmt::str(value);
                if !(self.image_exists)(&file) {
                    errors.push(reason(
                        "custom_validation_failed",
                        "Custom validation failed for node",
                        &format!("image - Invalid image file: {file}"),
                        json!({"input_name": "image"}),
                    ));
                }
                continue;
            }
            match constant(name, value, &config) {
                Ok(value) => converted.push((name.to_owned(), value)),
                Err(error) => errors.push(error),
            }
        }

        if let Some(stored) = prompt
            .get_mut(node_id)
            .and_then(|node| node["inputs"].as_object_mut())
        {
            for (name, value) in converted {
                stored.insert(name, value);
            }
        }
        let verdict = Verdict {
            valid: valid && errors.is_empty(),
            errors,
        };
        self.record(node_id, verdict.clone());
        Ok(verdict)
    }

    fn link(
        &mut self,
        prompt: &mut Map<String, Value>,
        name: &str,
        link: &[Value],
        config: &Value,
    ) -> Result<LinkCheck, PyException> {
        if link.len() != 2 {
            return Ok(LinkCheck::Error(reason(
                "bad_linked_input",
                "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                name,
                json!({"input_name": name, "input_config": config, "received_value": link}),
            )));
        }
        let source_id = link[0]
            .as_str()
            .ok_or_else(|| key_error(&link[0]))?
            .to_owned();
        let source = prompt.get(&source_id).ok_or_else(|| key_error(&link[0]))?;
        let source_class = source["class_type"]
            .as_str()
            .and_then(|class| self.catalogue.get(class));
        let return_types = source_class
            .map(|class| class.return_types())
            .unwrap_or_default();
        let received = slot(&return_types, &link[1])?.to_owned();

        if !type_matches(&received, &config[0]) {
            let details = format!(
                "{name}, received_type({received}) mismatch input_type({})",
                pyfmt::str(&config[0])
            );
            return Ok(LinkCheck::Error(reason(
                "return_type_mismatch",
                "Return type mismatch between linked nodes",
                &details,
                json!({"input_name": name, "input_config": config, "received_type": received,
                       "linked_node": link}),
            )));
        }

        match self.node(prompt, &source_id) {
            Ok(verdict) if verdict.valid => Ok(LinkCheck::Fine),
            Ok(_) => Ok(LinkCheck::UpstreamInvalid),
            Err(exception) => {
                let inner = reason(
                    "exception_during_inner_validation",
                    "Exception when validating inner node",
                    &exception.message,
                    json!({"input_name": name, "input_config": config,
                           "exception_message": exception.message,
                           "exception_type": exception.kind, "traceback": [],
                           "linked_node": link}),
                );
                self.record(
                    &source_id,
                    Verdict {
                        valid: false,
                        errors: vec![inner],
                    },
                );
                Ok(LinkCheck::UpstreamInvalid)
            }
        }
    }
}

enum LinkCheck {
    Fine,
    UpstreamInvalid,
    Error(Value),
}

pub(super) fn reason(kind: &str, message: &str, details: &str, extra_info: Value) -> Value {
    json!({"type": kind, "message": message, "details": details, "extra_info": extra_info})
}

fn key_error(key: &Value) -> PyException {
    PyException {
        kind: "KeyError",
        message: pyfmt::repr(key),
    }
}

/// `RETURN_TYPES[slot]` with Python's tuple indexing rules.
fn slot<'t>(types: &[&'t str], index: &Value) -> Result<&'t str, PyException> {
    let Some(position) = index.as_i64() else {
        let kind = match index {
            Value::String(_) => "str",
            Value::Number(_) => "float",
            Value::Bool(_) => "bool",
            _ => "NoneType",
        };
        return Err(PyException {
            kind: "TypeError",
            message: format!("tuple indices must be integers or slices, not {kind}"),
        });
    };
    let len = i64::try_from(types.len()).unwrap_or(i64::MAX);
    let resolved = if position < 0 {
        position + len
    } else {
        position
    };
    usize::try_from(resolved)
        .ok()
        .and_then(|at| types.get(at).copied())
        .ok_or_else(|| PyException {
            kind: "IndexError",
            message: "tuple index out of range".to_owned(),
        })
}

/// ComfyUI's `validate_node_input`: equal, `*`, or overlapping comma lists.
fn type_matches(received: &str, expected: &Value) -> bool {
    let Some(expected) = expected.as_str() else {
        return false;
    };
    if received == expected || received == "*" || expected == "*" {
        return true;
    }
    let wanted: Vec<&str> = expected.split(',').map(str::trim).collect();
    received
        .split(',')
        .map(str::trim)
        .any(|kind| wanted.contains(&kind))
}

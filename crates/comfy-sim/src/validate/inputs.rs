//! Validation of one node's inputs, following ComfyUI's `validate_inputs`:
//! required inputs, links (target, slot, type), value conversion, min/max,
//! choice lists, and `LoadImage`'s check that the file exists.

use std::cmp::Ordering;
use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::{PyException, Verdict};
use crate::catalogue::{Behaviour, Catalogue};
use crate::pyfmt;

/// ComfyUI stops echoing a choice list back past this many entries.
const MAX_LISTED_CHOICES: usize = 20;

pub(super) struct Checker<'a> {
    pub catalogue: &'a Catalogue,
    pub image_exists: &'a dyn Fn(&str) -> bool,
    pub verdicts: HashMap<String, Verdict>,
    /// Node ids in the order their verdicts were reached, like the Python
    /// dict ComfyUI iterates when it builds `node_errors`.
    pub order: Vec<String>,
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

fn reason(kind: &str, message: &str, details: &str, extra_info: Value) -> Value {
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

/// Converts and range-checks a widget value; `Err` holds the reason.
fn constant(name: &str, raw: &Value, config: &Value) -> Result<Value, Value> {
    let raw = raw.get("__value__").unwrap_or(raw);
    let input_type = &config[0];
    let options = &config[1];

    let value = convert(input_type.as_str().unwrap_or_default(), raw).map_err(|message| {
        reason(
            "invalid_input_type",
            &format!(
                "Failed to convert an input value to a {} value",
                pyfmt::str(input_type)
            ),
            &format!("{name}, {}, {message}", pyfmt::str(raw)),
            json!({"input_name": name, "input_config": config, "received_value": raw,
                   "exception_message": message}),
        )
    })?;

    for (bound, kind, word, wrong) in [
        (
            "min",
            "value_smaller_than_min",
            "smaller than min",
            Ordering::Less,
        ),
        (
            "max",
            "value_bigger_than_max",
            "bigger than max",
            Ordering::Greater,
        ),
    ] {
        let Some(limit) = options.get(bound) else {
            continue;
        };
        if compare(&value, limit) == Some(wrong) {
            let message = format!(
                "Value {} {word} of {}",
                pyfmt::repr(&value),
                pyfmt::repr(limit)
            );
            return Err(reason(
                kind,
                &message,
                name,
                json!({"input_name": name, "input_config": config,
                                     "received_value": value}),
            ));
        }
    }

    if let Some(choices) = input_type.as_array()
        && !choices
            .iter()
            .any(|choice| compare(choice, &value) == Some(Ordering::Equal) || choice == &value)
    {
        let (listed, config) = if choices.len() > MAX_LISTED_CHOICES {
            (format!("(list of length {})", choices.len()), Value::Null)
        } else {
            (pyfmt::repr(input_type), config.clone())
        };
        return Err(reason(
            "value_not_in_list",
            "Value not in list",
            &format!("{name}: '{}' not in {listed}", pyfmt::str(&value)),
            json!({"input_name": name, "input_config": config, "received_value": value}),
        ));
    }
    Ok(value)
}

/// Python's `int()`, `float()`, `str()` and `bool()` on a JSON value.
fn convert(input_type: &str, raw: &Value) -> Result<Value, String> {
    let type_name = |value: &Value| match value {
        Value::Null => "NoneType",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
        _ => "str",
    };
    match input_type {
        "INT" => match raw {
            Value::Number(number) if number.is_f64() => {
                let float = number.as_f64().unwrap_or_default();
                if float.is_finite() {
                    Ok(int_value(float.trunc()))
                } else {
                    Err("cannot convert float infinity to integer".to_owned())
                }
            }
            Value::Number(_) => Ok(raw.clone()),
            Value::Bool(flag) => Ok(json!(i64::from(*flag))),
            Value::String(text) => parse_int(text).ok_or_else(|| {
                format!(
                    "invalid literal for int() with base 10: {}",
                    pyfmt::repr(raw)
                )
            }),
            other => Err(format!(
                "int() argument must be a string, a bytes-like object or a real number, not '{}'",
                type_name(other)
            )),
        },
        "FLOAT" => match raw {
            Value::Number(number) => Ok(json!(number.as_f64().unwrap_or_default())),
            Value::Bool(flag) => Ok(json!(if *flag { 1.0 } else { 0.0 })),
            Value::String(text) => text
                .trim()
                .parse::<f64>()
                .map(|float| json!(float))
                .map_err(|_| format!("could not convert string to float: {}", pyfmt::repr(raw))),
            other => Err(format!(
                "float() argument must be a string or a real number, not '{}'",
                type_name(other)
            )),
        },
        "STRING" => Ok(Value::String(pyfmt::str(raw))),
        "BOOLEAN" => Ok(Value::Bool(match raw {
            Value::Null => false,
            Value::Bool(flag) => *flag,
            Value::Number(number) => number.as_f64() != Some(0.0),
            Value::String(text) => !text.is_empty(),
            Value::Array(items) => !items.is_empty(),
            Value::Object(map) => !map.is_empty(),
        })),
        _ => Ok(raw.clone()),
    }
}

fn parse_int(text: &str) -> Option<Value> {
    let cleaned: String = text.trim().chars().filter(|c| *c != '_').collect();
    cleaned.parse::<i128>().ok().map(|int| {
        i64::try_from(int)
            .map(Value::from)
            .or_else(|_| u64::try_from(int).map(Value::from))
            .unwrap_or_else(|_| json!(int as f64))
    })
}

#[allow(clippy::cast_possible_truncation)]
fn int_value(float: f64) -> Value {
    if float >= 0.0 && float > i64::MAX as f64 {
        json!(float as u64)
    } else {
        json!(float as i64)
    }
}

/// Numeric comparison across JSON integer and float representations.
fn compare(left: &Value, right: &Value) -> Option<Ordering> {
    let (Value::Number(a), Value::Number(b)) = (left, right) else {
        return None;
    };
    if let (Some(a), Some(b)) = (as_i128(a), as_i128(b)) {
        return Some(a.cmp(&b));
    }
    a.as_f64()?.partial_cmp(&b.as_f64()?)
}

fn as_i128(number: &serde_json::Number) -> Option<i128> {
    number
        .as_i64()
        .map(i128::from)
        .or_else(|| number.as_u64().map(i128::from))
}

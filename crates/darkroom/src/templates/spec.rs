//! What `/object_info` says about one node input: its kind, bounds, choices and default.
//!
//! ComfyUI describes an input as `[type, options]` where `type` is `"INT"`, `"FLOAT"`,
//! `"STRING"`, `"BOOLEAN"`, a list of choices, `"COMBO"` with the choices in
//! `options.options` (the newer node API), or the name of a linked type such as `"IMAGE"`.

use std::cmp::Ordering;

use comfy::server_info::ObjectInfo;
use serde_json::{Number, Value};

/// The kind of value an input takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueKind {
    Int,
    Float,
    String,
    Boolean,
    Combo,
    /// Fed only by a link carrying this type (`"IMAGE"`, `"MODEL"`, `"*"`).
    Link(String),
}

/// One input of one node class.
#[derive(Debug, Clone, PartialEq)]
pub struct InputSpec {
    pub kind: ValueKind,
    pub required: bool,
    pub default: Option<Value>,
    pub min: Option<Number>,
    pub max: Option<Number>,
    /// The allowed values of a combo.
    pub choices: Vec<Value>,
    pub multiline: bool,
    /// A combo of files the client uploads (`LoadImage`'s `image`).
    pub image_upload: bool,
    pub tooltip: Option<String>,
}

/// The spec of `class.input`, when the backend knows both.
pub fn input_spec(info: &ObjectInfo, class: &str, input: &str) -> Option<InputSpec> {
    let inputs = &info.get(class)?.input;
    if let Some(raw) = inputs.required.get(input) {
        return parse(raw, true);
    }
    parse(inputs.optional.get(input)?, false)
}

/// Every required and optional input of `class`, in declared order.
pub fn class_inputs(info: &ObjectInfo, class: &str) -> Option<Vec<(String, InputSpec)>> {
    let inputs = &info.get(class)?.input;
    let required = inputs.required.iter().map(|entry| (entry, true));
    let optional = inputs.optional.iter().map(|entry| (entry, false));
    let specs = required
        .chain(optional)
        .filter_map(|((name, raw), required)| Some((name.clone(), parse(raw, required)?)));
    Some(specs.collect())
}

/// Reads one `[type, options]` spec; `None` for shapes ComfyUI does not use for inputs.
pub fn parse(raw: &Value, required: bool) -> Option<InputSpec> {
    let (head, options) = match raw {
        Value::Array(parts) => (parts.first()?, parts.get(1)),
        other => (other, None),
    };
    let option = |key: &str| options.and_then(|options| options.get(key));
    let (kind, choices) = match head {
        Value::Array(choices) => (ValueKind::Combo, choices.clone()),
        Value::String(name) => kind_named(name, option("options")),
        _ => return None,
    };
    Some(InputSpec {
        kind,
        required,
        default: option("default").cloned(),
        min: option("min").and_then(Value::as_number).cloned(),
        max: option("max").and_then(Value::as_number).cloned(),
        choices,
        multiline: option("multiline").and_then(Value::as_bool) == Some(true),
        image_upload: option("image_upload").and_then(Value::as_bool) == Some(true),
        tooltip: option("tooltip").and_then(Value::as_str).map(str::to_owned),
    })
}

fn kind_named(name: &str, options: Option<&Value>) -> (ValueKind, Vec<Value>) {
    let kind = match name {
        "INT" => ValueKind::Int,
        "FLOAT" => ValueKind::Float,
        "STRING" => ValueKind::String,
        "BOOLEAN" => ValueKind::Boolean,
        "COMBO" => ValueKind::Combo,
        other => ValueKind::Link(other.to_owned()),
    };
    let choices = options
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    (kind, choices)
}

/// Orders two JSON numbers exactly: as integers when both are (seeds reach 2^64 - 1, past
/// what a float holds exactly), as floats otherwise.
/// Whether `number` lies below `min` or above `max` (either bound may be absent).
pub fn out_of_bounds(number: &Number, min: Option<&Number>, max: Option<&Number>) -> bool {
    min.is_some_and(|min| compare(number, min).is_lt())
        || max.is_some_and(|max| compare(number, max).is_gt())
}

pub fn compare(left: &Number, right: &Number) -> Ordering {
    match (as_integer(left), as_integer(right)) {
        (Some(left), Some(right)) => left.cmp(&right),
        _ => {
            let left = left.as_f64().unwrap_or(f64::NAN);
            let right = right.as_f64().unwrap_or(f64::NAN);
            left.partial_cmp(&right).unwrap_or(Ordering::Equal)
        }
    }
}

/// The number as an integer, when it is one.
pub fn as_integer(number: &Number) -> Option<i128> {
    if let Some(unsigned) = number.as_u64() {
        return Some(i128::from(unsigned));
    }
    number.as_i64().map(i128::from)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn each_spec_shape_is_read() {
        let int = parse(
            &json!(["INT", {"default": 20, "min": 1, "max": 10000}]),
            true,
        )
        .unwrap();
        assert_eq!(int.kind, ValueKind::Int);
        assert_eq!(int.max, Some(Number::from(10000)));
        let old_combo = parse(&json!([["euler", "heun"]]), true).unwrap();
        assert_eq!(old_combo.kind, ValueKind::Combo);
        assert_eq!(old_combo.choices.len(), 2);
        let new_combo = parse(&json!(["COMBO", {"options": ["a", "b", "c"]}]), true).unwrap();
        assert_eq!(
            (new_combo.kind, new_combo.choices.len()),
            (ValueKind::Combo, 3)
        );
        let upload = parse(&json!([[], {"image_upload": true}]), true).unwrap();
        assert!(upload.image_upload);
        let link = parse(&json!(["IMAGE"]), false).unwrap();
        assert_eq!(link.kind, ValueKind::Link("IMAGE".into()));
        assert!(!link.required);
    }

    #[test]
    fn the_largest_seed_compares_exactly() {
        let max = Number::from(u64::MAX);
        let below = Number::from(u64::MAX - 1);
        assert_eq!(compare(&below, &max), Ordering::Less);
        let float = Number::from_f64(0.5).unwrap();
        assert_eq!(compare(&float, &Number::from(1)), Ordering::Less);
    }
}

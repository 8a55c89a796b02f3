//! Widget values: Python's conversions (`int()`, `float()`, `str()`,
//! `bool()`), then ComfyUI's min/max and choice-list checks, each failure
//! spelled as ComfyUI spells it.

use std::cmp::Ordering;

use serde_json::{Value, json};

use super::inputs::reason;
use crate::pyfmt;

/// ComfyUI stops echoing a choice list back past this many entries.
const MAX_LISTED_CHOICES: usize = 20;

/// Converts and range-checks a widget value; `Err` holds the reason.
pub(super) fn constant(name: &str, raw: &Value, config: &Value) -> Result<Value, Value> {
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

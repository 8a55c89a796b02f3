//! `--set NAME=VALUE` and `--input NAME=FILE` read against a template's parameter schema:
//! each value becomes the JSON type its parameter takes, so `--set steps=20` sends a
//! number and `--set prompt=20` a string.
//!
//! Only what cannot be sent at all is refused here (a malformed flag, text for a number);
//! everything else, an unknown name included, goes to the server, which names the
//! parameter at fault in its answer.

use serde_json::{Map, Number, Value};

use super::ClientError;

/// `NAME=VALUE` split at the first `=`.
///
/// # Errors
///
/// `InvalidInput` without an `=` or with an empty name.
pub fn split(flag: &str, argument: &str) -> Result<(String, String), ClientError> {
    match argument.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_owned(), value.to_owned()))
        }
        _ => Err(ClientError::invalid(format!(
            "{flag} takes NAME=VALUE, got {argument:?}"
        ))),
    }
}

/// The `params` object of a request from `--set` flags, typed by `schema`.
///
/// # Errors
///
/// `InvalidInput` naming the parameter whose value cannot be its type.
pub fn from_flags(schema: &Value, sets: &[String]) -> Result<Map<String, Value>, ClientError> {
    let mut params = Map::new();
    for argument in sets {
        let (name, raw) = split("--set", argument)?;
        let value = typed(&name, &raw, schema.pointer(&format!("/properties/{name}")))?;
        params.insert(name, value);
    }
    Ok(params)
}

/// The parameter's schema out of a template answer, whichever key holds it.
pub fn schema_of(template: &Value) -> Value {
    let keys = [
        "schema",
        "parameters_schema",
        "params_schema",
        "json_schema",
        "parameters",
    ];
    keys.iter()
        .map(|key| &template[key])
        .find(|schema| schema["properties"].is_object())
        .cloned()
        .unwrap_or_else(|| template.clone())
}

fn typed(name: &str, raw: &str, property: Option<&Value>) -> Result<Value, ClientError> {
    let Some(property) = property else {
        return Ok(guessed(raw));
    };
    let kind = property["x-darkroom-type"]
        .as_str()
        .or(property["type"].as_str())
        .unwrap_or("text");
    let wrong = |expected: &str| {
        ClientError::invalid(format!(
            "parameter {name:?} must be {expected}, got {raw:?}"
        ))
    };
    match kind {
        "integer" => integer(raw).ok_or_else(|| wrong("an integer")),
        "seed" if raw == "random" => Ok(Value::from("random")),
        "seed" => integer(raw).ok_or_else(|| wrong("an integer or \"random\"")),
        "number" => raw
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| wrong("a number")),
        "boolean" => match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" | "on" => Ok(Value::Bool(true)),
            "false" | "no" | "0" | "off" => Ok(Value::Bool(false)),
            _ => Err(wrong("true or false")),
        },
        "choice" => Ok(choice(raw, property)),
        _ => Ok(Value::from(raw)),
    }
}

fn integer(raw: &str) -> Option<Value> {
    let raw = raw.trim();
    raw.parse::<u64>()
        .map(Value::from)
        .or_else(|_| raw.parse::<i64>().map(Value::from))
        .ok()
}

/// The offered choice spelled `raw` (choices may be numbers); `raw` itself otherwise, for
/// the server to refuse with the list.
fn choice(raw: &str, property: &Value) -> Value {
    let offered = property["enum"].as_array().into_iter().flatten();
    offered
        .into_iter()
        .find(|choice| match choice {
            Value::String(text) => text == raw,
            other => *raw == other.to_string(),
        })
        .cloned()
        .unwrap_or_else(|| Value::from(raw))
}

/// A value for a name the schema does not know: the server will name it anyway.
fn guessed(raw: &str) -> Value {
    serde_json::from_str::<Value>(raw)
        .ok()
        .filter(|value| value.is_number() || value.is_boolean())
        .unwrap_or_else(|| Value::from(raw))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> Value {
        json!({"properties": {
            "prompt": {"type": "string", "x-darkroom-type": "text"},
            "steps": {"type": "integer", "x-darkroom-type": "integer"},
            "cfg": {"type": "number", "x-darkroom-type": "number"},
            "seed": {"anyOf": [{"type": "integer"}, {"const": "random"}], "x-darkroom-type": "seed"},
            "tiling": {"type": "boolean", "x-darkroom-type": "boolean"},
            "size": {"enum": [512, 768], "x-darkroom-type": "choice"},
        }})
    }

    fn set(values: &[&str]) -> Result<Map<String, Value>, ClientError> {
        let values: Vec<String> = values.iter().map(|value| (*value).to_owned()).collect();
        from_flags(&schema(), &values)
    }

    #[test]
    fn each_value_takes_its_parameters_type() {
        let params = set(&[
            "prompt=20 red balloons",
            "steps=20",
            "cfg=7.5",
            "seed=random",
            "tiling=yes",
            "size=768",
        ])
        .unwrap();
        assert_eq!(
            Value::Object(params),
            json!({"prompt": "20 red balloons", "steps": 20, "cfg": 7.5, "seed": "random",
                   "tiling": true, "size": 768})
        );
        assert_eq!(set(&["seed=7"]).unwrap()["seed"], json!(7));
        assert_eq!(set(&["prompt=a=b"]).unwrap()["prompt"], json!("a=b"));
    }

    #[test]
    fn a_value_that_cannot_be_its_type_is_refused_naming_the_parameter() {
        let error = set(&["steps=many"]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "parameter \"steps\" must be an integer, got \"many\""
        );
        assert!(set(&["nothing"]).is_err());
        assert!(set(&["=5"]).is_err());
    }

    #[test]
    fn unknown_names_and_choices_go_to_the_server_as_given() {
        let params = set(&["colour=3", "size=1024"]).unwrap();
        assert_eq!(params["colour"], json!(3));
        assert_eq!(params["size"], json!("1024"));
    }
}

//! A template's parameters published as JSON Schema (draft 2020-12), the object a client
//! sends as `params`. Darkroom's own type of each parameter travels beside the standard
//! keywords as `x-darkroom-type`, so a form can offer an upload for an image and a dice
//! button for a seed.

use serde_json::{Map, Value, json};

use super::Template;
use super::params::{ParameterSpec, ParameterType};

/// The schema of the `params` object `template` takes.
pub fn json_schema(template: &Template, specs: &[ParameterSpec]) -> Value {
    let mut properties = Map::new();
    for spec in specs {
        properties.insert(spec.name.clone(), property(spec));
    }
    let required: Vec<&str> = specs
        .iter()
        .filter(|spec| spec.default.is_none())
        .map(|spec| spec.name.as_str())
        .collect();
    let mut schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": template.title,
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    });
    if let Some(description) = &template.description {
        schema["description"] = Value::from(description.as_str());
    }
    schema
}

/// One parameter's schema.
pub fn property(spec: &ParameterSpec) -> Value {
    let mut property = match spec.kind {
        ParameterType::Text => json!({"type": "string"}),
        ParameterType::Choice => json!({}),
        ParameterType::Integer => bounded("integer", spec),
        ParameterType::Number => bounded("number", spec),
        ParameterType::Boolean => json!({"type": "boolean"}),
        ParameterType::Image => json!({
            "type": "string",
            "format": "uuid",
            "contentMediaType": "image/*",
        }),
        ParameterType::Seed => json!({"anyOf": [bounded("integer", spec), {"const": "random"}]}),
    };
    if let Some(choices) = &spec.choices {
        property["enum"] = Value::Array(choices.clone());
    }
    property["x-darkroom-type"] = Value::from(spec.kind.as_str());
    if spec.multiline {
        property["x-darkroom-multiline"] = Value::Bool(true);
    }
    if let Some(description) = &spec.description {
        property["description"] = Value::from(description.as_str());
    }
    if let Some(default) = &spec.default {
        property["default"] = default.clone();
    }
    property
}

fn bounded(type_name: &str, spec: &ParameterSpec) -> Value {
    let mut schema = json!({"type": type_name});
    if let Some(min) = &spec.min {
        schema["minimum"] = Value::Number(min.clone());
    }
    if let Some(max) = &spec.max {
        schema["maximum"] = Value::Number(max.clone());
    }
    schema
}

//! What one backend can run, read from its `/object_info`: its node classes and, for each
//! input that is a list of choices, the model files among them. A job's requirements are
//! checked against it before the job is routed there.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use comfy::server_info::ObjectInfo;
use serde_json::Value;

use crate::jobs::requirements::{ModelFile, Requirements, is_model_file};

/// A backend's node classes and the choices of their combo inputs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Capabilities {
    /// Class name -> combo input name -> its string choices.
    classes: HashMap<String, HashMap<String, HashSet<String>>>,
}

/// The first thing a backend lacks for a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    Node(String),
    Model(ModelFile),
}

impl std::fmt::Display for Missing {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Node(class_type) => write!(formatter, "node class {class_type:?}"),
            Self::Model(model) => model.fmt(formatter),
        }
    }
}

impl Capabilities {
    /// Reads the classes and combo choices of an `/object_info` document.
    pub fn from_object_info(info: &ObjectInfo) -> Self {
        let classes = info
            .iter()
            .map(|(class_type, schema)| {
                let inputs = schema.input.required.iter().chain(&schema.input.optional);
                let combos = inputs
                    .filter_map(|(name, spec)| Some((name.clone(), combo_choices(spec)?)))
                    .collect();
                (class_type.clone(), combos)
            })
            .collect();
        Self { classes }
    }

    /// How many node classes the backend knows.
    pub fn class_count(&self) -> usize {
        self.classes.len()
    }

    /// The first requirement this backend does not meet, or `None` when it can run the
    /// job. A model input that is not a list of choices here is not checked: the value
    /// only looked like a file name.
    pub fn missing(&self, requirements: &Requirements) -> Option<Missing> {
        if let Some(node) = requirements
            .nodes
            .iter()
            .find(|node| !self.classes.contains_key(*node))
        {
            return Some(Missing::Node(node.clone()));
        }
        requirements
            .models
            .iter()
            .find(|model| {
                self.classes
                    .get(&model.class_type)
                    .and_then(|inputs| inputs.get(&model.input))
                    .is_some_and(|choices| !choices.contains(&model.file))
            })
            .map(|model| Missing::Model(model.clone()))
    }

    /// The model files offered, by input name (`ckpt_name`, `lora_name`, ...).
    pub fn models(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut models: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (input, choices) in self.classes.values().flatten() {
            let files: BTreeSet<String> = choices
                .iter()
                .filter(|choice| is_model_file(choice))
                .cloned()
                .collect();
            if !files.is_empty() {
                models.entry(input.clone()).or_default().extend(files);
            }
        }
        models
    }
}

/// The string choices of a combo input spec: `[[choices...], {...}]` or, in the newer
/// node API, `["COMBO", {"options": [choices...]}]`.
fn combo_choices(spec: &Value) -> Option<HashSet<String>> {
    let parts = spec.as_array()?;
    let list = match parts.first()? {
        Value::Array(choices) => choices,
        Value::String(kind) if kind == "COMBO" => parts.get(1)?.get("options")?.as_array()?,
        _ => return None,
    };
    Some(
        list.iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn capabilities(info: Value) -> Capabilities {
        let info: ObjectInfo = serde_json::from_value(info).unwrap_or_default();
        Capabilities::from_object_info(&info)
    }

    #[test]
    fn a_job_needs_every_class_and_every_listed_model() {
        let backend = capabilities(json!({
            "CheckpointLoaderSimple": {"input": {"required": {"ckpt_name": [["a.safetensors", "b.ckpt"], {}]}}},
            "SaveImage": {"input": {"required": {"filename_prefix": ["STRING", {}]}}},
            "LoraLoader": {"input": {"required": {"lora_name": ["COMBO", {"options": ["x.pt"]}]}}},
        }));
        let job = |graph: Value| Requirements::of(&graph);

        let runs = job(
            json!({"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "b.ckpt"}},
                              "2": {"class_type": "SaveImage", "inputs": {"filename_prefix": "out.pt"}}}),
        );
        assert_eq!(backend.missing(&runs), None);

        let no_class = job(json!({"1": {"class_type": "Upscale", "inputs": {}}}));
        assert_eq!(
            backend.missing(&no_class),
            Some(Missing::Node("Upscale".into()))
        );

        let no_model =
            job(json!({"1": {"class_type": "LoraLoader", "inputs": {"lora_name": "y.pt"}}}));
        let missing = backend
            .missing(&no_model)
            .map(|missing| missing.to_string());
        assert_eq!(
            missing.as_deref(),
            Some("model \"y.pt\" (LoraLoader.lora_name)")
        );

        let models = backend.models();
        assert_eq!(models["ckpt_name"].len(), 2);
        assert!(models["lora_name"].contains("x.pt"));
    }
}

//! What a job needs from a backend: the node classes of its graph and the model files its
//! loaders name. Computed once at submission and stored with the job, so the scheduler
//! routes each job to a backend able to run it without reading the graph again.
//!
//! A model file is a string input value with a model file extension (`ckpt_name:
//! "sd15.safetensors"`). Whether that input really is a list of files on a backend is the
//! backend's `/object_info` to say; this module only reads the graph.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// File extensions of model weights as ComfyUI's model folders list them.
const MODEL_EXTENSIONS: &[&str] = &[
    "safetensors",
    "ckpt",
    "pt",
    "pth",
    "bin",
    "gguf",
    "sft",
    "onnx",
    "pkl",
];

/// The node classes and model files one job needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requirements {
    /// Every `class_type` of the graph.
    #[serde(default)]
    pub nodes: BTreeSet<String>,
    /// Every model file a node input names, with where it is named.
    #[serde(default)]
    pub models: Vec<ModelFile>,
}

/// One model file named by one node input.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ModelFile {
    pub class_type: String,
    pub input: String,
    pub file: String,
}

impl std::fmt::Display for ModelFile {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "model {:?} ({}.{})",
            self.file, self.class_type, self.input
        )
    }
}

impl Requirements {
    /// Reads the requirements of an API-format graph; a node without a class is skipped
    /// (the submission checks refuse such graphs before this matters).
    pub fn of(graph: &Value) -> Self {
        let mut requirements = Self::default();
        let mut models = BTreeSet::new();
        for node in graph
            .as_object()
            .into_iter()
            .flat_map(|nodes| nodes.values())
        {
            let Some(class_type) = node.get("class_type").and_then(Value::as_str) else {
                continue;
            };
            requirements.nodes.insert(class_type.to_owned());
            let inputs = node.get("inputs").and_then(Value::as_object);
            for (input, value) in inputs.into_iter().flatten() {
                if let Some(file) = value.as_str().filter(|file| is_model_file(file)) {
                    models.insert(ModelFile {
                        class_type: class_type.to_owned(),
                        input: input.clone(),
                        file: file.to_owned(),
                    });
                }
            }
        }
        requirements.models = models.into_iter().collect();
        requirements
    }

    /// The model files, without where they are named: what a backend has loaded after
    /// running the job.
    pub fn model_files(&self) -> BTreeSet<&str> {
        self.models
            .iter()
            .map(|model| model.file.as_str())
            .collect()
    }
}

/// Whether a value names a model file by its extension.
pub fn is_model_file(value: &str) -> bool {
    value.rsplit_once('.').is_some_and(|(stem, extension)| {
        !stem.is_empty()
            && MODEL_EXTENSIONS
                .iter()
                .any(|known| extension.eq_ignore_ascii_case(known))
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn classes_and_model_files_of_a_graph() {
        let graph = json!({
            "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd/v1-5.safetensors"}},
            "5": {"class_type": "LoraLoader", "inputs": {"lora_name": "detail.PT", "model": ["4", 0]}},
            "6": {"class_type": "LoadImage", "inputs": {"image": "cat.png"}},
            "7": {"class_type": "KSampler", "inputs": {"sampler_name": "euler", "seed": 5}},
        });
        let requirements = Requirements::of(&graph);
        assert_eq!(
            requirements.nodes.iter().collect::<Vec<_>>(),
            [
                "CheckpointLoaderSimple",
                "KSampler",
                "LoadImage",
                "LoraLoader"
            ]
        );
        let files: Vec<_> = requirements.model_files().into_iter().collect();
        assert_eq!(files, ["detail.PT", "sd/v1-5.safetensors"]);
        assert_eq!(requirements.models[0].input, "ckpt_name");
    }

    #[test]
    fn a_bare_extension_is_not_a_file() {
        assert!(!is_model_file(".safetensors"));
        assert!(!is_model_file("euler"));
        assert!(is_model_file("x.gguf"));
    }
}

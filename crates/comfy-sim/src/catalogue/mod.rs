//! The node classes the simulator knows, in the shapes `/object_info` gives.
//!
//! Each class is described once, as the JSON ComfyUI would serve for it;
//! validation and execution read the same description, so what a client sees
//! in `/object_info` is exactly what the simulator enforces. What a node
//! *does* when it runs is named by [`Behaviour`] and lives in `exec`.

mod builtin;
mod darkroom;

use serde_json::{Map, Value, json};

/// What running a node of this class does, simulated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Behaviour {
    EmptyImage,
    LoadImage,
    ImageInvert,
    /// Produces handles a later node consumes (models, conditioning).
    Opaque,
    EmptyLatent,
    KSampler,
    VaeDecode,
    SaveImage,
    PreviewImage,
    Steps,
    Fail,
    UntilInterrupted,
    MultiOutput,
    Text,
}

/// One node class: its `/object_info` entry and its behaviour.
#[derive(Debug, Clone)]
pub(crate) struct NodeClass {
    pub name: &'static str,
    pub info: Value,
    pub behaviour: Behaviour,
}

impl NodeClass {
    fn new(name: &'static str, behaviour: Behaviour, spec: ClassSpec) -> Self {
        let input_order: Map<String, Value> = spec
            .input
            .as_object()
            .map(|groups| {
                groups
                    .iter()
                    .map(|(group, inputs)| {
                        let names: Vec<Value> = inputs
                            .as_object()
                            .map(|map| map.keys().map(|key| json!(key)).collect())
                            .unwrap_or_default();
                        (group.clone(), Value::Array(names))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let outputs = spec.output.len();
        let info = json!({
            "input": spec.input,
            "input_order": input_order,
            "output": spec.output,
            "output_is_list": vec![false; outputs],
            "output_name": spec.output_name.unwrap_or_else(|| spec.output.clone()),
            "name": name,
            "display_name": spec.display_name,
            "description": spec.description,
            "python_module": spec.python_module,
            "category": spec.category,
            "output_node": spec.output_node,
        });
        Self {
            name,
            info,
            behaviour,
        }
    }

    pub fn is_output(&self) -> bool {
        self.info["output_node"].as_bool().unwrap_or(false)
    }

    /// The type names of the outputs, by slot.
    pub fn return_types(&self) -> Vec<&str> {
        self.info["output"]
            .as_array()
            .map(|types| types.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }

    /// `(name, "required" | "optional", spec)` for every non-hidden input,
    /// in declaration order.
    pub fn inputs(&self) -> Vec<(&str, &'static str, &Value)> {
        let mut all = Vec::new();
        for group in ["required", "optional"] {
            if let Some(inputs) = self.info["input"][group].as_object() {
                all.extend(
                    inputs
                        .iter()
                        .map(|(name, spec)| (name.as_str(), group, spec)),
                );
            }
        }
        all
    }
}

/// The pieces of an `/object_info` entry a class definition spells out.
pub(crate) struct ClassSpec {
    pub input: Value,
    pub output: Vec<&'static str>,
    pub output_name: Option<Vec<&'static str>>,
    pub display_name: &'static str,
    pub description: &'static str,
    pub python_module: &'static str,
    pub category: &'static str,
    pub output_node: bool,
}

/// Every class the simulator serves, in a stable order.
#[derive(Debug, Clone)]
pub(crate) struct Catalogue {
    classes: Vec<NodeClass>,
}

impl Catalogue {
    pub fn new(checkpoints: &[String]) -> Self {
        let mut classes = builtin::classes(checkpoints);
        classes.extend(darkroom::classes());
        Self { classes }
    }

    /// The catalogue less the classes named.
    pub fn without(mut self, names: &[String]) -> Self {
        self.classes
            .retain(|class| !names.iter().any(|name| name == class.name));
        self
    }

    pub fn get(&self, name: &str) -> Option<&NodeClass> {
        self.classes.iter().find(|class| class.name == name)
    }

    /// The `/object_info` document. `input_files` fills `LoadImage`'s list,
    /// which ComfyUI builds from the input folder on every request.
    pub fn object_info(&self, input_files: &[String]) -> Map<String, Value> {
        self.classes
            .iter()
            .map(|class| (class.name.to_owned(), self.render(class, input_files)))
            .collect()
    }

    pub fn object_info_for(&self, name: &str, input_files: &[String]) -> Option<Value> {
        self.get(name).map(|class| self.render(class, input_files))
    }

    fn render(&self, class: &NodeClass, input_files: &[String]) -> Value {
        let mut info = class.info.clone();
        if class.behaviour == Behaviour::LoadImage {
            info["input"]["required"]["image"][0] = json!(input_files);
        }
        info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_has_the_object_info_keys() {
        let catalogue = Catalogue::new(&["tiny.safetensors".to_owned()]);
        let info = catalogue.object_info(&[]);
        for name in [
            "EmptyImage",
            "SaveImage",
            "KSampler",
            "DarkroomSteps",
            "DarkroomText",
        ] {
            let entry = &info[name];
            for key in [
                "input",
                "input_order",
                "output",
                "output_is_list",
                "output_name",
            ] {
                assert!(entry.get(key).is_some(), "{name} lacks {key}");
            }
            assert_eq!(entry["name"], name);
        }
        assert_eq!(info["SaveImage"]["output_node"], true);
        assert_eq!(info["KSampler"]["input_order"]["required"][0], "model");
    }
}

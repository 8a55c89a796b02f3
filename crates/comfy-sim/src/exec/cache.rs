//! ComfyUI's classic output cache, simulated.
//!
//! A node's cache key is its class, its `IS_CHANGED` answer and its inputs,
//! with links replaced by the key of the node they come from, so a change
//! anywhere upstream changes every key below it. Like the classic cache,
//! only the keys of the latest prompt survive into the next one.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value};

use super::nodes::Data;
use crate::catalogue::{Behaviour, Catalogue};
use crate::files::Dirs;

/// Distinct on every call: the `IS_CHANGED` of nodes that always re-run.
static NONCE: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Clone)]
pub(crate) struct CachedNode {
    pub outputs: Vec<Data>,
    pub ui: Option<Value>,
}

#[derive(Debug, Default)]
pub(crate) struct Cache {
    entries: HashMap<String, CachedNode>,
}

impl Cache {
    pub fn get(&self, key: &str) -> Option<&CachedNode> {
        self.entries.get(key)
    }

    pub fn insert(&mut self, key: String, node: CachedNode) {
        self.entries.insert(key, node);
    }

    /// Drops every entry the new prompt does not use.
    pub fn retain_keys(&mut self, keys: &HashSet<&String>) {
        self.entries.retain(|key, _| keys.contains(key));
    }
}

/// Cache keys of every node of `prompt`.
pub(crate) fn keys(
    prompt: &Map<String, Value>,
    catalogue: &Catalogue,
    dirs: &Dirs,
) -> HashMap<String, String> {
    let mut keys = HashMap::new();
    for node_id in prompt.keys() {
        key_of(node_id, prompt, catalogue, dirs, &mut keys, 0);
    }
    keys
}

fn key_of(
    node_id: &str,
    prompt: &Map<String, Value>,
    catalogue: &Catalogue,
    dirs: &Dirs,
    keys: &mut HashMap<String, String>,
    depth: usize,
) -> String {
    if let Some(key) = keys.get(node_id) {
        return key.clone();
    }
    let node = &prompt[node_id];
    let class_name = node["class_type"].as_str().unwrap_or_default();
    let mut text = format!("{class_name}|{}", is_changed(node, catalogue, dirs));

    let mut inputs: Vec<(&String, &Value)> = node["inputs"]
        .as_object()
        .map(|inputs| inputs.iter().collect())
        .unwrap_or_default();
    inputs.sort_by_key(|(name, _)| *name);
    for (name, value) in inputs {
        let source = value
            .as_array()
            .filter(|link| link.len() == 2)
            .and_then(|link| link[0].as_str());
        // Validation refused cycles; the depth cap only guards against a bug.
        match source {
            Some(source) if prompt.contains_key(source) && depth < 1_000 => {
                let upstream = key_of(source, prompt, catalogue, dirs, keys, depth + 1);
                text.push_str(&format!("|{name}=<{upstream}>#{}", value[1]));
            }
            _ => text.push_str(&format!("|{name}={value}")),
        }
    }

    let mut hasher = DefaultHasher::new();
    text.hash(&mut hasher);
    let key = format!("{class_name}:{:016x}", hasher.finish());
    keys.insert(node_id.to_owned(), key.clone());
    key
}

/// The simulated `IS_CHANGED` of a node.
fn is_changed(node: &Value, catalogue: &Catalogue, dirs: &Dirs) -> String {
    let behaviour = node["class_type"]
        .as_str()
        .and_then(|name| catalogue.get(name))
        .map(|class| class.behaviour);
    let fresh = || format!("run-{}", NONCE.fetch_add(1, Ordering::Relaxed));
    match behaviour {
        Some(Behaviour::Steps) if node["inputs"]["always_run"] != Value::Bool(false) => fresh(),
        Some(Behaviour::Fail | Behaviour::UntilInterrupted | Behaviour::MultiOutput) => fresh(),
        // LoadImage answers with the file's hash: a new upload under the
        // same name re-runs it.
        Some(Behaviour::LoadImage) => {
            let name = node["inputs"]["image"].as_str().unwrap_or_default();
            let bytes = dirs
                .annotated(name)
                .and_then(|path| std::fs::read(path).ok())
                .unwrap_or_default();
            let mut hasher = DefaultHasher::new();
            bytes.hash(&mut hasher);
            format!("{:016x}", hasher.finish())
        }
        _ => String::new(),
    }
}

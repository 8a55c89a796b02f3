//! The order nodes run in, following ComfyUI's `ExecutionList`.
//!
//! Nodes are discovered from each output node through a stack, which fixes
//! the "pending" order; each time, the first unblocked node is taken, with
//! ComfyUI's preference for output nodes and the nodes just above them (so a
//! preview shows as early as possible). Links from cached nodes do not block.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use crate::catalogue::Catalogue;

#[derive(Debug)]
pub(crate) struct ExecutionList<'a> {
    prompt: &'a Map<String, Value>,
    catalogue: &'a Catalogue,
    pending: Vec<String>,
    blockers: HashMap<String, usize>,
    blocking: HashMap<String, Vec<String>>,
}

impl<'a> ExecutionList<'a> {
    pub fn new(
        prompt: &'a Map<String, Value>,
        catalogue: &'a Catalogue,
        outputs: &[String],
        cached: &HashSet<String>,
    ) -> Self {
        let mut list = Self {
            prompt,
            catalogue,
            pending: Vec::new(),
            blockers: HashMap::new(),
            blocking: HashMap::new(),
        };
        for output in outputs {
            list.add(output, cached);
        }
        list
    }

    fn add(&mut self, start: &str, cached: &HashSet<String>) {
        let mut stack = vec![start.to_owned()];
        let mut links = Vec::new();
        while let Some(node_id) = stack.pop() {
            if self.pending.contains(&node_id) || !self.prompt.contains_key(&node_id) {
                continue;
            }
            self.pending.push(node_id.clone());
            self.blockers.entry(node_id.clone()).or_insert(0);
            let Some(inputs) = self.prompt[&node_id]["inputs"].as_object() else {
                continue;
            };
            for value in inputs.values() {
                let Some(source) = link_source(value) else {
                    continue;
                };
                if !cached.contains(source) {
                    stack.push(source.to_owned());
                    links.push((source.to_owned(), node_id.clone()));
                }
            }
        }
        for (source, target) in links {
            let blocked = self.blocking.entry(source).or_default();
            if !blocked.contains(&target) {
                blocked.push(target.clone());
                *self.blockers.entry(target).or_insert(0) += 1;
            }
        }
    }

    /// The next node to run, or `None` when everything ran.
    pub fn next(&mut self) -> Option<String> {
        let available: Vec<&String> = self
            .pending
            .iter()
            .filter(|node| self.blockers.get(*node) == Some(&0))
            .collect();
        let picked = self.pick(&available)?.clone();
        self.pending.retain(|node| node != &picked);
        for blocked in self.blocking.remove(&picked).unwrap_or_default() {
            if let Some(count) = self.blockers.get_mut(&blocked) {
                *count = count.saturating_sub(1);
            }
        }
        Some(picked)
    }

    /// Output nodes first, then a node feeding an output, then a node two
    /// steps above one, else the first available.
    fn pick<'n>(&self, available: &[&'n String]) -> Option<&'n String> {
        let feeds = |node: &String, depth: usize| -> bool {
            let mut frontier = vec![node.clone()];
            for _ in 0..depth {
                frontier = frontier
                    .iter()
                    .flat_map(|id| self.blocking.get(id).cloned().unwrap_or_default())
                    .collect();
            }
            frontier.iter().any(|id| self.is_output(id))
        };
        (0..3)
            .find_map(|depth| available.iter().find(|node| feeds(node, depth)).copied())
            .or_else(|| available.first().copied())
    }

    fn is_output(&self, node_id: &str) -> bool {
        self.prompt[node_id]["class_type"]
            .as_str()
            .and_then(|name| self.catalogue.get(name))
            .is_some_and(|class| class.is_output())
    }
}

/// Node ids still to run, output nodes first: `current_outputs` of an
/// `execution_error`.
pub(crate) fn staged(
    prompt: &Map<String, Value>,
    catalogue: &Catalogue,
    outputs: &[String],
) -> Vec<String> {
    ExecutionList::new(prompt, catalogue, outputs, &HashSet::new()).pending
}

/// The source node id of a link input, if `value` is one.
pub(crate) fn link_source(value: &Value) -> Option<&str> {
    value
        .as_array()
        .filter(|link| link.len() == 2)
        .and_then(|link| link[0].as_str())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn text_to_image_runs_in_comfyui_order() {
        let prompt = json!({
            "3": {"class_type": "KSampler", "inputs": {"seed": 1, "model": ["4", 0], "positive": ["6", 0],
                  "negative": ["7", 0], "latent_image": ["5", 0]}},
            "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "x"}},
            "5": {"class_type": "EmptyLatentImage", "inputs": {}},
            "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a", "clip": ["4", 1]}},
            "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "b", "clip": ["4", 1]}},
            "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
            "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "p", "images": ["8", 0]}},
        });
        let prompt = prompt.as_object().unwrap();
        let catalogue = Catalogue::new(&[]);
        let mut list = ExecutionList::new(prompt, &catalogue, &["9".to_owned()], &HashSet::new());
        let order: Vec<String> = std::iter::from_fn(|| list.next()).collect();
        assert_eq!(order, ["4", "5", "7", "6", "3", "8", "9"]);
    }
}

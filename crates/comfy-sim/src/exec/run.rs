//! One prompt's execution: the cache check, the node loop in ComfyUI's
//! order, and what is reported when a node fails or is interrupted.
//!
//! The run ends with the lifecycle message already sent (`execution_success`,
//! `execution_error` or `execution_interrupted`); writing history, the
//! `status` broadcast and the final `executing {node: null}` are the
//! worker's, after the configured history lag.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::cache::{self, CachedNode};
use super::events::Emitter;
use super::nodes::{self, Data, NodeResult};
use super::order::{self, ExecutionList, link_source};
use crate::knobs::InjectedFailure;
use crate::shared::Shared;
use crate::state::QueueItem;

/// Why a node stopped the run.
#[derive(Debug)]
pub(crate) enum Stop {
    Interrupted,
    Failed { kind: &'static str, message: String },
}

/// What the history entry needs from a finished run.
#[derive(Debug)]
pub(crate) struct Finished {
    pub success: bool,
    pub outputs: Map<String, Value>,
    pub meta: Map<String, Value>,
    pub messages: Vec<Value>,
}

pub(crate) struct Run<'a> {
    pub shared: &'a Arc<Shared>,
    pub item: &'a QueueItem,
    pub emit: Emitter<'a>,
    pub previews: bool,
    results: HashMap<String, Vec<Data>>,
    ui: Vec<(String, Value)>,
    executed: Vec<String>,
    failure: Option<InjectedFailure>,
}

pub(crate) async fn run(shared: &Arc<Shared>, item: &QueueItem) -> Finished {
    shared.interrupt.store(false, Ordering::SeqCst);
    let knobs = shared.knobs();
    let previews = match item
        .extra_data
        .get("preview_method")
        .and_then(Value::as_str)
    {
        Some("none") => false,
        Some(_) => true,
        None => knobs.previews,
    };
    let mut run = Run {
        shared,
        item,
        emit: Emitter::new(shared, item.prompt_id.clone(), item.client_id()),
        previews,
        results: HashMap::new(),
        ui: Vec::new(),
        executed: Vec::new(),
        // Taken by the first prompt that holds the chosen node.
        failure: shared.with_knobs(|knobs| {
            knobs.fail_next_execution.take_if(|failure| {
                failure
                    .node
                    .as_ref()
                    .is_none_or(|node| item.prompt.contains_key(node))
            })
        }),
    };
    run.emit
        .lifecycle("execution_start", prompt_data(item), false);

    let keys = cache::keys(&item.prompt, &shared.catalogue, &shared.dirs);
    let cached = run.load_cache(&keys);
    let mut data = Map::new();
    data.insert("nodes".to_owned(), json!(cached));
    data.insert("prompt_id".to_owned(), json!(item.prompt_id));
    run.emit.lifecycle("execution_cached", data, false);

    let cached: HashSet<String> = cached.into_iter().collect();
    let mut list = ExecutionList::new(&item.prompt, &shared.catalogue, &item.outputs, &cached);
    while let Some(node_id) = list.next() {
        if cached.contains(&node_id) {
            run.replay_cached(&node_id, &keys);
            continue;
        }
        if let Err(stop) = run.execute(&node_id, &keys).await {
            run.report(&node_id, stop);
            return run.finish(false);
        }
    }
    run.emit
        .lifecycle("execution_success", prompt_data(item), false);
    run.finish(true)
}

fn prompt_data(item: &QueueItem) -> Map<String, Value> {
    let mut data = Map::new();
    data.insert("prompt_id".to_owned(), json!(item.prompt_id));
    data
}

impl Run<'_> {
    /// Keeps only this prompt's keys in the cache and preloads the outputs
    /// of cached nodes; returns the cached node ids in prompt order.
    fn load_cache(&mut self, keys: &HashMap<String, String>) -> Vec<String> {
        let mut state = self.shared.state();
        state.cache.retain_keys(&keys.values().collect());
        let mut cached = Vec::new();
        for node_id in self.item.prompt.keys() {
            if let Some(entry) = keys.get(node_id).and_then(|key| state.cache.get(key)) {
                self.results.insert(node_id.clone(), entry.outputs.clone());
                cached.push(node_id.clone());
            }
        }
        cached
    }

    /// A cached output node: `executed` from the cache (only with a client),
    /// then "finished" in `progress_state`; no `executing`.
    fn replay_cached(&mut self, node_id: &str, keys: &HashMap<String, String>) {
        let ui = keys.get(node_id).and_then(|key| {
            self.shared
                .state()
                .cache
                .get(key)
                .and_then(|entry| entry.ui.clone())
        });
        if let (Some(ui), Some(_)) = (ui, &self.emit.client) {
            self.emit.executed(node_id, &ui);
            self.ui.push((node_id.to_owned(), ui));
        }
        self.emit
            .node_state(node_id, json!(1), json!(1), "finished");
        self.executed.push(node_id.to_owned());
    }

    async fn execute(&mut self, node_id: &str, keys: &HashMap<String, String>) -> Result<(), Stop> {
        let class_name = self.class_name(node_id);
        let Some(class) = self.shared.catalogue.get(&class_name).cloned() else {
            return Err(Stop::Failed {
                kind: "KeyError",
                message: format!("'{class_name}'"),
            });
        };
        self.emit
            .node_state(node_id, json!(0.0), json!(1.0), "running");
        self.shared.state().last_node = Some(node_id.to_owned());
        self.emit.executing(node_id);
        self.check_interrupt()?;
        if let Some(failure) = self
            .failure
            .take_if(|failure| failure.node.as_deref().is_none_or(|id| id == node_id))
        {
            return Err(Stop::Failed {
                kind: "RuntimeError",
                message: failure.message,
            });
        }

        let NodeResult { outputs, ui } = nodes::run_node(self, node_id, class.behaviour).await?;
        if let Some(key) = keys.get(node_id) {
            let entry = CachedNode {
                outputs: outputs.clone(),
                ui: ui.clone(),
            };
            self.shared.state().cache.insert(key.clone(), entry);
        }
        self.results.insert(node_id.to_owned(), outputs);
        if let Some(ui) = ui {
            self.emit.executed(node_id, &ui);
            self.ui.push((node_id.to_owned(), ui));
        }
        let (value, max) = match self.emit.reported(node_id) {
            Some((_, max)) if max.is_u64() => (max.clone(), max),
            _ => (json!(1.0), json!(1.0)),
        };
        self.emit.node_state(node_id, value, max, "finished");
        self.executed.push(node_id.to_owned());
        Ok(())
    }

    fn report(&mut self, node_id: &str, stop: Stop) {
        let mut data = prompt_data(self.item);
        data.insert("node_id".to_owned(), json!(node_id));
        data.insert("node_type".to_owned(), json!(self.class_name(node_id)));
        data.insert("executed".to_owned(), json!(self.executed));
        match stop {
            Stop::Interrupted => self.emit.lifecycle("execution_interrupted", data, true),
            Stop::Failed { kind, message } => {
                data.insert(
                    "exception_message".to_owned(),
                    json!(format!("{message}\n")),
                );
                data.insert("exception_type".to_owned(), json!(kind));
                data.insert(
                    "traceback".to_owned(),
                    json!(traceback(&self.class_name(node_id))),
                );
                data.insert("current_inputs".to_owned(), self.current_inputs(node_id));
                let staged = order::staged(
                    &self.item.prompt,
                    &self.shared.catalogue,
                    &self.item.outputs,
                );
                data.insert("current_outputs".to_owned(), json!(staged));
                self.emit.lifecycle("execution_error", data, false);
            }
        }
    }

    fn finish(self, success: bool) -> Finished {
        // A failure aimed at a node that never ran (cached, or after an
        // earlier error) waits for the next prompt.
        if let Some(unfired) = self.failure {
            self.shared.with_knobs(|knobs| {
                knobs.fail_next_execution.get_or_insert(unfired);
            });
        }
        let mut outputs = Map::new();
        let mut meta = Map::new();
        for (node_id, ui) in self.ui {
            meta.insert(
                node_id.clone(),
                json!({"node_id": node_id, "display_node": node_id,
                                                "parent_node": null, "real_node_id": node_id}),
            );
            outputs.insert(node_id, ui);
        }
        Finished {
            success,
            outputs,
            meta,
            messages: self.emit.messages,
        }
    }

    /// Widget values wrapped in lists, as ComfyUI reports them; linked
    /// inputs as a short description instead of a tensor's repr.
    fn current_inputs(&self, node_id: &str) -> Value {
        let inputs = self.item.prompt[node_id]["inputs"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let shown: Map<String, Value> = inputs
            .into_iter()
            .map(|(name, value)| {
                let shown = match link_source(&value) {
                    Some(source) => json!(format!("<output {} of node {source}>", value[1])),
                    None => value,
                };
                (name, json!([shown]))
            })
            .collect();
        Value::Object(shown)
    }

    pub fn class_name(&self, node_id: &str) -> String {
        self.item.prompt[node_id]["class_type"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn check_interrupt(&self) -> Result<(), Stop> {
        if self.shared.interrupt.load(Ordering::SeqCst) {
            Err(Stop::Interrupted)
        } else {
            Ok(())
        }
    }

    /// Simulated work, scaled by `time_scale`, that notices an interrupt
    /// within a few milliseconds.
    pub async fn work(&self, duration: Duration) -> Result<(), Stop> {
        let mut left = self.shared.knobs().scaled(duration);
        while !left.is_zero() {
            self.check_interrupt()?;
            let slice = left.min(Duration::from_millis(10));
            tokio::time::sleep(slice).await;
            left -= slice;
        }
        self.check_interrupt()
    }

    /// The data a linked input receives.
    pub fn linked(&self, node_id: &str, name: &str) -> Option<Data> {
        let link = self.item.prompt[node_id]["inputs"].get(name)?;
        let source = link_source(link)?;
        let slot = usize::try_from(link[1].as_u64()?).ok()?;
        self.results.get(source)?.get(slot).cloned()
    }
}

fn traceback(class_name: &str) -> Vec<String> {
    vec![
        "  File \"comfy-sim/execution.py\", line 1, in execute\n    output_data = await get_output_data(...)\n".to_owned(),
        format!("  File \"comfy-sim/nodes.py\", line 1, in {class_name}.run\n    raise RuntimeError(message)\n"),
    ]
}

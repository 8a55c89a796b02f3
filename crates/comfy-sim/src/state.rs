//! The server's memory: the priority queue, the running prompt, history and
//! the execution cache. Everything a ComfyUI restart forgets lives here.
//!
//! Held behind one `std::sync::Mutex` that is never kept across an `.await`.
//! Whoever changes the queue broadcasts `status` while still holding it, so
//! `queue_remaining` values reach sockets in the order they happened.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value, json};

use crate::exec::cache::Cache;

/// ComfyUI keeps at most this many history entries, dropping the oldest.
const MAX_HISTORY: usize = 10_000;

/// One queued prompt: ComfyUI's queue tuple.
#[derive(Debug)]
pub(crate) struct QueueItem {
    /// As answered to the client: an integer, negative with `front`, or the
    /// float a client supplied.
    pub number: Value,
    pub prompt_id: String,
    pub prompt: Map<String, Value>,
    pub extra_data: Map<String, Value>,
    pub outputs: Vec<String>,
}

impl QueueItem {
    /// `[number, prompt_id, prompt, extra_data, outputs_to_execute]`.
    pub fn to_json(&self) -> Value {
        json!([
            self.number,
            self.prompt_id,
            self.prompt,
            self.extra_data,
            self.outputs
        ])
    }

    pub fn client_id(&self) -> Option<String> {
        self.extra_data
            .get("client_id")
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    fn priority(&self) -> f64 {
        self.number.as_f64().unwrap_or_default()
    }
}

/// Min-heap order on `(number, prompt_id)`, which is how Python's `heapq`
/// compares the tuples ComfyUI pushes.
#[derive(Debug)]
pub(crate) struct Pending(pub Arc<QueueItem>);

impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .0
            .priority()
            .total_cmp(&self.0.priority())
            .then_with(|| other.0.prompt_id.cmp(&self.0.prompt_id))
    }
}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Pending {}

/// Everything a restart forgets, plus the test bookkeeping it keeps.
#[derive(Debug, Default)]
pub(crate) struct SimState {
    pub pending: BinaryHeap<Pending>,
    pub running: Option<Arc<QueueItem>>,
    pub history: Map<String, Value>,
    /// ComfyUI's `self.number`: bumped by every POST without `number`,
    /// accepted or not.
    pub counter: u64,
    pub cache: Cache,
    /// `server.client_id` and `server.last_node_id`: who owns the running
    /// prompt and which node it is in, for the reconnect replay.
    pub current_client: Option<String>,
    pub last_node: Option<String>,
    /// `PreviewImage`'s random `_temp_xxxxx` suffix, one per node id.
    pub temp_suffixes: HashMap<String, String>,
    /// Survives restarts: every prompt id accepted, and every run started.
    pub posted: Vec<String>,
    pub executed: Vec<String>,
    /// Survives restarts: when each run started and ended, for benchmarks.
    pub executions: Vec<Execution>,
    /// Survives restarts: every file `/view` opened to serve, in order.
    pub served: Vec<ServedFile>,
}

/// A file `/view` served, as its query named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedFile {
    pub filename: String,
    pub subfolder: String,
    /// `output`, `temp` or `input`.
    pub file_type: String,
}

/// One prompt's time on the executor: from leaving the queue to its
/// history entry being written (history lag included), which is how long
/// the server was busy with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    /// The prompt that ran.
    pub prompt_id: String,
    /// When the executor took it from the queue.
    pub started: Instant,
    /// When its history entry was written; `None` while it runs, and for
    /// a run a restart cut short.
    pub finished: Option<Instant>,
}

impl SimState {
    pub fn queue_remaining(&self) -> usize {
        self.pending.len() + usize::from(self.running.is_some())
    }

    /// Forgets what a ComfyUI process restart forgets.
    pub fn forget(&mut self) {
        let posted = std::mem::take(&mut self.posted);
        let executed = std::mem::take(&mut self.executed);
        let executions = std::mem::take(&mut self.executions);
        *self = Self {
            posted,
            executed,
            executions,
            ..Self::default()
        };
    }

    pub fn store_history(&mut self, prompt_id: &str, entry: Value) {
        self.history.insert(prompt_id.to_owned(), entry);
        while self.history.len() > MAX_HISTORY {
            let Some(oldest) = self.history.keys().next().cloned() else {
                break;
            };
            self.history.shift_remove(&oldest);
        }
    }

    /// `GET /history` slicing: with `max_items` and no `offset`, the newest
    /// `max_items`; with an offset, from there on.
    pub fn history_page(
        &self,
        max_items: Option<usize>,
        offset: Option<i64>,
    ) -> Map<String, Value> {
        let len = self.history.len();
        let start = match (offset, max_items) {
            (Some(offset), _) if offset >= 0 => usize::try_from(offset).unwrap_or(usize::MAX),
            (_, Some(max)) => len.saturating_sub(max),
            _ => 0,
        };
        self.history
            .iter()
            .skip(start)
            .take(max_items.unwrap_or(usize::MAX))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(number: Value, prompt_id: &str) -> Pending {
        Pending(Arc::new(QueueItem {
            number,
            prompt_id: prompt_id.to_owned(),
            prompt: Map::new(),
            extra_data: Map::new(),
            outputs: vec![],
        }))
    }

    #[test]
    fn lowest_number_pops_first() {
        let mut heap = BinaryHeap::new();
        heap.push(item(json!(3), "c"));
        heap.push(item(json!(-4), "front"));
        heap.push(item(json!(1.5), "b"));
        let order: Vec<String> = std::iter::from_fn(|| heap.pop())
            .map(|p| p.0.prompt_id.clone())
            .collect();
        assert_eq!(order, ["front", "b", "c"]);
    }

    #[test]
    fn history_page_takes_newest_without_offset() {
        let mut state = SimState::default();
        for id in ["a", "b", "c"] {
            state.store_history(id, json!({}));
        }
        let keys = |page: Map<String, Value>| page.keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(state.history_page(Some(1), None)), ["c"]);
        assert_eq!(keys(state.history_page(Some(1), Some(1))), ["b"]);
        assert_eq!(keys(state.history_page(None, None)), ["a", "b", "c"]);
    }
}

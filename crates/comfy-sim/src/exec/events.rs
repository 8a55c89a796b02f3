//! The messages one prompt's execution sends, with ComfyUI's delivery rules.
//!
//! Lifecycle messages (`execution_*`, `executing`, `executed`) go only to the
//! prompt's client and are not sent at all without one; progress, previews,
//! text frames and `execution_interrupted` go to the client, or to every
//! socket when the prompt has no client. `status.messages` in history records
//! the lifecycle messages whether or not anyone received them.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use crate::hub::{self, Preview, PreviewStage};
use crate::shared::Shared;

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

#[derive(Debug)]
pub(crate) struct Emitter<'a> {
    shared: &'a Shared,
    pub prompt_id: String,
    pub client: Option<String>,
    /// `status.messages` for the history entry.
    pub messages: Vec<Value>,
    /// `progress_state` rows of every node that left "pending", in the order
    /// they started.
    states: Vec<(String, Value)>,
}

impl<'a> Emitter<'a> {
    pub fn new(shared: &'a Shared, prompt_id: String, client: Option<String>) -> Self {
        Self {
            shared,
            prompt_id,
            client,
            messages: Vec::new(),
            states: Vec::new(),
        }
    }

    /// ComfyUI's `add_message`: stamps, records for history, and sends to
    /// the client (or to everyone when `broadcast` and there is no client).
    pub fn lifecycle(&mut self, kind: &str, mut data: Map<String, Value>, broadcast: bool) {
        data.insert("timestamp".to_owned(), json!(now_ms()));
        let data = Value::Object(data);
        self.messages.push(json!([kind, data]));
        if self.client.is_some() || broadcast {
            self.shared
                .hub
                .send_json(self.client.as_deref(), kind, data);
        }
    }

    /// A message only the prompt's client receives.
    pub fn to_client(&self, kind: &str, data: Value) {
        if let Some(client) = &self.client {
            self.shared.hub.send_json(Some(client), kind, data);
        }
    }

    pub fn executing(&self, node_id: &str) {
        self.to_client(
            "executing",
            json!({"node": node_id, "display_node": node_id,
                                           "prompt_id": self.prompt_id}),
        );
    }

    pub fn executed(&self, node_id: &str, output: &Value) {
        self.to_client(
            "executed",
            json!({"node": node_id, "display_node": node_id,
                                          "output": output, "prompt_id": self.prompt_id}),
        );
    }

    /// Updates one node's row and sends the whole `progress_state`.
    pub fn node_state(&mut self, node_id: &str, value: Value, max: Value, state: &str) {
        let row = json!({
            "value": value, "max": max, "state": state, "node_id": node_id,
            "prompt_id": self.prompt_id, "display_node_id": node_id,
            "parent_node_id": null, "real_node_id": node_id,
        });
        match self.states.iter_mut().find(|(id, _)| id == node_id) {
            Some((_, existing)) => *existing = row,
            None => self.states.push((node_id.to_owned(), row)),
        }
        let nodes: Map<String, Value> = self.states.iter().cloned().collect();
        self.shared.hub.send_json(
            self.client.as_deref(),
            "progress_state",
            json!({"prompt_id": self.prompt_id, "nodes": nodes}),
        );
    }

    /// The last `(value, max)` a node reported, if it reported progress.
    pub fn reported(&self, node_id: &str) -> Option<(Value, Value)> {
        self.states
            .iter()
            .find(|(id, _)| id == node_id)
            .map(|(_, row)| (row["value"].clone(), row["max"].clone()))
    }

    /// One progress hook call: `progress_state`, then the previews and
    /// `progress` in the order ComfyUI sends them.
    pub fn progress(&mut self, node_id: &str, value: u64, max: u64, preview: Option<&Preview>) {
        self.node_state(node_id, json!(value), json!(max), "running");
        let target = self.client.as_deref();
        if let Some(preview) = preview {
            self.shared
                .hub
                .send_preview(target, PreviewStage::BeforeProgress, preview);
        }
        self.shared.hub.send_json(
            target,
            "progress",
            json!({"value": value, "max": max, "prompt_id": self.prompt_id,
                                         "node": node_id}),
        );
        if let Some(preview) = preview {
            self.shared
                .hub
                .send_preview(target, PreviewStage::AfterProgress, preview);
        }
    }

    /// A binary TEXT frame for a node's UI.
    pub fn text(&self, node_id: &str, text: &str) {
        self.shared
            .hub
            .send_binary(self.client.as_deref(), hub::text_frame(node_id, text));
    }

    pub fn preview_metadata(&self, node_id: &str) -> Value {
        json!({"node_id": node_id, "prompt_id": self.prompt_id, "display_node_id": node_id,
               "parent_node_id": null, "real_node_id": node_id})
    }
}

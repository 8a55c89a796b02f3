//! Comparing two transcripts of the same scenario: the message types in order, and the
//! shapes (keys and value kinds) of everything, with ids, timestamps and values aside.
//!
//! Normalisations keep timing out of the verdict:
//! - a message or group of messages repeated back to back counts once (how many progress
//!   ticks happen before an interrupt depends on the clock);
//! - `status` broadcasts are left out of the order, except the one that must come between
//!   the run's last message and `executing {node: null}`: ComfyUI sends them from the
//!   HTTP handler as the queue changes, so where they land among execution messages is a
//!   race even on the real server;
//! - numbers are just numbers (Python sends `1.0` where a Rust server may send `1`), and
//!   arrays of scalars are just arrays (`execution_cached` lists whatever was cached).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::scenarios::Transcript;

/// The websocket message kinds in order, repeats collapsed: `status`, `executing`, ...,
/// and `binary:N` for a frame of event type N.
pub fn message_sequence(transcript: &Transcript) -> Vec<String> {
    let kinds: Vec<String> = transcript.ws.iter().map(entry_kind).collect();
    let mut kept = Vec::new();
    for (index, kind) in kinds.iter().enumerate() {
        let before_the_end = kinds.get(index + 1).is_some_and(|next| next == "executing")
            && transcript
                .ws
                .get(index + 1)
                .is_some_and(|next| next.pointer("/text/data/node").is_some_and(Value::is_null));
        if kind != "status" || before_the_end {
            kept.push(kind.clone());
        }
    }
    collapse_repeats(kept)
}

fn entry_kind(entry: &Value) -> String {
    if let Some(text) = entry.get("text") {
        return text
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned();
    }
    let event_type = entry
        .pointer("/binary/event_type")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    format!("binary:{event_type}")
}

/// Removes every block of up to four items that repeats the block just before it.
pub fn collapse_repeats(mut items: Vec<String>) -> Vec<String> {
    loop {
        let before = items.len();
        for block in 1..=4 {
            let mut index = block;
            while index + block <= items.len() {
                if items[index - block..index] == items[index..index + block] {
                    items.drain(index..index + block);
                } else {
                    index += 1;
                }
            }
        }
        if items.len() == before {
            return items;
        }
    }
}

/// The shape of a JSON value: objects keep their keys, arrays the set of their items'
/// shapes, and scalars become their kind.
pub fn shape(value: &Value) -> Value {
    match value {
        Value::Null => Value::from("null"),
        Value::Bool(_) => Value::from("bool"),
        Value::Number(_) => Value::from("number"),
        Value::String(_) => Value::from("string"),
        Value::Array(items)
            if items
                .iter()
                .all(|item| !item.is_object() && !item.is_array()) =>
        {
            Value::from("array")
        }
        Value::Array(items) => {
            let shapes: BTreeSet<String> =
                items.iter().map(|item| shape(item).to_string()).collect();
            Value::Array(shapes.into_iter().map(Value::from).collect())
        }
        Value::Object(fields) => {
            // Sorted keys: key order follows execution order, which is not the contract.
            let sorted: BTreeMap<&String, Value> = fields
                .iter()
                .map(|(key, value)| (key, shape(value)))
                .collect();
            Value::Object(
                sorted
                    .into_iter()
                    .map(|(key, value)| (key.clone(), value))
                    .collect(),
            )
        }
    }
}

/// For each message type, the set of shapes its messages had.
pub fn message_shapes(transcript: &Transcript) -> BTreeMap<String, BTreeSet<String>> {
    let mut shapes: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for entry in &transcript.ws {
        if let Some(text) = entry.get("text") {
            let kind = entry_kind(entry);
            let shown = shape(&without_node_keys(&kind, text)).to_string();
            shapes.entry(kind).or_default().insert(shown);
        }
    }
    shapes
}

/// `progress_state` keys its nodes by id, and which nodes it lists depends on the order
/// independent output nodes happened to run in: only the entries' shapes are compared.
fn without_node_keys(kind: &str, message: &Value) -> Value {
    let mut message = message.clone();
    if kind == "progress_state"
        && let Some(nodes) = message.pointer_mut("/data/nodes")
        && let Some(entries) = nodes.as_object()
    {
        *nodes = Value::Array(entries.values().cloned().collect());
    }
    message
}

/// HTTP exchanges as `(method path, status, response shape)`, with ids in paths hidden.
pub fn http_shapes(transcript: &Transcript) -> Vec<(String, u64, String)> {
    transcript
        .http
        .iter()
        .map(|exchange| {
            let path = exchange["path"].as_str().unwrap_or_default();
            let route = match path.split_once('/') {
                Some(("history", _)) => "history/{id}".to_owned(),
                _ => path.to_owned(),
            };
            (
                format!(
                    "{} {route}",
                    exchange["method"].as_str().unwrap_or_default()
                ),
                exchange["status"].as_u64().unwrap_or_default(),
                if route == "history/{id}" {
                    history_body_shape(&exchange["response"])
                } else {
                    shape(&exchange["response"]).to_string()
                },
            )
        })
        .collect()
}

/// History bodies as shapes, with the prompt-id key hidden.
pub fn history_shapes(transcript: &Transcript) -> Vec<String> {
    transcript.history.iter().map(history_body_shape).collect()
}

/// A `/history/{id}` body's shape with the prompt-id key left out.
fn history_body_shape(body: &Value) -> String {
    let entries: Vec<Value> = body
        .as_object()
        .map(|map| map.values().cloned().collect())
        .unwrap_or_default();
    entries
        .iter()
        .map(|entry| shape(entry).to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Every difference between two transcripts of one scenario, in words; empty when they
/// conform.
pub fn differences(real: &Transcript, simulated: &Transcript) -> Vec<String> {
    let mut found = Vec::new();
    let (real_sequence, sim_sequence) = (message_sequence(real), message_sequence(simulated));
    if real_sequence != sim_sequence {
        found.push(format!(
            "message order differs:\n  real: {real_sequence:?}\n  sim:  {sim_sequence:?}"
        ));
    }
    let (real_shapes, sim_shapes) = (message_shapes(real), message_shapes(simulated));
    for (kind, shapes) in &real_shapes {
        match sim_shapes.get(kind) {
            Some(sim) if sim == shapes => {}
            Some(sim) => found.push(format!(
                "{kind} shapes differ:\n  real: {shapes:?}\n  sim:  {sim:?}"
            )),
            None => found.push(format!("{kind} never sent by the simulator")),
        }
    }
    let (real_http, sim_http) = (http_shapes(real), http_shapes(simulated));
    if real_http != sim_http {
        found.push(format!(
            "http exchanges differ:\n  real: {real_http:?}\n  sim:  {sim_http:?}"
        ));
    }
    let (real_history, sim_history) = (history_shapes(real), history_shapes(simulated));
    if real_history != sim_history {
        found.push(format!(
            "history differs:\n  real: {real_history:?}\n  sim:  {sim_history:?}"
        ));
    }
    found
}

/// Reads a recorded transcript back from its JSON document.
pub fn from_json(document: &Value) -> Transcript {
    let list = |key: &str| {
        document
            .get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    Transcript {
        scenario: document["scenario"].as_str().unwrap_or_default().to_owned(),
        client_id: document["client_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        http: list("http"),
        ws: list("ws"),
        history: list("history"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|item| (*item).to_owned()).collect()
    }

    #[test]
    fn repeats_of_single_messages_and_groups_collapse() {
        let collapsed = collapse_repeats(strings(&[
            "status", "status", "start", "ps", "p", "ps", "p", "ps", "p", "end",
        ]));
        assert_eq!(collapsed, strings(&["status", "start", "ps", "p", "end"]));
    }

    #[test]
    fn shapes_ignore_values_but_keep_keys() {
        let left = shape(&serde_json::json!({"a": 1, "b": ["x", "y"], "c": null}));
        let right = shape(&serde_json::json!({"a": 2.5, "b": ["z"], "c": null}));
        assert_eq!(left, right);
        let missing = shape(&serde_json::json!({"a": 1, "b": ["x"]}));
        assert_ne!(left, missing);
    }
}

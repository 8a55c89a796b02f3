//! `GET/POST /queue` and `POST /interrupt`.
//!
//! Deleting touches pending prompts only; the running one can be stopped by
//! an interrupt alone. Neither tells the prompt's client anything beyond the
//! `status` broadcast of the new queue length, as in ComfyUI.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{optional_json, truthy};
use crate::shared::Shared;

pub(super) async fn list(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let state = shared.state();
    let running: Vec<Value> = state.running.iter().map(|item| item.to_json()).collect();
    // A copy of the heap's storage, not sorted, like ComfyUI's answer.
    let pending: Vec<Value> = state
        .pending
        .iter()
        .map(|pending| pending.0.to_json())
        .collect();
    Json(json!({"queue_running": running, "queue_pending": pending}))
}

pub(super) async fn change(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let request = match optional_json(&body) {
        Ok(request) => request.unwrap_or(Value::Null),
        Err(not_json) => return not_json.into_response(),
    };
    let mut state = shared.state();
    if truthy(request.get("clear")) {
        state.pending.clear();
        shared.broadcast_status(&state);
    }
    if let Some(ids) = request.get("delete").and_then(Value::as_array) {
        for id in ids.iter().filter_map(Value::as_str) {
            let before = state.pending.len();
            state.pending.retain(|pending| pending.0.prompt_id != id);
            if state.pending.len() != before {
                shared.broadcast_status(&state);
            }
        }
    }
    StatusCode::OK.into_response()
}

pub(super) async fn interrupt(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let request = match optional_json(&body) {
        Ok(request) => request,
        Err(not_json) => return not_json.into_response(),
    };
    let target = request
        .as_ref()
        .and_then(|request| request.get("prompt_id"))
        .and_then(Value::as_str);
    match target {
        Some(prompt_id) => {
            let running = shared
                .state()
                .running
                .as_ref()
                .is_some_and(|item| item.prompt_id == prompt_id);
            if running {
                shared.interrupt.store(true, Ordering::SeqCst);
                tracing::info!(prompt.id = prompt_id, "interrupt requested");
            } else {
                tracing::debug!(
                    prompt.id = prompt_id,
                    "prompt not currently running, skipping interrupt"
                );
            }
        }
        None => {
            shared.interrupt.store(true, Ordering::SeqCst);
            tracing::info!("global interrupt requested");
        }
    }
    StatusCode::OK.into_response()
}

//! The simulator's own routes under `/_sim/`: read and change knobs, restart,
//! drop every socket, and list the prompts posted and run. Not part of
//! ComfyUI's protocol; a client under test must never call them.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::shared::Shared;

pub(super) async fn knobs(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(serde_json::to_value(shared.knobs()).unwrap_or_default())
}

pub(super) async fn set_knobs(
    State(shared): State<Arc<Shared>>,
    Json(patch): Json<Value>,
) -> Response {
    match shared.with_knobs(|knobs| knobs.apply_patch(&patch).map(|()| knobs.clone())) {
        Ok(knobs) => {
            tracing::info!(knobs = %patch, "knobs changed");
            Json(serde_json::to_value(knobs).unwrap_or_default()).into_response()
        }
        Err(error) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"code": "invalid-knobs", "message": error.to_string()})),
        )
            .into_response(),
    }
}

pub(super) async fn restart(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.restart();
    StatusCode::OK
}

pub(super) async fn drop_sockets(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.hub.drop_all();
    tracing::info!("dropped every socket");
    StatusCode::OK
}

pub(super) async fn prompts(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let state = shared.state();
    Json(json!({"posted": state.posted, "executed": state.executed}))
}

/// `{"value": V, "max": M}`: a `progress` message for the running prompt now.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ProgressRequest {
    value: u64,
    max: u64,
}

pub(super) async fn progress(
    State(shared): State<Arc<Shared>>,
    Json(request): Json<ProgressRequest>,
) -> Response {
    match shared.send_progress(request.value, request.max) {
        Some(sent) => Json(json!({"prompt_id": sent.prompt_id, "node": sent.node})).into_response(),
        None => (
            StatusCode::CONFLICT,
            Json(json!({"code": "nothing-running", "message": "no prompt is running"})),
        )
            .into_response(),
    }
}

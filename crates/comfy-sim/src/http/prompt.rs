//! `POST /prompt` (validate and queue) and `GET /prompt` (queue length).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::{internal_error, truthy};
use crate::exec::now_ms;
use crate::pyfmt;
use crate::shared::Shared;
use crate::state::{Pending, QueueItem};
use crate::validate::{self, Rejected};

/// `extra_data` keys ComfyUI keeps out of history and `/queue`.
const SENSITIVE_KEYS: [&str; 2] = ["api_key_comfy_org", "auth_token_comfy_org"];

pub(super) async fn queue_info(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let remaining = shared.state().queue_remaining();
    Json(json!({"exec_info": {"queue_remaining": remaining}}))
}

pub(super) async fn submit(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let stall = shared.knobs().prompt_stall;
    if !stall.is_zero() {
        tokio::time::sleep(stall).await;
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "stalled by the prompt_stall_ms knob",
        )
            .into_response();
    }
    let Some(request) = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.as_object().cloned())
    else {
        return internal_error();
    };
    // The counter moves for every request that does not bring its own
    // number, before validation, so refused prompts use up numbers too.
    let number = match request.get("number") {
        Some(number) => match number
            .as_f64()
            .or_else(|| number.as_str().and_then(|s| s.trim().parse().ok()))
        {
            Some(float) => json!(float),
            None => return internal_error(),
        },
        None => {
            let mut state = shared.state();
            let number = i64::try_from(state.counter).unwrap_or(i64::MAX);
            state.counter += 1;
            json!(if truthy(request.get("front")) {
                -number
            } else {
                number
            })
        }
    };

    let Some(prompt) = request.get("prompt") else {
        return rejected(&Rejected {
            error: json!({"type": "no_prompt", "message": "No prompt provided",
                          "details": "No prompt provided", "extra_info": {}}),
            node_errors: Map::new(),
        });
    };
    let Some(mut prompt) = prompt.as_object().cloned() else {
        return internal_error();
    };
    let prompt_id = request
        .get("prompt_id")
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), pyfmt::str);

    let partial = request
        .get("partial_execution_targets")
        .and_then(Value::as_array);
    let image_exists = |name: &str| {
        shared
            .dirs
            .annotated(name)
            .is_some_and(|path| path.is_file())
    };
    let accepted = match validate::validate(&mut prompt, partial, &shared.catalogue, &image_exists)
    {
        Ok(accepted) => accepted,
        Err(rejection) => {
            tracing::debug!(prompt.id = %prompt_id, error = %rejection.error, "prompt refused");
            return rejected(&rejection);
        }
    };
    if shared.with_knobs(|knobs| std::mem::take(&mut knobs.fail_next_validation)) {
        return rejected(&validate::injected_rejection(&prompt, &accepted.outputs));
    }

    let mut extra_data = request
        .get("extra_data")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if let Some(client_id) = request.get("client_id") {
        extra_data.insert("client_id".to_owned(), client_id.clone());
    }
    for key in SENSITIVE_KEYS {
        extra_data.remove(key);
    }
    extra_data.insert("create_time".to_owned(), json!(now_ms()));

    let item = QueueItem {
        number: number.clone(),
        prompt_id: prompt_id.clone(),
        prompt,
        extra_data,
        outputs: accepted.outputs,
    };
    {
        let mut state = shared.state();
        state.pending.push(Pending(Arc::new(item)));
        state.posted.push(prompt_id.clone());
        shared.broadcast_status(&state);
    }
    shared.work.notify_one();
    tracing::debug!(prompt.id = %prompt_id, "prompt queued");
    Json(json!({"prompt_id": prompt_id, "number": number, "node_errors": accepted.node_errors}))
        .into_response()
}

fn rejected(rejection: &Rejected) -> Response {
    (StatusCode::BAD_REQUEST, Json(rejection.body())).into_response()
}

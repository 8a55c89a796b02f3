//! `GET /history`, `GET /history/{prompt_id}` and `POST /history`.
//!
//! An entry exists only once the executor wrote it, after the lifecycle
//! message and the `history_lag` knob: until then the answer is `{}`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::{internal_error, optional_json, truthy};
use crate::shared::Shared;

pub(super) async fn list(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let parse = |name: &str| query.get(name).map(|value| value.trim().parse::<i64>());
    let max_items = match parse("max_items").transpose() {
        Ok(max_items) => max_items.map(|max| usize::try_from(max).unwrap_or(0)),
        Err(_) => return internal_error(),
    };
    let Ok(offset) = parse("offset").transpose() else {
        return internal_error();
    };
    Json(shared.state().history_page(max_items, offset)).into_response()
}

pub(super) async fn one(
    State(shared): State<Arc<Shared>>,
    Path(prompt_id): Path<String>,
) -> Json<Map<String, Value>> {
    let state = shared.state();
    let mut answer = Map::new();
    if let Some(entry) = state.history.get(&prompt_id) {
        answer.insert(prompt_id, entry.clone());
    }
    Json(answer)
}

pub(super) async fn change(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let request = match optional_json(&body) {
        Ok(request) => request.unwrap_or(Value::Null),
        Err(not_json) => return not_json.into_response(),
    };
    let mut state = shared.state();
    if truthy(request.get("clear")) {
        state.history.clear();
    }
    if let Some(ids) = request.get("delete").and_then(Value::as_array) {
        for id in ids.iter().filter_map(Value::as_str) {
            state.history.shift_remove(id);
        }
    }
    StatusCode::OK.into_response()
}

//! The HTTP surface: ComfyUI's routes, each under `/x` and `/api/x` as the
//! real server registers them, plus the simulator's own `/_sim/*` controls.
//!
//! Handlers answer with ComfyUI's bodies and status codes, including its
//! empty 200 bodies and its 500s for bodies that are not JSON.

mod control;
mod files;
mod history;
mod info;
mod prompt;
mod queue;
mod ws;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use serde_json::Value;

use crate::shared::Shared;

/// ComfyUI's default `--max-upload-size`, which caps every request body.
const MAX_BODY: usize = 100 * 1024 * 1024;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let comfy = [
        ("/prompt", get(prompt::queue_info).post(prompt::submit)),
        ("/queue", get(queue::list).post(queue::change)),
        ("/interrupt", post(queue::interrupt)),
        ("/history", get(history::list).post(history::change)),
        ("/history/{prompt_id}", get(history::one)),
        ("/view", get(files::view)),
        ("/upload/image", post(files::upload)),
        ("/object_info", get(info::object_info)),
        ("/object_info/{class}", get(info::object_info_for)),
        ("/system_stats", get(info::system_stats)),
        ("/features", get(info::features)),
        ("/ws", get(ws::upgrade)),
        // Models are never loaded, so there is nothing to free.
        ("/free", post(|| async { StatusCode::OK })),
    ];
    let mut router = Router::new();
    for (path, route) in comfy {
        router = both_prefixes(router, path, route);
    }
    router
        .route("/_sim/knobs", get(control::knobs).post(control::set_knobs))
        .route("/_sim/restart", post(control::restart))
        .route("/_sim/drop_sockets", post(control::drop_sockets))
        .route("/_sim/prompts", get(control::prompts))
        .route("/_sim/progress", post(control::progress))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(shared)
}

fn both_prefixes(
    router: Router<Arc<Shared>>,
    path: &str,
    route: MethodRouter<Arc<Shared>>,
) -> Router<Arc<Shared>> {
    router
        .route(path, route.clone())
        .route(&format!("/api{path}"), route)
}

/// A JSON body that may be absent: ComfyUI reads `await request.json()` and
/// fails with a 500 on anything that is not JSON.
fn optional_json(body: &[u8]) -> Result<Option<Value>, NotJson> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body).map(Some).map_err(|_| NotJson)
}

/// A request body that should have been JSON; answered with a 500.
#[derive(Debug)]
struct NotJson;

impl IntoResponse for NotJson {
    fn into_response(self) -> Response {
        internal_error()
    }
}

fn internal_error() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "500 Internal Server Error\n\nServer got itself in trouble",
    )
        .into_response()
}

/// Python truthiness of a JSON value.
fn truthy(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::Bool(flag)) => *flag,
        Some(Value::Number(number)) => number.as_f64() != Some(0.0),
        Some(Value::String(text)) => !text.is_empty(),
        Some(Value::Array(items)) => !items.is_empty(),
        Some(Value::Object(map)) => !map.is_empty(),
    }
}

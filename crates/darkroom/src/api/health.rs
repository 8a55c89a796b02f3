//! `GET /api/v2/health`: whether Darkroom is up and which backends answer.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;

/// Darkroom is healthy when it serves; each backend is probed with `/system_stats`.
pub async fn health(State(state): State<AppState>) -> Json<Value> {
    let mut backends = Vec::new();
    for backend in state.backends.iter() {
        let name = &backend.id.0;
        let (up, version) = match backend.client.system_stats().await {
            Ok(stats) => (true, stats.system.comfyui_version),
            Err(_) => (false, None),
        };
        backends.push(json!({"name": name, "up": up, "version": version}));
    }
    Json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION"), "backends": backends}))
}

//! `/object_info`, `/system_stats` and `/features`: what a client probes to
//! learn the server's nodes, version and capabilities.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Map, Value, json};

use crate::shared::Shared;

pub(super) async fn object_info(State(shared): State<Arc<Shared>>) -> Json<Map<String, Value>> {
    Json(shared.catalogue.object_info(&shared.dirs.input_files()))
}

/// One class, or `{}` for an unknown one (with status 200, as ComfyUI does).
pub(super) async fn object_info_for(
    State(shared): State<Arc<Shared>>,
    Path(class): Path<String>,
) -> Json<Map<String, Value>> {
    let mut answer = Map::new();
    if let Some(info) = shared
        .catalogue
        .object_info_for(&class, &shared.dirs.input_files())
    {
        answer.insert(class, info);
    }
    Json(answer)
}

pub(super) async fn system_stats(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let version = shared.knobs().comfyui_version;
    Json(json!({
        "system": {
            "os": "posix",
            "ram_total": 25_769_803_776_u64,
            "ram_free": 21_474_836_480_u64,
            "comfyui_version": version,
            "required_frontend_version": "1.32.9",
            "installed_templates_version": null,
            "required_templates_version": "0.7.25",
            "python_version": "3.11.7 (comfy-sim)",
            "pytorch_version": "2.9.1+cpu",
            "embedded_python": false,
            "argv": ["main.py", "--cpu", "--comfy-sim"],
        },
        "devices": [{
            "name": "cpu", "type": "cpu", "index": null,
            "vram_total": 25_769_803_776_u64, "vram_free": 21_474_836_480_u64,
            "torch_vram_total": 25_769_803_776_u64, "torch_vram_free": 21_474_836_480_u64,
        }],
    }))
}

pub(super) async fn features() -> Json<Value> {
    Json(json!({"supports_preview_metadata": true, "max_upload_size": 104_857_600}))
}

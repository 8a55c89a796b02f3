//! Entry points for the fuzz targets in `fuzz/` and their regression tests.
//!
//! Each function takes raw bytes from a fuzzer, feeds them to one parser the way the
//! server does, and panics only when an invariant breaks (an escaping file name, a
//! parameter written where no binding says). Errors returned by the code under test are
//! the expected answer to hostile input and are ignored. Keeping the targets here, rather
//! than in the fuzz crate, lets `tests/fuzz_regressions.rs` replay every crash found with
//! plain `cargo test`.

use std::sync::OnceLock;

use comfy::server_info::ObjectInfo;
use comfy::{Output, PromptId};
use serde_json::{Map, Value};

use crate::api::jobs::validate;
use crate::templates::{Manifest, Template, convert};

/// The `/object_info` of the ComfyUI the project tests against, as conversion and
/// template checks see it in production.
fn object_info() -> &'static ObjectInfo {
    static INFO: OnceLock<ObjectInfo> = OnceLock::new();
    INFO.get_or_init(|| {
        serde_json::from_str(include_str!("../../../fixtures/object_info.json"))
            .expect("fixtures/object_info.json is ComfyUI's /object_info")
    })
}

/// A submitted API-format workflow: parsed, refused if in the UI format, checked node by
/// node (links, cycles) and scanned for asset references, as `POST /api/v2/jobs` does.
pub fn workflow(data: &[u8]) {
    let Ok(Value::Object(graph)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let _ = validate::refuse_ui_format(&graph);
    let _ = validate::problems(&graph, None);
    let _ = validate::asset_references(&graph);
}

/// A UI-format export converted to the API format against the test ComfyUI's nodes; a
/// conversion that succeeds must name only nodes that exist in the export's graph.
pub fn ui_conversion(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if let Ok(conversion) = convert::ui_to_api(&value, object_info()) {
        for node in conversion.graph.values() {
            assert!(
                node.get("class_type").is_some_and(Value::is_string),
                "a converted node without a class_type: {node}"
            );
        }
    }
}

/// A websocket text message, a binary frame and a `/history` entry from a hostile
/// ComfyUI; every file name it reports must be cleaned into one that stays in its folder.
pub fn backend_messages(data: &[u8]) {
    let _ = comfy::frames::decode_frame(bytes::Bytes::copy_from_slice(data));
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = comfy::events::parse_message(text);
    let Ok(entry) = serde_json::from_str::<Value>(text) else {
        return;
    };
    let prompt_id = PromptId::new("fuzz");
    let Ok(entry) = comfy::history::parse_history_entry(&prompt_id, &entry) else {
        return;
    };
    for output in &entry.outputs {
        if let Output::File(file) = output {
            let name = crate::scheduler::display_name(&file.file.filename, "1");
            assert!(!name.is_empty(), "an empty output name");
            assert!(
                !name.contains(['/', '\\']) && name != "." && name != "..",
                "output name {name:?} escapes its folder"
            );
            assert!(
                !name.chars().any(char::is_control),
                "output name {name:?} holds a control character"
            );
        }
    }
}

/// A template (workflow and manifest) filled in with client parameters. The input is a
/// JSON object `{"workflow": ..., "manifest": "TOML", "params": {...}}`; every value
/// injected must land only on an input some parameter is bound to.
pub fn injection(data: &[u8]) {
    let Ok(Value::Object(input)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Some(workflow) = input.get("workflow") else {
        return;
    };
    let manifest = match input.get("manifest").and_then(Value::as_str) {
        Some(text) => match Manifest::from_toml(text) {
            Ok(manifest) => manifest,
            Err(_) => return,
        },
        None => Manifest::default(),
    };
    let params = match input.get("params") {
        Some(Value::Object(params)) => params.clone(),
        _ => Map::new(),
    };
    let Ok(template) = Template::compile("fuzz", workflow, &manifest, Some(object_info())) else {
        return;
    };
    let specs = template.specs(Some(object_info()));
    let Ok(instance) = template.instantiate(&specs, &params) else {
        return;
    };
    let bound = |node_id: &str, name: &str| {
        template.parameters.iter().any(|parameter| {
            parameter
                .bindings
                .iter()
                .any(|binding| binding.node_id == node_id && binding.input == name)
        })
    };
    for (node_id, node) in &instance.graph {
        let before = template.graph.get(node_id);
        let inputs = node.get("inputs").and_then(Value::as_object);
        for (name, value) in inputs.into_iter().flatten() {
            let old = before
                .and_then(|node| node.get("inputs"))
                .and_then(|inputs| inputs.get(name));
            if old != Some(value) {
                assert!(
                    bound(node_id, name),
                    "node {node_id:?} input {name:?} changed without a binding"
                );
            }
        }
    }
    let _ = template.check(&instance.graph, object_info());
}

//! Hand-made workflows in the editor's format, and the recorded schemas they use.

use comfy::server_info::ObjectInfo;
use darkroom::templates::convert;
use serde_json::{Value, json};

pub fn object_info() -> ObjectInfo {
    serde_json::from_str(include_str!("object_info_subset.json"))
        .expect("recorded object_info parses")
}

/// The editor's default text-to-image workflow, as the 0.4 format saves it.
pub fn txt2img() -> Value {
    json!({
        "last_node_id": 9, "last_link_id": 9, "version": 0.4,
        "nodes": [
            {"id": 4, "type": "CheckpointLoaderSimple", "mode": 0, "inputs": [],
             "outputs": [{"name": "MODEL", "type": "MODEL", "links": [1]},
                         {"name": "CLIP", "type": "CLIP", "links": [3, 5]},
                         {"name": "VAE", "type": "VAE", "links": [8]}],
             "widgets_values": ["tiny-sd15.safetensors"]},
            {"id": 6, "type": "CLIPTextEncode", "mode": 0, "title": "Positive",
             "inputs": [{"name": "clip", "type": "CLIP", "link": 3}],
             "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING", "links": [4]}],
             "widgets_values": ["a lighthouse at dusk"]},
            {"id": 7, "type": "CLIPTextEncode", "mode": 0,
             "inputs": [{"name": "clip", "type": "CLIP", "link": 5}],
             "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING", "links": [6]}],
             "widgets_values": ["blurry"]},
            {"id": 5, "type": "EmptyLatentImage", "mode": 0, "inputs": [],
             "outputs": [{"name": "LATENT", "type": "LATENT", "links": [2]}],
             "widgets_values": [768, 512, 1]},
            {"id": 3, "type": "KSampler", "mode": 0,
             "inputs": [{"name": "model", "type": "MODEL", "link": 1},
                        {"name": "positive", "type": "CONDITIONING", "link": 4},
                        {"name": "negative", "type": "CONDITIONING", "link": 6},
                        {"name": "latent_image", "type": "LATENT", "link": 2}],
             "outputs": [{"name": "LATENT", "type": "LATENT", "links": [7]}],
             "widgets_values": [42, "randomize", 20, 7.5, "euler", "normal", 1]},
            {"id": 8, "type": "VAEDecode", "mode": 0,
             "inputs": [{"name": "samples", "type": "LATENT", "link": 7},
                        {"name": "vae", "type": "VAE", "link": 8}],
             "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [9]}]},
            {"id": 9, "type": "SaveImage", "mode": 0,
             "inputs": [{"name": "images", "type": "IMAGE", "link": 9}],
             "outputs": [], "widgets_values": ["darkroom"]}
        ],
        "links": [
            [1, 4, 0, 3, 0, "MODEL"], [2, 5, 0, 3, 3, "LATENT"], [3, 4, 1, 6, 0, "CLIP"],
            [4, 6, 0, 3, 1, "CONDITIONING"], [5, 4, 1, 7, 0, "CLIP"],
            [6, 7, 0, 3, 2, "CONDITIONING"], [7, 3, 0, 8, 0, "LATENT"], [8, 4, 2, 8, 1, "VAE"],
            [9, 8, 0, 9, 0, "IMAGE"]
        ],
        "groups": [], "config": {}, "extra": {}
    })
}

pub fn converted(workflow: &Value) -> convert::Conversion {
    convert::ui_to_api(workflow, &object_info()).expect("the workflow converts")
}

pub fn node_mut(workflow: &mut Value, id: i64) -> &mut Value {
    let nodes = workflow["nodes"].as_array_mut().expect("nodes");
    nodes
        .iter_mut()
        .find(|node| node["id"] == id)
        .expect("node exists")
}

pub fn add_node(workflow: &mut Value, node: Value) {
    workflow["nodes"].as_array_mut().expect("nodes").push(node);
}

/// Points input `slot` of node `target` at a new link from `origin`.
pub fn relink(
    workflow: &mut Value,
    link: i64,
    (origin, origin_slot): (i64, i64),
    (target, slot): (i64, usize),
    kind: &str,
) {
    workflow["links"]
        .as_array_mut()
        .expect("links")
        .push(json!([link, origin, origin_slot, target, slot, kind]));
    node_mut(workflow, target)["inputs"][slot]["link"] = json!(link);
}

/// Removes node `id` (links to it stay in the table, as stale ones do in real files).
pub fn remove_node(workflow: &mut Value, id: i64) {
    workflow["nodes"]
        .as_array_mut()
        .expect("nodes")
        .retain(|node| node["id"] != id);
}

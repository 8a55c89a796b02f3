//! API-format graphs the tests and scenarios post, built from ComfyUI's own nodes and the
//! project's test nodes (`testing/comfy-nodes`).

use serde_json::{Value, json};

/// The standard text-to-image graph on the tiny checkpoint the install script makes.
pub fn txt2img(seed: u64, size: u32, steps: u32) -> Value {
    json!({
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-sd15.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse at dusk", "clip": ["4", 1]},
              "_meta": {"title": "Positive prompt"}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]},
              "_meta": {"title": "Negative prompt"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": size, "height": size, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {
            "seed": seed, "steps": steps, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal",
            "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
            "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "e2e/txt2img"}}
    })
}

/// `DarkroomSteps` with a preview and a text frame per step, shown by `PreviewImage`.
pub fn steps_with_previews(steps: u32, format: &str) -> Value {
    json!({
        "1": {"class_type": "DarkroomSteps", "inputs": {
            "steps": steps, "step_ms": 20, "preview": true, "preview_format": format,
            "progress_text": true, "size": 64, "color": 3_368_652, "always_run": true}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}
    })
}

/// `DarkroomSteps` without previews, running `steps` steps of `step_ms`.
pub fn slow_steps(steps: u32, step_ms: u32) -> Value {
    json!({
        "1": {"class_type": "DarkroomSteps", "inputs": {
            "steps": steps, "step_ms": step_ms, "preview": false, "preview_format": "JPEG",
            "progress_text": false, "size": 16, "color": 0, "always_run": true}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "e2e/steps"}}
    })
}

/// A graph ComfyUI refuses: a value outside its list and one above its maximum.
pub fn invalid() -> Value {
    json!({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 100_000, "height": 64, "batch_size": 1, "color": 0}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "e2e/invalid"}},
        "3": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "missing.safetensors"}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "x", "clip": ["3", 1]}},
        "5": {"class_type": "DarkroomText", "inputs": {"text": ["4", 0]}}
    })
}

/// A solid image saved under `prefix`.
pub fn empty_image_saved(color: u64, prefix: &str) -> Value {
    json!({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": color}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}}
    })
}

/// `DarkroomFail` raising `message`, feeding a `PreviewImage`.
pub fn failing(message: &str) -> Value {
    json!({
        "1": {"class_type": "DarkroomFail", "inputs": {"message": message, "fail": true}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}
    })
}

/// `DarkroomUntilInterrupted`, reporting progress every 50 ms, capped at two minutes.
pub fn until_interrupted() -> Value {
    json!({
        "1": {"class_type": "DarkroomUntilInterrupted", "inputs": {"max_seconds": 120, "heartbeat_ms": 50}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}
    })
}

/// A batch of two solid images shown by `PreviewImage` (temp outputs).
pub fn preview_image(color: u64) -> Value {
    json!({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 32, "batch_size": 2, "color": color}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}
    })
}

/// Three output nodes: `SaveImage`, `DarkroomMultiOutput` (image, text, audio) and
/// `DarkroomText`.
pub fn several_outputs(color: u64) -> Value {
    json!({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": 1, "color": color}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "e2e/several"}},
        "3": {"class_type": "DarkroomMultiOutput", "inputs": {
            "filename_prefix": "e2e/multi", "text": "several outputs", "size": 16, "color": color,
            "audio_ms": 50, "image": ["1", 0]}},
        "4": {"class_type": "DarkroomText", "inputs": {"text": "just text"}}
    })
}

/// Removes `_meta` from every node, as a fixture comparison might want.
pub fn without_meta(mut graph: Value) -> Value {
    if let Some(nodes) = graph.as_object_mut() {
        for node in nodes.values_mut() {
            if let Some(fields) = node.as_object_mut() {
                fields.remove("_meta");
            }
        }
    }
    graph
}

//! The workflows the scenarios run. Each takes a number that changes a value in the
//! graph, so ComfyUI's cache (and the simulator's) never answers a job from an earlier
//! one.

use serde_json::{Value, json};

/// A 64 x 64 solid image, saved: the shortest job that still has an output to store.
pub fn small_image(index: u64) -> Value {
    json!({
        "1": {"class_type": "EmptyImage", "inputs": {
            "width": 64, "height": 64, "batch_size": 1, "color": index % 0x100_0000}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "bench/small"}}
    })
}

/// A job that keeps the backend busy for `step_ms` (one `DarkroomSteps` step), then
/// saves a small image.
pub fn fixed_time(step_ms: u64, index: u64) -> Value {
    json!({
        "1": {"class_type": "DarkroomSteps", "inputs": {
            "steps": 1, "step_ms": step_ms, "preview": false, "preview_format": "JPEG",
            "progress_text": false, "size": 16, "color": index % 0x100_0000, "always_run": true}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "bench/fixed"}}
    })
}

/// A job that runs until it is interrupted (or ten minutes pass), reporting progress
/// only once a minute on its own: the benchmark sends the progress it measures.
pub fn until_interrupted(index: u64) -> Value {
    json!({
        "1": {"class_type": "DarkroomUntilInterrupted", "inputs": {
            "max_seconds": 600 + index % 1000, "heartbeat_ms": 60000}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}
    })
}

/// The standard text-to-image graph on the real ComfyUI's tiny checkpoint.
pub fn real_txt2img(seed: u64) -> Value {
    testkit::graphs::txt2img(seed, 64, 4)
}

//! What a finished run leaves in Darkroom's store: `output` files always, `temp` preview
//! files only when the job asked for them, text outputs as text, the same outputs again
//! for an identical resubmission that ComfyUI answers from its cache, and a file fetched
//! as soon as its node announced it.

#![allow(clippy::unwrap_used)]

mod harness;

use std::time::Duration;

use harness::DarkroomProcess;
use serde_json::{Value, json};

fn preview_graph() -> Value {
    json!({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 2, "color": 7}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
        "3": {"class_type": "DarkroomText", "inputs": {"text": "kept as text"}}
    })
}

async fn submit_with(darkroom: &DarkroomProcess, body: Value) -> String {
    let response = darkroom
        .http
        .post(format!("{}/api/v2/jobs", darkroom.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let job: Value = response.json().await.unwrap();
    job["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn preview_files_are_kept_only_when_asked_and_text_is_an_output() {
    let sim = comfy_sim::Simulator::builder().start().await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let darkroom = DarkroomProcess::start(data.path(), &sim.base_url()).await;

    let plain = submit_with(&darkroom, json!({"workflow": preview_graph()})).await;
    let job = darkroom.wait_final(&plain).await;
    assert_eq!(job["status"], "succeeded");
    let types: Vec<&str> = job["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["text"], "temp previews are not results: {job}");
    assert_eq!(
        darkroom.download_outputs(&job).await,
        [b"kept as text".to_vec()]
    );

    let keeping = submit_with(
        &darkroom,
        json!({"workflow": preview_graph(), "keep_previews": true}),
    )
    .await;
    let job = darkroom.wait_final(&keeping).await;
    let images = job["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["type"] == "image")
        .count();
    assert_eq!(images, 2, "both previews kept on request: {job}");

    let response = darkroom
        .http
        .post(format!("{}/api/v2/jobs", darkroom.base))
        .json(&json!({"workflow": preview_graph(), "keep_previews": "yes"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    assert!(response.text().await.unwrap().contains("keep_previews"));
    sim.shutdown().await;
}

#[tokio::test]
async fn an_identical_resubmission_answered_from_cache_still_has_its_outputs() {
    let sim = comfy_sim::Simulator::builder().start().await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let darkroom = DarkroomProcess::start(data.path(), &sim.base_url()).await;
    let graph = json!({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 99}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "darkroom/cached"}}
    });
    let first = darkroom
        .wait_final(&submit_with(&darkroom, json!({"workflow": graph})).await)
        .await;
    let second = darkroom
        .wait_final(&submit_with(&darkroom, json!({"workflow": graph})).await)
        .await;
    assert_eq!(second["status"], "succeeded");
    let (first_files, second_files) = (
        darkroom.download_outputs(&first).await,
        darkroom.download_outputs(&second).await,
    );
    assert_eq!(second_files.len(), 1, "{second}");
    assert_eq!(
        first_files, second_files,
        "the cached run names the same file"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn an_output_is_fetched_when_its_node_announces_it_not_after_the_run() {
    let sim = comfy_sim::Simulator::builder().start().await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let darkroom = DarkroomProcess::start(data.path(), &sim.base_url()).await;
    // The run ends, but its history is held back: a gateway that fetches files only once
    // the history names them cannot have fetched this one yet.
    sim.hold_history(true);
    let graph = json!({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 4242}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "darkroom/early"}}
    });
    let id = submit_with(&darkroom, json!({"workflow": graph})).await;

    let served = sim
        .wait_for_files_served(1, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(served[0].file_type, "output");
    assert!(served[0].filename.starts_with("early"), "{served:?}");
    // Gone from the backend before the history names it: only the early copy is left.
    let on_backend = sim
        .output_dir()
        .join(&served[0].subfolder)
        .join(&served[0].filename);
    let bytes = std::fs::read(&on_backend).unwrap();
    std::fs::remove_file(&on_backend).unwrap();
    let running = darkroom.job(&id).await;
    assert_eq!(running["status"], "running", "{running}");
    sim.hold_history(false);

    let job = darkroom.wait_final(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(darkroom.download_outputs(&job).await, [bytes]);
    assert_eq!(sim.files_served().len(), 1, "fetched once");
    sim.shutdown().await;
}

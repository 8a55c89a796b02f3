//! What benchmarks ask of the simulator: when each run kept it busy, a
//! `progress` message sent on demand at a known moment, and saved files of
//! any size served without holding them in memory.

mod common;

use std::time::{Duration, Instant};

use common::{Http, Socket, empty_save, start};
use serde_json::json;

/// `DarkroomUntilInterrupted` with a heartbeat too slow to be confused with
/// the messages a test sends itself.
fn quiet_until_interrupted() -> serde_json::Value {
    json!({
        "1": {"class_type": "DarkroomUntilInterrupted", "inputs": {"max_seconds": 60, "heartbeat_ms": 60000}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    })
}

#[tokio::test]
async fn executions_record_when_each_run_started_and_ended() {
    let sim = start().await;
    let http = Http::new(&sim);
    let mut socket = Socket::connect(&sim, "client-e").await;
    let before = Instant::now();
    let first = http.queue(&empty_save("e1"), Some("client-e")).await;
    let second = http.queue(&empty_save("e2"), Some("client-e")).await;
    socket.until_done(&second).await;

    let executions = sim.executions();
    let ids: Vec<&str> = executions
        .iter()
        .map(|run| run.prompt_id.as_str())
        .collect();
    assert_eq!(ids, [first.as_str(), second.as_str()]);
    let (one, two) = (&executions[0], &executions[1]);
    let one_end = one.finished.expect("first run finished");
    let two_end = two.finished.expect("second run finished");
    assert!(before <= one.started && one.started < one_end);
    assert!(one_end <= two.started && two.started < two_end);
    // Two plain nodes of 2 ms each.
    assert!(one_end - one.started >= Duration::from_millis(4));
}

#[tokio::test]
async fn a_run_in_progress_has_no_end_yet() {
    let sim = start().await;
    let http = Http::new(&sim);
    let mut socket = Socket::connect(&sim, "client-r").await;
    let prompt_id = http
        .queue(&quiet_until_interrupted(), Some("client-r"))
        .await;
    socket.until(|frame| frame.kind() == "progress").await;

    let executions = sim.executions();
    assert_eq!(executions.len(), 1);
    assert_eq!(executions[0].prompt_id, prompt_id);
    assert_eq!(executions[0].finished, None);
    http.post("/interrupt", &json!({})).await;
    socket.until_done(&prompt_id).await;
    assert!(sim.executions()[0].finished.is_some());
}

#[tokio::test]
async fn progress_on_demand_reaches_the_client_of_the_running_prompt() {
    let sim = start().await;
    let http = Http::new(&sim);
    assert_eq!(sim.send_progress(1, 2), None, "nothing runs yet");
    let mut socket = Socket::connect(&sim, "client-p").await;
    let prompt_id = http
        .queue(&quiet_until_interrupted(), Some("client-p"))
        .await;
    // The node's own first heartbeat says it is running.
    socket.until(|frame| frame.kind() == "progress").await;

    let before = Instant::now();
    let sent = sim.send_progress(7, 1000).expect("a prompt runs");
    assert_eq!(sent.prompt_id, prompt_id);
    assert_eq!(sent.node, "1");
    assert!(sent.at >= before);
    let frame = socket.next().await;
    assert_eq!(frame.kind(), "progress");
    assert_eq!(
        frame.data(),
        &json!({"value": 7, "max": 1000, "prompt_id": prompt_id, "node": "1"})
    );

    let (status, answer) = http
        .post("/_sim/progress", &json!({"value": 8, "max": 1000}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(answer, json!({"prompt_id": prompt_id, "node": "1"}));
    assert_eq!(socket.next().await.data()["value"], 8);

    http.post("/interrupt", &json!({})).await;
    socket.until_done(&prompt_id).await;
    let (status, answer) = http
        .post("/_sim/progress", &json!({"value": 9, "max": 1000}))
        .await;
    assert_eq!(status, 409);
    assert_eq!(answer["code"], "nothing-running");
    let (status, _) = http.post("/_sim/progress", &json!({"value": 1})).await;
    assert_eq!(status, 422, "max is required");
}

#[tokio::test]
async fn output_bytes_pads_saved_files_and_view_serves_them_whole() {
    let sim = start().await;
    let http = Http::new(&sim);
    let mut socket = Socket::connect(&sim, "client-o").await;
    let size: u64 = 3 * 1024 * 1024 + 17;
    let (status, _) = http
        .post("/_sim/knobs", &json!({"output_bytes": size}))
        .await;
    assert_eq!(status, 200);

    let prompt_id = http.queue(&empty_save("big"), Some("client-o")).await;
    socket.until_done(&prompt_id).await;
    let image = &http.history(&prompt_id).await[&prompt_id]["outputs"]["2"]["images"][0];
    let filename = image["filename"].as_str().unwrap();
    assert_eq!(
        std::fs::metadata(sim.output_dir().join(filename))
            .unwrap()
            .len(),
        size
    );

    let response = reqwest::get(format!(
        "{}/view?filename={filename}&type=output&subfolder=",
        sim.base_url()
    ))
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.content_length(), Some(size));
    let bytes = response.bytes().await.unwrap();
    assert_eq!(bytes.len() as u64, size);
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(&bytes[bytes.len() - 8..bytes.len() - 4], b"IEND");

    // Previews are never padded.
    sim.set_knobs(|knobs| knobs.output_bytes = size);
    let preview = http
        .queue(
            &common::steps_preview(1, 1, false, "JPEG", false),
            Some("client-o"),
        )
        .await;
    socket.until_done(&preview).await;
    let temp = &http.history(&preview).await[&preview]["outputs"]["2"]["images"][0];
    let temp_file = sim.temp_dir().join(temp["filename"].as_str().unwrap());
    assert!(std::fs::metadata(temp_file).unwrap().len() < size);
}

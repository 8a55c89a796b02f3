//! A prompt's life as a client sees it: message order, history, files,
//! caching, and the gap between `execution_success` and history.

mod common;

use std::time::Duration;

use common::{Http, Socket, empty_save, kinds, start};
use serde_json::json;

#[tokio::test]
async fn success_sends_comfyui_messages_in_order() {
    let sim = start().await;
    let http = Http::new(&sim);
    let mut socket = Socket::connect(&sim, "client-a").await;

    let prompt_id = http.queue(&empty_save("e2e/empty"), Some("client-a")).await;
    let frames = socket.until_done(&prompt_id).await;

    let all: Vec<String> = frames.iter().map(|frame| frame.kind()).collect();
    assert_eq!(
        all,
        [
            "status",
            "status",
            "execution_start",
            "execution_cached",
            "progress_state",
            "executing",
            "progress_state",
            "progress_state",
            "executing",
            "executed",
            "progress_state",
            "execution_success",
            "status",
            "executing",
        ]
    );
    let remaining: Vec<&serde_json::Value> = frames
        .iter()
        .filter(|frame| frame.kind() == "status")
        .map(|frame| &frame.data()["status"]["exec_info"]["queue_remaining"])
        .collect();
    assert_eq!(remaining, [&json!(1), &json!(1), &json!(0)]);

    let executed = frames
        .iter()
        .find(|frame| frame.kind() == "executed")
        .unwrap();
    let image = json!({"filename": "empty_00001_.png", "subfolder": "e2e", "type": "output"});
    assert_eq!(executed.data()["output"], json!({"images": [image]}));
    assert_eq!(executed.data()["display_node"], "2");
    let last_state = frames
        .iter()
        .rfind(|frame| frame.kind() == "progress_state")
        .unwrap();
    assert_eq!(last_state.data()["nodes"]["2"]["state"], "finished");
    assert_eq!(last_state.data()["nodes"]["1"]["value"], json!(1.0));
}

#[tokio::test]
async fn history_entry_has_comfyui_shape_and_view_serves_the_file() {
    let sim = start().await;
    let http = Http::new(&sim);
    let mut socket = Socket::connect(&sim, "client-h").await;
    let prompt_id = http.queue(&empty_save("e2e/empty"), Some("client-h")).await;
    socket.until_done(&prompt_id).await;

    let history = http.history(&prompt_id).await;
    let entry = &history[&prompt_id];
    assert_eq!(entry["prompt"][0], 0);
    assert_eq!(entry["prompt"][1], prompt_id);
    assert_eq!(entry["prompt"][2]["2"]["class_type"], "SaveImage");
    assert_eq!(entry["prompt"][3]["client_id"], "client-h");
    assert!(entry["prompt"][3]["create_time"].is_u64());
    assert_eq!(entry["prompt"][4], json!(["2"]));
    assert_eq!(entry["status"]["status_str"], "success");
    assert_eq!(entry["status"]["completed"], true);
    let messages: Vec<&str> = entry["status"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m[0].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        ["execution_start", "execution_cached", "execution_success"]
    );
    assert_eq!(
        entry["meta"]["2"],
        json!({"node_id": "2", "display_node": "2", "parent_node": null, "real_node_id": "2"})
    );

    let (status, png) = http
        .get_bytes("/view?filename=empty_00001_.png&subfolder=e2e&type=output")
        .await;
    assert_eq!(status, 200);
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let (status, _) = http.get_bytes("/view?filename=nope.png").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn history_stays_empty_until_the_lag_has_passed() {
    let sim = start().await;
    sim.set_knobs(|knobs| knobs.history_lag = Duration::from_millis(1500));
    let http = Http::new(&sim);
    let mut socket = Socket::connect(&sim, "client-lag").await;
    let prompt_id = http.queue(&empty_save("lag"), Some("client-lag")).await;

    socket
        .until(|frame| frame.kind() == "execution_success")
        .await;
    assert_eq!(http.history(&prompt_id).await, json!({}));
    let (_, queue) = http.get("/queue").await;
    assert_eq!(
        queue["queue_running"][0][1], prompt_id,
        "still running while history lags"
    );

    socket.until_done(&prompt_id).await;
    assert_eq!(
        http.history(&prompt_id).await[&prompt_id]["status"]["status_str"],
        "success"
    );
}

#[tokio::test]
async fn identical_resubmission_is_answered_from_the_cache() {
    let sim = start().await;
    let http = Http::new(&sim);
    let mut socket = Socket::connect(&sim, "client-c").await;
    let first = http
        .queue(&empty_save("e2e/cached"), Some("client-c"))
        .await;
    socket.until_done(&first).await;

    let second = http
        .queue(&empty_save("e2e/cached"), Some("client-c"))
        .await;
    let frames = socket.until_done(&second).await;

    assert_eq!(
        kinds(&frames),
        [
            "status",
            "status",
            "execution_start",
            "execution_cached",
            "executed",
            "execution_success",
            "status",
            "executing",
        ]
    );
    let cached = frames
        .iter()
        .find(|frame| frame.kind() == "execution_cached")
        .unwrap();
    assert_eq!(cached.data()["nodes"], json!(["1", "2"]));
    let executed = frames
        .iter()
        .find(|frame| frame.kind() == "executed")
        .unwrap();
    assert_eq!(
        executed.data()["output"]["images"][0]["filename"],
        "cached_00001_.png"
    );

    let files = std::fs::read_dir(sim.output_dir().join("e2e"))
        .unwrap()
        .count();
    assert_eq!(files, 1, "a cached run writes no file");
    let history = http.history(&second).await;
    assert_eq!(
        history[&second]["outputs"]["2"]["images"][0]["filename"],
        "cached_00001_.png"
    );
}

#[tokio::test]
async fn prompts_without_client_id_only_broadcast_progress_and_status() {
    let sim = start().await;
    let http = Http::new(&sim);
    let mut observer = Socket::connect(&sim, "observer").await;
    let prompt = common::steps_preview(2, 1, false, "JPEG", false);
    let prompt_id = http.queue(&prompt, None).await;

    let frames = observer
        .until(|frame| {
            frame.kind() == "status" && frame.data()["status"]["exec_info"]["queue_remaining"] == 0
        })
        .await;
    assert_eq!(
        kinds(&frames),
        ["status", "status", "progress", "progress", "status"]
    );
    assert!(frames.iter().any(|frame| frame.kind() == "progress_state"));
    assert_eq!(
        http.history(&prompt_id).await[&prompt_id]["status"]["completed"],
        true
    );
}

#[tokio::test]
async fn every_route_answers_under_the_api_prefix_too() {
    let sim = start().await;
    let http = Http::new(&sim);
    for path in [
        "/prompt",
        "/queue",
        "/history",
        "/system_stats",
        "/features",
        "/object_info/EmptyImage",
    ] {
        let (plain, plain_body) = http.get(path).await;
        let (prefixed, prefixed_body) = http.get(&format!("/api{path}")).await;
        assert_eq!((plain, prefixed), (200, 200), "{path}");
        assert_eq!(plain_body, prefixed_body, "{path}");
    }
    let mut socket = Socket::connect(&sim, "api-client").await;
    let (status, answer) = http
        .post(
            "/api/prompt",
            &json!({"prompt": empty_save("api"), "client_id": "api-client"}),
        )
        .await;
    assert_eq!(status, 200);
    socket
        .until_done(answer["prompt_id"].as_str().unwrap())
        .await;

    let (_, stats) = http.get("/system_stats").await;
    assert_eq!(stats["system"]["comfyui_version"], "0.3.75");
    let (_, unknown) = http.get("/object_info/NoSuchNode").await;
    assert_eq!(unknown, json!({}));
}

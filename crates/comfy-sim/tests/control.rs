//! Stopping and disturbing prompts: interrupt, queue delete, restart,
//! zombie sockets, dropped sockets and reconnects.

mod common;

use std::time::Duration;

use common::{Http, Socket, empty_save, kinds, start, until_interrupted};
use serde_json::json;

#[tokio::test]
async fn targeted_interrupt_stops_the_running_prompt() {
    let sim = start().await;
    let http = Http::new(&sim);
    let mut socket = Socket::connect(&sim, "client-i").await;
    let prompt_id = http.queue(&until_interrupted(), Some("client-i")).await;
    socket.until(|frame| frame.kind() == "progress").await;

    let (status, _) = http
        .post("/interrupt", &json!({"prompt_id": "not-running"}))
        .await;
    assert_eq!(status, 200);
    socket.until(|frame| frame.kind() == "progress").await;

    http.post("/interrupt", &json!({"prompt_id": prompt_id}))
        .await;
    let frames = socket.until_done(&prompt_id).await;
    let tail: Vec<String> = kinds(&frames)
        .into_iter()
        .filter(|kind| kind != "progress")
        .collect();
    assert_eq!(tail, ["execution_interrupted", "status", "executing"]);
    let interrupted = frames
        .iter()
        .find(|frame| frame.kind() == "execution_interrupted")
        .unwrap();
    assert_eq!(interrupted.data()["node_id"], "1");
    assert_eq!(interrupted.data()["node_type"], "DarkroomUntilInterrupted");
    assert_eq!(interrupted.data()["executed"], json!([]));

    let entry = &http.history(&prompt_id).await[&prompt_id];
    assert_eq!(entry["status"]["status_str"], "error");
    assert_eq!(entry["status"]["completed"], false);
    assert_eq!(entry["status"]["messages"][2][0], "execution_interrupted");
    assert_eq!(entry["outputs"], json!({}));
}

#[tokio::test]
async fn queue_delete_removes_only_pending_prompts() {
    let sim = start().await;
    let http = Http::new(&sim);
    let mut socket = Socket::connect(&sim, "client-q").await;
    let running = http.queue(&until_interrupted(), Some("client-q")).await;
    socket.until(|frame| frame.kind() == "progress").await;
    let second = http.queue(&empty_save("b"), Some("client-q")).await;
    let third = http.queue(&empty_save("c"), Some("client-q")).await;

    let (_, queue) = http.get("/queue").await;
    assert_eq!(queue["queue_running"][0].as_array().unwrap().len(), 5);
    assert_eq!(queue["queue_running"][0][1], running);
    assert_eq!(queue["queue_pending"].as_array().unwrap().len(), 2);

    let (status, body) = http
        .post("/queue", &json!({"delete": [second, running]}))
        .await;
    assert_eq!((status, body), (200, serde_json::Value::Null));
    let (_, queue) = http.get("/queue").await;
    assert_eq!(queue["queue_running"][0][1], running);
    assert_eq!(queue["queue_pending"][0][1], third);

    http.post("/queue", &json!({"clear": true})).await;
    http.post("/interrupt", &json!({})).await;
    socket.until_done(&running).await;
    assert_eq!(http.history(&second).await, json!({}));
    assert_eq!(http.history(&third).await, json!({}));
    assert_eq!(sim.executed_prompts(), std::slice::from_ref(&running));
    assert_eq!(sim.posted_prompts(), [running, second, third]);
}

#[tokio::test]
async fn restart_forgets_queue_history_and_cache_and_drops_sockets() {
    let sim = start().await;
    let http = Http::new(&sim);
    let mut socket = Socket::connect(&sim, "client-r").await;
    let done = http.queue(&empty_save("r"), Some("client-r")).await;
    socket.until_done(&done).await;
    let running = http.queue(&until_interrupted(), Some("client-r")).await;
    socket.until(|frame| frame.kind() == "progress").await;

    let (status, _) = http.post("/_sim/restart", &json!({})).await;
    assert_eq!(status, 200);
    assert!(
        socket.try_next(common::PATIENCE).await.is_none(),
        "socket closed by the restart"
    );
    assert_eq!(http.history(&done).await, json!({}));
    assert_eq!(http.history(&running).await, json!({}));
    let (_, queue) = http.get("/queue").await;
    assert_eq!(queue, json!({"queue_running": [], "queue_pending": []}));

    let mut socket = Socket::connect(&sim, "client-r").await;
    let again = http.queue(&empty_save("r"), Some("client-r")).await;
    let frames = socket.until_done(&again).await;
    let executed = frames
        .iter()
        .find(|frame| frame.kind() == "executed")
        .unwrap();
    assert_eq!(
        executed.data()["output"]["images"][0]["filename"],
        "r_00002_.png",
        "cache forgotten"
    );
    let (_, queued) = http
        .post("/prompt", &json!({"prompt": empty_save("n")}))
        .await;
    assert_eq!(queued["number"], 1, "the counter restarts too");
}

#[tokio::test]
async fn zombie_sockets_stay_silent_while_prompts_complete() {
    let sim = start().await;
    let http = Http::new(&sim);
    let mut socket = Socket::connect(&sim, "client-z").await;
    sim.set_knobs(|knobs| knobs.zombie = true);

    let prompt_id = http.queue(&empty_save("z"), Some("client-z")).await;
    sim.wait_for_history(&prompt_id, common::PATIENCE)
        .await
        .unwrap();
    assert_eq!(
        http.history(&prompt_id).await[&prompt_id]["status"]["completed"],
        true
    );
    assert!(
        socket.try_next(Duration::from_millis(200)).await.is_none(),
        "zombie socket said something"
    );

    sim.set_knobs(|knobs| knobs.zombie = false);
    let next = http.queue(&empty_save("z"), Some("client-z")).await;
    let frames = socket.until_done(&next).await;
    assert_eq!(frames[0].kind(), "status");
}

#[tokio::test]
async fn dropped_sockets_can_reconnect_and_get_the_running_node() {
    let sim = start().await;
    let http = Http::new(&sim);
    let mut socket = Socket::connect(&sim, "client-d").await;
    let prompt_id = http.queue(&until_interrupted(), Some("client-d")).await;
    socket.until(|frame| frame.kind() == "progress").await;

    sim.drop_sockets_now();
    assert!(socket.try_next(common::PATIENCE).await.is_none());

    let mut socket = Socket::connect(&sim, "client-d").await;
    let replay = socket.next().await;
    assert_eq!(replay.kind(), "executing");
    assert_eq!(replay.data(), &json!({"node": "1"}));

    http.post("/interrupt", &json!({"prompt_id": prompt_id}))
        .await;
    socket.until_done(&prompt_id).await;
}

#[tokio::test]
async fn a_second_socket_with_the_same_client_id_takes_over() {
    let sim = start().await;
    let http = Http::new(&sim);
    let mut old = Socket::connect(&sim, "client-s").await;
    let mut new = Socket::connect(&sim, "client-s").await;
    let prompt_id = http.queue(&empty_save("s"), Some("client-s")).await;

    new.until_done(&prompt_id).await;
    // Replaced, the old socket is no longer addressed at all, not even by
    // the status broadcasts; it stays open.
    assert!(old.try_next(Duration::from_millis(200)).await.is_none());
}

#[tokio::test]
async fn knobs_are_adjustable_over_http() {
    let sim = start().await;
    let http = Http::new(&sim);
    let (status, knobs) = http
        .post(
            "/_sim/knobs",
            &json!({"history_lag_ms": 5, "comfyui_version": "0.3.60"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(knobs["history_lag_ms"], 5);
    let (_, stats) = http.get("/system_stats").await;
    assert_eq!(stats["system"]["comfyui_version"], "0.3.60");
    let (status, _) = http.post("/_sim/knobs", &json!({"no_such_knob": 1})).await;
    assert_eq!(status, 400);
    let (_, prompts) = http.get("/_sim/prompts").await;
    assert_eq!(prompts, json!({"posted": [], "executed": []}));
}

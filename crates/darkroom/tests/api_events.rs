//! A job's server-sent events: the contract's event names and payloads in the job's order,
//! the end of the stream at the terminal status, resuming with `Last-Event-ID`, live
//! previews and queue positions.

#![allow(
    clippy::unwrap_used,
    reason = "helpers outside #[test] fns panic too: that is the failure message we want"
)]

mod support;

use base64::Engine;
use serde_json::json;
use support::{SseEvent, TestServer, steps_then_save, until_interrupted};

fn names(events: &[SseEvent]) -> Vec<&str> {
    events.iter().map(|event| event.name.as_str()).collect()
}

fn position(events: &[SseEvent], name: &str) -> usize {
    events
        .iter()
        .position(|event| event.name == name)
        .unwrap_or_else(|| panic!("no {name} event in {:?}", names(events)))
}

#[tokio::test]
async fn status_progress_and_output_arrive_in_order_and_the_stream_ends_at_success() {
    let server = TestServer::start().await;
    let job = server.submit(&steps_then_save(5, 20)).await;
    let id = job["id"].as_str().unwrap();

    let events = server.events_to_end(id).await;
    let stored: Vec<u64> = events.iter().filter_map(|event| event.id).collect();
    assert_eq!(
        stored,
        (1..=stored.len() as u64).collect::<Vec<_>>(),
        "ids are the job's sequence, without gaps"
    );
    assert!(
        events
            .iter()
            .all(|event| event.id.is_some() || event.name == "preview")
    );

    let states: Vec<&str> = events
        .iter()
        .filter(|event| event.name == "status")
        .map(|event| event.data["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        ["queued", "dispatched", "running", "collecting", "succeeded"]
    );
    assert_eq!(events[0].data["status"], "queued");
    assert!(position(&events, "progress") < position(&events, "output"));

    let last = events.last().unwrap();
    assert_eq!(
        (last.name.as_str(), &last.data["status"]),
        ("status", &json!("succeeded"))
    );
    let output = &events[position(&events, "output")].data;
    assert_eq!(output["node_id"], "2");
    assert_eq!(output["type"], "image");
    let polled = server.job(id).await;
    assert_eq!(last.data["outputs"], polled["outputs"]);
    // The deadline is the job's, which is reset when the job ends; the rest is the same.
    for field in [
        "id",
        "name",
        "hash",
        "url",
        "size_bytes",
        "content_type",
        "job_id",
    ] {
        assert_eq!(polled["outputs"][0][field], output[field], "{field}");
    }

    let progress = &events[position(&events, "progress")].data;
    assert!(
        progress["value"].is_f64() && progress["nodes_total"] == 2,
        "{progress}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_client_resumes_after_the_last_event_id_it_saw() {
    let server = TestServer::start().await;
    let job = server.submit(&steps_then_save(3, 10)).await;
    let id = job["id"].as_str().unwrap();
    let all = server.events_to_end(id).await;

    let seen = all[2].id.unwrap();
    let resumed = server.events(id, Some(seen)).await.collect_to_end().await;
    assert_eq!(resumed[0].id, Some(seen + 1));
    let expected: Vec<(&str, Option<u64>)> = all[3..]
        .iter()
        .map(|event| (event.name.as_str(), event.id))
        .collect();
    let got: Vec<(&str, Option<u64>)> = resumed
        .iter()
        .map(|event| (event.name.as_str(), event.id))
        .collect();
    assert_eq!(got, expected);
    server.stop().await;
}

#[tokio::test]
async fn a_stream_resumed_past_the_end_still_says_how_the_job_ended() {
    let server = TestServer::start().await;
    let job = server.submit(&steps_then_save(1, 1)).await;
    let id = job["id"].as_str().unwrap();
    let all = server.events_to_end(id).await;

    let last_id = all.last().unwrap().id.unwrap();
    let resumed = server
        .events(id, Some(last_id))
        .await
        .collect_to_end()
        .await;
    assert_eq!(names(&resumed), ["status"]);
    assert_eq!(resumed[0].data["status"], "succeeded");
    assert_eq!(resumed[0].data["outputs"].as_array().unwrap().len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn a_last_event_id_the_job_never_had_replays_from_the_start() {
    let server = TestServer::start().await;
    let job = server.submit(&steps_then_save(1, 1)).await;
    let id = job["id"].as_str().unwrap();
    let all = server.events_to_end(id).await;

    let resumed = server.events(id, Some(999)).await.collect_to_end().await;
    let ids = |events: &[SseEvent]| events.iter().map(|event| event.id).collect::<Vec<_>>();
    assert_eq!(ids(&resumed), ids(&all));
    server.stop().await;
}

#[tokio::test]
async fn a_stream_cut_mid_run_resumes_without_gaps_or_repeats() {
    let server = TestServer::start().await;
    let job = server.submit(&steps_then_save(20, 15)).await;
    let id = job["id"].as_str().unwrap();

    let mut first = server.events(id, None).await;
    let mut seen = Vec::new();
    while let Some(event) = first.next().await {
        let is_progress = event.name == "progress";
        seen.push(event);
        if is_progress {
            break;
        }
    }
    drop(first);

    let last = seen.last().unwrap().id.unwrap();
    seen.extend(server.events(id, Some(last)).await.collect_to_end().await);
    let ids: Vec<u64> = seen.iter().filter_map(|event| event.id).collect();
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>());
    assert_eq!(seen.last().unwrap().data["status"], "succeeded");
    server.stop().await;
}

#[tokio::test]
async fn live_previews_arrive_as_base64_images() {
    let server = TestServer::start().await;
    let mut workflow = steps_then_save(8, 40);
    workflow["1"]["inputs"]["preview"] = json!(true);
    let job = server.submit(&workflow).await;
    let id = job["id"].as_str().unwrap();

    let events = server.events_to_end(id).await;
    let preview = &events[position(&events, "preview")].data;
    assert_eq!(preview["content_type"], "image/jpeg");
    assert_eq!(preview["node_id"], "1");
    let image = base64::engine::general_purpose::STANDARD
        .decode(preview["data_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(&image[..2], [0xFF, 0xD8], "a JPEG");
    server.stop().await;
}

#[tokio::test]
async fn a_waiting_job_hears_its_queue_position_move() {
    let server = TestServer::start().await;
    let long = server.submit(&until_interrupted()).await;
    let long_id = long["id"].as_str().unwrap();
    server.wait_for_status(long_id, "running").await;
    let ahead = server.submit(&steps_then_save(1, 1)).await;
    let behind = server.submit(&steps_then_save(1, 1)).await;
    let behind_id = behind["id"].as_str().unwrap();

    let mut events = server.events(behind_id, None).await;
    let first = events.next().await.unwrap();
    assert_eq!(
        (first.name.as_str(), &first.data["queue_position"]),
        ("status", &json!(1))
    );

    server.cancel(ahead["id"].as_str().unwrap()).await;
    let moved = events.next().await.unwrap();
    assert_eq!(moved.name, "status");
    assert_eq!(moved.data["status"], "queued");
    assert_eq!(moved.data["queue_position"], 0);
    assert_eq!(moved.id, None, "a position update is live only");

    server.cancel(long_id).await;
    server.cancel(behind_id).await;
    server.stop().await;
}

#[tokio::test]
async fn stopping_the_server_ends_open_streams() {
    let server = TestServer::start().await;
    let job = server.submit(&until_interrupted()).await;
    let id = job["id"].as_str().unwrap().to_owned();
    server.wait_for_status(&id, "running").await;
    let mut events = server.events(&id, None).await;
    events.next().await.unwrap();

    server.stop().await;
    while events.next().await.is_some() {}
}

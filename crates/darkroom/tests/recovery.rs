//! The job invariants under faults, with `darkroom serve` as a real process and the
//! simulator as the backend (faults on demand):
//! - killing Darkroom with SIGKILL while jobs are queued, running and being collected,
//!   then starting it again, ends every job final, with outputs, no prompt run twice;
//! - a dropped websocket, a silent websocket and a restarted backend each end with the
//!   job final and correct;
//! - no client ever sees `succeeded` before every output is readable.

#![allow(clippy::unwrap_used)]

mod harness;

use std::time::Duration;

use harness::{DarkroomProcess, steps_graph};
use serde_json::Value;

async fn simulator() -> comfy_sim::SimHandle {
    comfy_sim::Simulator::builder().start().await.unwrap()
}

fn id(job: &Value) -> String {
    job["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn sigkill_at_any_moment_loses_no_job_and_runs_none_twice() {
    let sim = simulator().await;
    // Slow downloads make "being collected" a state the kill can land in.
    sim.set_knobs(|knobs| knobs.view_delay = Duration::from_millis(400));
    let data = tempfile::tempdir().unwrap();

    let darkroom = DarkroomProcess::start(data.path(), &sim.base_url()).await;
    let mut ids = Vec::new();
    for color in 0..5 {
        ids.push(id(&darkroom.submit(steps_graph(4, 60, color)).await));
    }
    // Kill while the first job is being collected: the rest are queued or running.
    darkroom
        .wait_job(&ids[0], "collecting", |job| job["state"] == "collecting")
        .await;
    darkroom.kill_hard().await;

    let darkroom = DarkroomProcess::start(data.path(), &sim.base_url()).await;
    // Kill again while another job runs.
    darkroom
        .wait_job(&ids[2], "running", |job| {
            matches!(
                job["state"].as_str(),
                Some("running" | "collecting" | "succeeded")
            )
        })
        .await;
    darkroom.kill_hard().await;

    let darkroom = DarkroomProcess::start(data.path(), &sim.base_url()).await;
    for job_id in &ids {
        let job = darkroom.wait_final(job_id).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        let files = darkroom.download_outputs(&job).await;
        assert_eq!(files.len(), 1, "{job}");
        assert!(files[0].starts_with(b"\x89PNG"));
    }
    let executed = sim.executed_prompts();
    let mut unique = executed.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        executed.len(),
        "a prompt ran twice: {executed:?}"
    );
    assert_eq!(
        executed.len(),
        ids.len(),
        "each job ran exactly once: {executed:?}"
    );
    sim.shutdown().await;
}

/// A job claimed when Darkroom dies, its prompt id recorded but its post never arrived,
/// goes back to the queue after the restart and runs once, with no lost attempt held
/// against it: the backend never had it.
#[tokio::test]
async fn a_job_claimed_but_never_posted_when_killed_runs_once_without_a_lost_attempt() {
    let sim = simulator().await;
    // Every post hangs, then fails without queueing anything.
    sim.set_knobs(|knobs| knobs.prompt_stall = Duration::from_secs(60));
    let data = tempfile::tempdir().unwrap();

    let darkroom = DarkroomProcess::start(data.path(), &sim.base_url()).await;
    let job_id = id(&darkroom.submit(steps_graph(1, 10, 0)).await);
    // The claim (with the prompt id) commits before the post, which now hangs.
    darkroom
        .wait_job(&job_id, "claimed", |job| job["state"] == "dispatched")
        .await;
    darkroom.kill_hard().await;
    sim.set_knobs(|knobs| knobs.prompt_stall = Duration::ZERO);

    let darkroom = DarkroomProcess::start(data.path(), &sim.base_url()).await;
    let job = darkroom.wait_final(&job_id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let mut events = darkroom.events(&job_id).await;
    let mut logs = Vec::new();
    while let Some((name, data)) = events.next_event().await {
        if name == "log" {
            logs.push(data);
        } else if data["state"] == "succeeded" {
            break;
        }
    }
    let lost = logs.iter().find(|log| {
        log["message"]
            .as_str()
            .is_some_and(|message| message.contains("lost"))
    });
    assert!(
        lost.is_none(),
        "an attempt that never ran was lost: {logs:?}"
    );
    assert_eq!(
        sim.posted_prompts().len(),
        1,
        "posted once, after the restart"
    );
    assert_eq!(sim.executed_prompts().len(), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn succeeded_is_never_seen_before_every_output_is_readable() {
    let sim = simulator().await;
    // ComfyUI announces success before it writes history; make the gap wide.
    sim.set_knobs(|knobs| {
        knobs.history_lag = Duration::from_millis(300);
        knobs.view_delay = Duration::from_millis(100);
    });
    let data = tempfile::tempdir().unwrap();
    let darkroom = DarkroomProcess::start(data.path(), &sim.base_url()).await;

    let graph = serde_json::json!({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": 3, "color": 255}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "darkroom/batch"}},
        "3": {"class_type": "DarkroomText", "inputs": {"text": "and some text"}}
    });
    let job_id = id(&darkroom.submit(graph).await);
    let mut events = darkroom.events(&job_id).await;
    let mut saw_succeeded = false;
    while let Some((name, data)) = tokio::time::timeout(harness::WAIT, events.next_event())
        .await
        .unwrap()
    {
        if name == "status" && data["status"] == "succeeded" {
            // The moment a client hears it, everything must already be there.
            let job = darkroom.job(&job_id).await;
            assert_eq!(job["outputs"].as_array().unwrap().len(), 4, "{job}");
            darkroom.download_outputs(&job).await;
            saw_succeeded = true;
        }
    }
    assert!(saw_succeeded, "the stream ended without succeeded");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_dropped_websocket_mid_run_still_ends_the_job_correctly() {
    let sim = simulator().await;
    let data = tempfile::tempdir().unwrap();
    let darkroom = DarkroomProcess::start(data.path(), &sim.base_url()).await;
    let job_id = id(&darkroom.submit(steps_graph(20, 50, 1)).await);
    darkroom
        .wait_job(&job_id, "running", |job| job["state"] == "running")
        .await;
    sim.drop_sockets_now();
    let job = darkroom.wait_final(&job_id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(darkroom.download_outputs(&job).await.len(), 1);
    assert_eq!(sim.executed_prompts().len(), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_silent_websocket_does_not_leave_the_job_waiting() {
    let sim = simulator().await;
    sim.set_knobs(|knobs| knobs.zombie = true);
    let data = tempfile::tempdir().unwrap();
    let darkroom = DarkroomProcess::start(data.path(), &sim.base_url()).await;
    let job_id = id(&darkroom.submit(steps_graph(3, 20, 2)).await);
    let job = darkroom.wait_final(&job_id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(darkroom.download_outputs(&job).await.len(), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_backend_restart_mid_run_redispatches_the_job_once() {
    let sim = simulator().await;
    let data = tempfile::tempdir().unwrap();
    let darkroom = DarkroomProcess::start(data.path(), &sim.base_url()).await;
    let job_id = id(&darkroom.submit(steps_graph(40, 50, 3)).await);
    darkroom
        .wait_job(&job_id, "running", |job| job["state"] == "running")
        .await;
    sim.restart();
    let job = darkroom.wait_final(&job_id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(darkroom.download_outputs(&job).await.len(), 1);
    let posted = sim.posted_prompts();
    assert_eq!(
        posted.len(),
        2,
        "re-dispatched once, with a new prompt id: {posted:?}"
    );
    assert_ne!(posted[0], posted[1]);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_backend_down_past_the_limit_gives_up_its_run_and_takes_work_again_when_back() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let first = comfy_sim::Simulator::builder()
        .listener(listener)
        .start()
        .await
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let darkroom = DarkroomProcess::start_with(
        data.path(),
        &first.base_url(),
        &[("DARKROOM_BACKEND_LOST_AFTER", "1s")],
    )
    .await;
    let job_id = id(&darkroom.submit(steps_graph(200, 50, 4)).await);
    darkroom
        .wait_job(&job_id, "running", |job| job["state"] == "running")
        .await;

    first.shutdown().await;
    // Given up after the limit: back in the queue for its second attempt.
    darkroom
        .wait_job(&job_id, "requeued", |job| {
            job["state"] == "queued" && job["attempt"] == 1
        })
        .await;

    let listener = tokio::net::TcpListener::bind(address).await.unwrap();
    let second = comfy_sim::Simulator::builder()
        .listener(listener)
        .start()
        .await
        .unwrap();
    second.set_knobs(|knobs| knobs.time_scale = 0.05);
    let job = darkroom.wait_final(&job_id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let later = id(&darkroom.submit(steps_graph(2, 10, 5)).await);
    assert_eq!(darkroom.wait_final(&later).await["status"], "succeeded");
    second.shutdown().await;
}

#[tokio::test]
async fn after_a_clean_stop_the_database_file_alone_holds_every_job() {
    let sim = simulator().await;
    let data = tempfile::tempdir().unwrap();
    let darkroom = DarkroomProcess::start(data.path(), &sim.base_url()).await;
    let job_id = id(&darkroom.submit(steps_graph(2, 10, 5)).await);
    let job = darkroom.wait_final(&job_id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let files = darkroom.download_outputs(&job).await;
    darkroom.stop().await;

    // A backup that copied darkroom.db and nothing beside it.
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(
        data.path().join("darkroom.db"),
        copy.path().join("darkroom.db"),
    )
    .unwrap();
    let darkroom = DarkroomProcess::start(copy.path(), &sim.base_url()).await;
    let restored = darkroom.job(&job_id).await;
    assert_eq!(restored["status"], "succeeded", "{restored}");
    assert_eq!(darkroom.download_outputs(&restored).await, files);
    sim.shutdown().await;
}

//! The jobs resource over HTTP: submit, poll, list, the workflow behind a job, outputs as
//! downloadable assets, and cancellation of queued and running jobs.

#![allow(
    clippy::unwrap_used,
    reason = "helpers outside #[test] fns panic too: that is the failure message we want"
)]

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{TestServer, save_image, steps_then_save, until_interrupted};

#[tokio::test]
async fn a_submitted_job_succeeds_and_its_output_downloads_byte_identical() {
    let server = TestServer::start().await;

    let job = server.submit(&save_image("identical")).await;
    assert_eq!(job["status"], "queued");
    let id = job["id"].as_str().unwrap();
    assert_eq!(job["urls"]["self"], format!("/api/v2/jobs/{id}"));
    assert_eq!(job["urls"]["events"], format!("/api/v2/jobs/{id}/events"));
    assert_eq!(job["urls"]["cancel"], format!("/api/v2/jobs/{id}/cancel"));

    let job = server.wait_final(id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["state"], "succeeded");
    assert!(job["completed_at"].is_string() && job["started_at"].is_string());
    assert!(job["metrics"]["queue_ms"].is_i64() && job["metrics"]["execution_ms"].is_i64());
    assert_eq!(job["queue_position"], Value::Null);
    let outputs = job["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 1, "{job}");
    let output = &outputs[0];
    assert_eq!(output["node_id"], "2");
    assert_eq!(output["type"], "image");
    assert_eq!(output["content_type"], "image/png");
    assert_eq!(output["job_id"], id);

    let name = output["name"].as_str().unwrap();
    let served = server
        .http
        .get(format!("{}/view", server.sim.base_url()))
        .query(&[("filename", name), ("subfolder", ""), ("type", "output")])
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), StatusCode::OK);
    let original = served.bytes().await.unwrap();

    let download = server
        .http
        .get(output["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), StatusCode::OK);
    assert_eq!(download.headers()["content-type"], "image/png");
    assert_eq!(
        download.headers()["content-length"],
        original.len().to_string().as_str()
    );
    let stored = download.bytes().await.unwrap();
    assert_eq!(stored, original);
    assert_eq!(output["size_bytes"], original.len());
    assert_eq!(
        output["hash"],
        format!("blake3:{}", blake3::hash(&original).to_hex())
    );
    server.stop().await;
}

#[tokio::test]
async fn outputs_are_assets_that_cannot_be_deleted_while_their_job_is_kept() {
    let server = TestServer::start().await;
    let job = server.submit(&save_image("held")).await;
    let job = server.wait_final(job["id"].as_str().unwrap()).await;
    let asset_id = job["outputs"][0]["id"].as_str().unwrap();

    let (status, asset) = server.get(&format!("/api/v2/assets/{asset_id}")).await;
    assert_eq!(status, StatusCode::OK, "{asset}");
    assert_eq!(asset["job_id"], job["id"]);
    assert_eq!(asset["hash"], job["outputs"][0]["hash"]);

    let deleted = server
        .http
        .delete(server.url(&format!("/api/v2/assets/{asset_id}")))
        .send()
        .await
        .unwrap();
    let (status, body) = support::read_json(deleted).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "asset_in_use");
    server.stop().await;
}

#[tokio::test]
async fn the_workflow_behind_a_job_is_the_submitted_graph() {
    let server = TestServer::start().await;
    let workflow = save_image("behind");
    let job = server.submit(&workflow).await;
    let id = job["id"].as_str().unwrap();

    let (status, answer) = server.get(&format!("/api/v2/jobs/{id}/workflow")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer, json!({"format": "api", "workflow": workflow}));
    server.wait_final(id).await;
    server.stop().await;
}

#[tokio::test]
async fn unknown_and_malformed_job_ids_are_not_found() {
    let server = TestServer::start().await;
    for path in [
        "/api/v2/jobs/7f3d2c1b-9a8e-4d6f-b012-3c4d5e6f7a8b",
        "/api/v2/jobs/not-a-uuid",
        "/api/v2/jobs/not-a-uuid/workflow",
        "/api/v2/jobs/7f3d2c1b-9a8e-4d6f-b012-3c4d5e6f7a8b/events",
    ] {
        let (status, body) = server.get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["error"]["code"], "not_found", "{path}");
    }
    let (status, body) = server
        .post("/api/v2/jobs/not-a-uuid/cancel", &json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    server.stop().await;
}

#[tokio::test]
async fn the_list_filters_by_status_and_pages_newest_first() {
    let server = TestServer::start().await;
    let mut ids = Vec::new();
    for index in 0..3 {
        let job = server.submit(&save_image(&format!("listed{index}"))).await;
        ids.push(job["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        server.wait_final(id).await;
    }

    let (status, page) = server.get("/api/v2/jobs?status=succeeded&limit=2").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["total"], 3);
    let first: Vec<&str> = page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| job["id"].as_str().unwrap())
        .collect();
    assert_eq!(first, vec![ids[2].as_str(), ids[1].as_str()]);

    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = server
        .get(&format!(
            "/api/v2/jobs?status=succeeded&limit=2&cursor={cursor}"
        ))
        .await;
    assert_eq!(rest["jobs"][0]["id"], ids[0].as_str());
    assert_eq!(rest["next_cursor"], Value::Null);

    let (_, none) = server.get("/api/v2/jobs?status=queued,running").await;
    assert_eq!(none["total"], 0);
    let (status, refused) = server.get("/api/v2/jobs?status=done").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"done\"")
    );
    server.stop().await;
}

#[tokio::test]
async fn canceling_a_queued_job_ends_it_at_once() {
    let server = TestServer::start().await;
    // The simulator runs one prompt at a time: the long run keeps the next job queued.
    let long = server.submit(&until_interrupted()).await;
    let long_id = long["id"].as_str().unwrap();
    server.wait_for_status(long_id, "running").await;

    let waiting = server.submit(&steps_then_save(2, 1)).await;
    let waiting_id = waiting["id"].as_str().unwrap();
    assert_eq!(server.job(waiting_id).await["queue_position"], 0);
    let canceled = server.cancel(waiting_id).await;
    assert_eq!(canceled["status"], "canceled", "{canceled}");
    assert!(canceled["completed_at"].is_string());

    let again = server.cancel(waiting_id).await;
    assert_eq!(again["status"], "canceled");
    server.cancel(long_id).await;
    assert_eq!(server.wait_final(long_id).await["status"], "canceled");
    assert_eq!(
        server.sim.posted_prompts().len(),
        1,
        "the canceled job never reached ComfyUI"
    );
    server.stop().await;
}

#[tokio::test]
async fn canceling_a_running_job_interrupts_it_on_the_backend() {
    let server = TestServer::start().await;
    let job = server.submit(&until_interrupted()).await;
    let id = job["id"].as_str().unwrap();
    server.wait_for_status(id, "running").await;

    let answer = server.cancel(id).await;
    let status = answer["status"].as_str().unwrap();
    assert!(matches!(status, "canceling" | "canceled"), "{answer}");

    let events = server.events_to_end(id).await;
    let last = events.last().unwrap();
    assert_eq!(
        (last.name.as_str(), &last.data["status"]),
        ("status", &json!("canceled"))
    );
    let job = server.job(id).await;
    assert_eq!(job["status"], "canceled");
    assert_eq!(job["outputs"], json!([]));
    server.stop().await;
}

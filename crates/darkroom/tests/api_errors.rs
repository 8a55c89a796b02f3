//! Every bad submission gets the contract's code and a message naming what is wrong, in
//! the error envelope, and the server goes on serving afterwards.

#![allow(
    clippy::unwrap_used,
    reason = "helpers outside #[test] fns panic too: that is the failure message we want"
)]

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Options, TestServer, save_image, until_interrupted};

/// The envelope's code and message, checking the envelope's shape on the way.
fn error_of(body: &Value) -> (&str, &str) {
    let error = &body["error"];
    assert!(
        error.is_object() && body.as_object().unwrap().len() == 1,
        "not an envelope: {body}"
    );
    (
        error["code"].as_str().unwrap(),
        error["message"].as_str().unwrap(),
    )
}

async fn post_raw(server: &TestServer, body: impl Into<reqwest::Body>) -> (StatusCode, Value) {
    let response = server
        .http
        .post(server.url("/api/v2/jobs"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    support::read_json(response).await
}

/// A good job still goes all the way through.
async fn assert_still_serving(server: &TestServer) {
    let job = server.submit(&save_image("still")).await;
    let job = server.wait_final(job["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "succeeded");
}

#[tokio::test]
async fn a_body_that_is_not_json_is_refused_naming_the_syntax_error() {
    let server = TestServer::start().await;
    let (status, body) = post_raw(&server, "{\"workflow\": {").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (code, message) = error_of(&body);
    assert_eq!(code, "invalid_workflow");
    assert!(
        message.contains("not valid JSON") && message.contains("line 1"),
        "{message}"
    );

    let (status, body) = server.post("/api/v2/jobs", &json!({"prompt": {}})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(error_of(&body).1.contains("\"prompt\""), "{body}");
    let (_, body) = server.post("/api/v2/jobs", &json!({"workflow": [1]})).await;
    assert!(error_of(&body).1.contains("got an array"), "{body}");
    let (_, body) = server
        .post("/api/v2/jobs", &json!({"workflow": {}, "webhook_url": "x"}))
        .await;
    assert!(error_of(&body).1.contains("webhook_url"), "{body}");
    assert_still_serving(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn a_huge_body_is_refused_with_413_in_the_envelope() {
    let server = TestServer::start().await;
    let padding = "x".repeat(33 * 1024 * 1024);
    let (status, body) = post_raw(
        &server,
        format!("{{\"workflow\": {{}}, \"pad\": \"{padding}\"}}"),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (code, message) = error_of(&body);
    assert_eq!(code, "payload_too_large");
    assert!(message.contains("32 MiB"), "{message}");
    assert_still_serving(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn an_unknown_node_class_is_named_with_its_node() {
    let server = TestServer::start().await;
    let workflow = json!({"7": {"class_type": "NoSuchNode", "inputs": {}}});
    let (status, body) = server.try_submit(&workflow).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (code, message) = error_of(&body);
    assert_eq!(code, "invalid_workflow");
    assert!(
        message.contains("\"7\"") && message.contains("NoSuchNode"),
        "{message}"
    );
    let problem = &body["error"]["details"]["node_errors"]["7"][0];
    assert_eq!(
        (&problem["field"], &problem["reason"]),
        (&json!("class_type"), &json!("unknown_class_type"))
    );
    assert_still_serving(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn a_link_to_a_missing_node_and_malformed_nodes_are_named() {
    let server = TestServer::start().await;
    let workflow = json!({
        "2": {"class_type": "SaveImage", "inputs": {"images": ["9", 0], "filename_prefix": "x"}},
        "3": {"class_type": "EmptyImage"},
    });
    let (status, body) = server.try_submit(&workflow).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (code, message) = error_of(&body);
    assert_eq!(code, "invalid_workflow");
    assert!(
        message.contains("input \"images\" links to node \"9\""),
        "{message}"
    );
    let errors = &body["error"]["details"]["node_errors"];
    assert_eq!(errors["2"][0]["field"], "images");
    assert_eq!(errors["2"][0]["reason"], "link_to_missing_node");
    assert_eq!(errors["3"][0]["field"], "inputs");

    let (_, body) = server.try_submit(&json!({"1": "EmptyImage"})).await;
    assert_eq!(
        body["error"]["details"]["node_errors"]["1"][0]["reason"],
        "not_an_object"
    );
    assert_still_serving(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn a_graph_that_loops_is_refused_naming_the_input() {
    let server = TestServer::start().await;
    let workflow = json!({
        "3": {"class_type": "ImageInvert", "inputs": {"image": ["4", 0]}},
        "4": {"class_type": "ImageInvert", "inputs": {"image": ["3", 0]}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "loop"}}
    });
    let (status, body) = server.try_submit(&workflow).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (code, message) = error_of(&body);
    assert_eq!(code, "invalid_workflow");
    assert!(
        message.contains("input \"image\"") && message.contains("loop"),
        "{message}"
    );
    let errors = body["error"]["details"]["node_errors"].as_object().unwrap();
    assert!(
        errors
            .values()
            .any(|problems| problems[0]["reason"] == "cycle"),
        "{body}"
    );

    // A long chain is no loop, and walking it must not overflow anything.
    let mut chain = serde_json::Map::new();
    chain.insert("0".into(), json!({"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}}));
    for index in 1..20_000 {
        chain.insert(
            index.to_string(),
            json!({"class_type": "ImageInvert", "inputs": {"image": [(index - 1).to_string(), 0]}}),
        );
    }
    let (status, body) = server.try_submit(&Value::Object(chain)).await;
    assert!(
        !body["error"]["details"]["node_errors"]
            .to_string()
            .contains("cycle"),
        "{status} {body}"
    );
    assert_still_serving(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn a_ui_format_graph_is_refused_pointing_at_templates() {
    let server = TestServer::start().await;
    let ui = json!({"last_node_id": 2, "nodes": [{"id": 1, "type": "EmptyImage"}], "links": [], "version": 0.4});
    for body in [json!({"workflow": ui}), ui.clone()] {
        let (status, answer) = server.post("/api/v2/jobs", &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let (code, message) = error_of(&answer);
        assert_eq!(code, "workflow_format_ui");
        assert!(
            message.contains("API format") && message.contains("templates"),
            "{message}"
        );
    }
    assert_still_serving(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn a_reference_to_a_missing_asset_names_the_input() {
    let server = TestServer::start().await;
    let missing = "9f8a1c0d-2b3e-4f56-8a7b-1c2d3e4f5a6b";
    let workflow = json!({
        "1": {"class_type": "LoadImage", "inputs": {"image": {"__type": "core/ASSET", "info": {"id": missing}}}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    });
    let (status, body) = server.try_submit(&workflow).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (code, message) = error_of(&body);
    assert_eq!(code, "missing_asset");
    assert!(
        message.contains("input \"image\"") && message.contains(missing),
        "{message}"
    );
    assert_eq!(
        body["error"]["details"]["missing_assets"][0]["node_id"],
        "1"
    );
    assert_still_serving(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn an_existing_asset_reference_is_accepted_and_kept_in_the_workflow() {
    let server = TestServer::start().await;
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"not really a png".to_vec()),
        )
        .text("content_type", "application/octet-stream")
        .text("file_path", "input.png");
    let response = server
        .http
        .post(server.url("/api/v2/assets"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let (status, asset) = support::read_json(response).await;
    assert_eq!(status, StatusCode::CREATED, "{asset}");

    let reference = json!({"__type": "core/ASSET", "info": {"id": asset["id"]}});
    let workflow = json!({
        "1": {"class_type": "LoadImage", "inputs": {"image": reference}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    });
    let job = server.submit(&workflow).await;
    let id = job["id"].as_str().unwrap();
    let (_, behind) = server.get(&format!("/api/v2/jobs/{id}/workflow")).await;
    assert_eq!(behind["workflow"]["1"]["inputs"]["image"], reference);
    server.cancel(id).await;
    server.stop().await;
}

#[tokio::test]
async fn an_idempotency_key_is_single_use_and_released_by_a_refused_submission() {
    let server = TestServer::start().await;
    let submit = |key: &'static str, workflow: Value| {
        let request = server
            .http
            .post(server.url("/api/v2/jobs"))
            .header("idempotency-key", key);
        async move {
            support::read_json(
                request
                    .json(&json!({"workflow": workflow}))
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };

    let (status, first) = submit("key-1", save_image("once")).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, again) = submit("key-1", save_image("once")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (code, message) = error_of(&again);
    assert_eq!(code, "idempotency_key_reuse");
    assert!(message.contains("key-1"), "{message}");

    let (status, _) = submit(
        "key-2",
        json!({"1": {"class_type": "NoSuchNode", "inputs": {}}}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, retried) = submit("key-2", save_image("retried")).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "a refused submission does not hold its key: {retried}"
    );
    server.wait_final(first["id"].as_str().unwrap()).await;
    server.wait_final(retried["id"].as_str().unwrap()).await;
    server.stop().await;
}

#[tokio::test]
async fn a_full_queue_answers_429_with_retry_after() {
    let server = TestServer::with(Options {
        queue_limit: 1,
        ..Options::default()
    })
    .await;
    let running = server.submit(&until_interrupted()).await;
    let running_id = running["id"].as_str().unwrap();
    server.wait_for_status(running_id, "running").await;
    let waiting = server.submit(&save_image("waiting")).await;

    let response = server
        .http
        .post(server.url("/api/v2/jobs"))
        .json(&json!({"workflow": save_image("refused")}))
        .send()
        .await
        .unwrap();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().unwrap().to_owned());
    let (status, body) = support::read_json(response).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error_of(&body).0, "queue_full");
    assert!(retry_after.unwrap().parse::<u32>().unwrap() > 0);

    server.cancel(waiting["id"].as_str().unwrap()).await;
    server.cancel(running_id).await;
    server.wait_final(running_id).await;
    assert_still_serving(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_envelope() {
    let server = TestServer::start().await;
    let (status, body) = server.get("/api/v2/nothing-here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_of(&body).0, "not_found");
    let response = server
        .http
        .delete(server.url("/api/v2/jobs"))
        .send()
        .await
        .unwrap();
    let (status, body) = support::read_json(response).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_of(&body).0, "method_not_allowed");
    server.stop().await;
}

#[tokio::test]
async fn every_answer_carries_a_request_id_and_echoes_the_clients() {
    let server = TestServer::start().await;
    let generated = server
        .http
        .get(server.url("/api/v2/nothing"))
        .send()
        .await
        .unwrap();
    let id = generated.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "a uuid: {id}");

    let given = server
        .http
        .get(server.url("/api/v2/jobs"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(given.status(), StatusCode::OK);
    assert_eq!(given.headers()["x-request-id"], "trace-me-42");
    server.stop().await;
}

//! Refused prompts (400 with ComfyUI's error shapes) and failed runs
//! (`execution_error`), both natural and injected by knobs.

mod common;

use comfy_sim::InjectedFailure;
use common::{Http, Socket, empty_save, kinds, start};
use serde_json::{Value, json};

async fn refused(http: &Http, prompt: Value) -> Value {
    let (status, body) = http.post("/prompt", &json!({"prompt": prompt})).await;
    assert_eq!(status, 400, "expected a refusal, got {body}");
    body
}

#[tokio::test]
async fn prompt_level_errors_have_empty_node_errors() {
    let sim = start().await;
    let http = Http::new(&sim);

    let body = refused(
        &http,
        json!({"1": {"class_type": "NoSuchNode", "inputs": {}}}),
    )
    .await;
    assert_eq!(
        body,
        json!({"error": {"type": "invalid_prompt",
        "message": "Cannot execute because node NoSuchNode does not exist.",
        "details": "Node ID '#1'", "extra_info": {}}, "node_errors": {}})
    );

    let body = refused(
        &http,
        json!({"1": {"class_type": "EmptyImage", "inputs": {}}}),
    )
    .await;
    assert_eq!(body["error"]["type"], "prompt_no_outputs");
    assert_eq!(
        refused(&http, json!({})).await["error"]["type"],
        "prompt_no_outputs"
    );

    let (status, body) = http.post("/prompt", &json!({"client_id": "x"})).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"],
        json!({"type": "no_prompt", "message": "No prompt provided",
        "details": "No prompt provided", "extra_info": {}})
    );
}

#[tokio::test]
async fn input_errors_name_the_node_input_and_dependent_outputs() {
    let sim = start().await;
    let http = Http::new(&sim);

    let missing = refused(&http, json!({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "ImageInvert", "inputs": {}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}},
    })).await;
    assert_eq!(missing["error"]["type"], "prompt_outputs_failed_validation");
    assert_eq!(missing["error"]["details"], "");
    assert_eq!(
        missing["node_errors"],
        json!({"2": {"errors": [{"type": "required_input_missing",
        "message": "Required input is missing", "details": "image", "extra_info": {"input_name": "image"}}],
        "dependent_outputs": ["3"], "class_type": "ImageInvert"}})
    );

    let mut small = empty_save("x");
    small["1"]["inputs"]["width"] = json!(0);
    let error = &refused(&http, small).await["node_errors"]["1"]["errors"][0];
    assert_eq!(error["type"], "value_smaller_than_min");
    assert_eq!(error["message"], "Value 0 smaller than min of 1");
    assert_eq!(
        error["extra_info"]["input_config"],
        json!(["INT", {"default": 512, "min": 1, "max": 16384, "step": 1}])
    );

    let mut wrong = empty_save("x");
    wrong["1"]["inputs"]["width"] = json!("abc");
    let error = &refused(&http, wrong).await["node_errors"]["1"]["errors"][0];
    assert_eq!(error["type"], "invalid_input_type");
    assert_eq!(
        error["details"],
        "width, abc, invalid literal for int() with base 10: 'abc'"
    );

    let mut bad_link = empty_save("x");
    bad_link["2"]["inputs"]["images"] = json!(["9", 0]);
    let body = refused(&http, bad_link).await;
    assert_eq!(
        body["error"]["details"],
        "Exception when validating node: '9'"
    );
    assert_eq!(
        body["node_errors"]["2"]["errors"][0]["type"],
        "exception_during_validation"
    );
    assert_eq!(
        body["node_errors"]["2"]["errors"][0]["extra_info"]["exception_type"],
        "KeyError"
    );

    let steps = json!({
        "1": {"class_type": "DarkroomSteps", "inputs": {"steps": 1, "step_ms": 0, "preview": false,
              "preview_format": "GIF", "progress_text": false, "size": 16, "color": 0, "always_run": true}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    });
    let error = &refused(&http, steps).await["node_errors"]["1"]["errors"][0];
    assert_eq!(error["type"], "value_not_in_list");
    assert_eq!(
        error["details"],
        "preview_format: 'GIF' not in ['JPEG', 'PNG']"
    );
}

#[tokio::test]
async fn a_partly_valid_prompt_runs_its_valid_outputs_and_reports_the_rest() {
    let sim = start().await;
    let http = Http::new(&sim);
    let mut prompt = empty_save("partial");
    prompt["3"] = json!({"class_type": "ImageInvert", "inputs": {}});
    prompt["4"] = json!({"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}});

    let (status, body) = http.post("/prompt", &json!({"prompt": prompt})).await;
    assert_eq!(status, 200);
    assert_eq!(body["node_errors"]["3"]["dependent_outputs"], json!(["4"]));
    let prompt_id = body["prompt_id"].as_str().unwrap();
    sim.wait_for_history(prompt_id, common::PATIENCE)
        .await
        .unwrap();
    let entry = &http.history(prompt_id).await[prompt_id];
    assert_eq!(entry["prompt"][4], json!(["2"]));
    assert!(entry["outputs"].get("4").is_none());
}

#[tokio::test]
async fn failing_node_sends_execution_error_with_the_real_shape() {
    let sim = start().await;
    let http = Http::new(&sim);
    let mut socket = Socket::connect(&sim, "client-f").await;
    let prompt = json!({
        "1": {"class_type": "DarkroomFail", "inputs": {"message": "boom requested by test", "fail": true}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    });
    let prompt_id = http.queue(&prompt, Some("client-f")).await;
    let frames = socket.until_done(&prompt_id).await;

    assert_eq!(
        kinds(&frames),
        [
            "status",
            "status",
            "execution_start",
            "execution_cached",
            "executing",
            "execution_error",
            "status",
            "executing"
        ]
    );
    let error = frames
        .iter()
        .find(|frame| frame.kind() == "execution_error")
        .unwrap()
        .data();
    let keys: Vec<&String> = error.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "prompt_id",
            "node_id",
            "node_type",
            "executed",
            "exception_message",
            "exception_type",
            "traceback",
            "current_inputs",
            "current_outputs",
            "timestamp"
        ]
    );
    assert_eq!(error["exception_message"], "boom requested by test\n");
    assert_eq!(error["exception_type"], "RuntimeError");
    assert_eq!(
        error["current_inputs"],
        json!({"message": ["boom requested by test"], "fail": [true]})
    );
    assert_eq!(error["current_outputs"], json!(["2", "1"]));

    let entry = &http.history(&prompt_id).await[&prompt_id];
    assert_eq!(entry["status"]["status_str"], "error");
    assert_eq!(entry["status"]["completed"], false);
    assert_eq!(entry["outputs"], json!({}));
    assert_eq!(entry["meta"], json!({}));
}

#[tokio::test]
async fn knobs_inject_a_refusal_and_a_node_failure_once() {
    let sim = start().await;
    let http = Http::new(&sim);
    let mut socket = Socket::connect(&sim, "client-k").await;

    sim.set_knobs(|knobs| knobs.fail_next_validation = true);
    let body = refused(&http, empty_save("k")).await;
    assert_eq!(
        body["node_errors"]["1"]["errors"][0]["type"],
        "custom_validation_failed"
    );
    assert_eq!(body["node_errors"]["1"]["dependent_outputs"], json!(["2"]));

    let failure = InjectedFailure {
        node: Some("2".to_owned()),
        message: "disk on fire".to_owned(),
    };
    sim.set_knobs(|knobs| knobs.fail_next_execution = Some(failure));
    let without_node_2 = json!({"1": {"class_type": "DarkroomText", "inputs": {"text": "spared"}}});
    let spared = http.queue(&without_node_2, Some("client-k")).await;
    let frames = socket.until_done(&spared).await;
    assert!(
        frames
            .iter()
            .any(|frame| frame.kind() == "execution_success"),
        "no node 2 to fail"
    );

    let failed = http.queue(&empty_save("k"), Some("client-k")).await;
    let frames = socket.until_done(&failed).await;
    let error = frames
        .iter()
        .find(|frame| frame.kind() == "execution_error")
        .unwrap()
        .data();
    assert_eq!(error["node_id"], "2");
    assert_eq!(error["executed"], json!(["1"]));
    assert_eq!(error["exception_message"], "disk on fire\n");

    let fine = http.queue(&empty_save("k"), Some("client-k")).await;
    let frames = socket.until_done(&fine).await;
    assert!(
        frames
            .iter()
            .any(|frame| frame.kind() == "execution_success")
    );
}

#[tokio::test]
async fn saving_outside_the_output_folder_is_an_execution_error() {
    let sim = start().await;
    let http = Http::new(&sim);
    let mut socket = Socket::connect(&sim, "client-e").await;
    let prompt_id = http
        .queue(&empty_save("../../escape"), Some("client-e"))
        .await;
    let frames = socket.until_done(&prompt_id).await;
    let error = frames
        .iter()
        .find(|frame| frame.kind() == "execution_error")
        .unwrap()
        .data();
    assert_eq!(error["exception_type"], "Exception");
    assert_eq!(error["executed"], json!(["1"]));
    let message = error["exception_message"].as_str().unwrap();
    assert!(
        message.starts_with("**** ERROR: Saving image outside the output folder is not allowed.")
    );
}

#[tokio::test]
async fn upstream_errors_list_every_dependent_output_like_comfyui() {
    let sim = start().await;
    let http = Http::new(&sim);
    let body = refused(&http, json!({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 100_000, "height": 64, "batch_size": 1, "color": 0}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "e2e/invalid"}},
        "3": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "missing.safetensors"}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "x", "clip": ["3", 1]}},
        "5": {"class_type": "DarkroomText", "inputs": {"text": ["4", 0]}},
    }))
    .await;

    // Recorded from ComfyUI 0.3.75: node 3 is never reached, because the
    // type mismatch stops validation before it follows the link.
    let mismatch = "text, received_type(CONDITIONING) mismatch input_type(STRING)";
    assert_eq!(
        body,
        json!({
            "error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
                      "details": format!("Return type mismatch between linked nodes: {mismatch}"), "extra_info": {}},
            "node_errors": {
                "1": {"errors": [{"type": "value_bigger_than_max", "message": "Value 100000 bigger than max of 16384",
                                  "details": "width", "extra_info": {"input_name": "width",
                                  "input_config": ["INT", {"default": 512, "min": 1, "max": 16384, "step": 1}],
                                  "received_value": 100_000}}],
                      "dependent_outputs": ["2", "5"], "class_type": "EmptyImage"},
                "5": {"errors": [{"type": "return_type_mismatch", "message": "Return type mismatch between linked nodes",
                                  "details": mismatch, "extra_info": {"input_name": "text",
                                  "input_config": ["STRING", {"default": "hello from darkroom", "multiline": true}],
                                  "received_type": "CONDITIONING", "linked_node": ["4", 0]}}],
                      "dependent_outputs": ["5"], "class_type": "DarkroomText"},
            },
        })
    );
}

#[tokio::test]
async fn a_cyclic_graph_is_refused_and_the_server_survives() {
    let sim = start().await;
    let http = Http::new(&sim);
    let body = refused(&http, json!({
        "1": {"class_type": "ImageInvert", "inputs": {"image": ["3", 0]}},
        "3": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "loop"}},
    }))
    .await;
    assert_eq!(body["error"]["type"], "prompt_outputs_failed_validation");
    let (status, _) = http.get("/queue").await;
    assert_eq!(status, 200);
}

//! The templates API driven over HTTP, in front of the real ComfyUI (its `/object_info`
//! gives the bounds and choices; its runs give the pictures):
//! - a prompt sent as a parameter is, byte for byte, the prompt ComfyUI embedded in the
//!   PNG it saved, and a "random" seed is drawn and recorded;
//! - every kind of bad parameter is refused with 422, naming the parameter;
//! - the model-free templates run on the CPU, image parameters taking uploaded assets;
//! - templates are listed, described, created (into the folder) and reloaded.

#![allow(
    clippy::unwrap_used,
    reason = "helpers outside #[test] fns panic too: that is the failure message we want"
)]

mod support;

use std::path::{Path, PathBuf};

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Options, TestServer};

/// A copy of the shipped templates, so tests that add templates leave the repo alone.
fn shipped_copy() -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../templates");
    for entry in std::fs::read_dir(shipped).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, copy.path().join(path.file_name().unwrap())).unwrap();
    }
    copy
}

/// Darkroom in front of the real ComfyUI; `None` when that tier is skipped.
async fn server(templates: &Path) -> Option<TestServer> {
    let comfy = testkit::RealComfyUi::shared()?;
    let options = Options {
        backend: Some(comfy.base_url()),
        templates_dir: Some(templates.to_path_buf()),
        ..Options::default()
    };
    Some(TestServer::with(options).await)
}

async fn run(server: &TestServer, template: &str, params: Value) -> (StatusCode, Value) {
    let path = format!("/api/templates/{template}/jobs");
    server.post(&path, &json!({ "params": params })).await
}

/// Runs a template that must succeed and returns its outputs' bytes.
async fn run_to_outputs(
    server: &TestServer,
    template: &str,
    params: Value,
) -> (Value, Vec<Vec<u8>>) {
    let (status, job) = run(server, template, params).await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    let job = server.wait_final(job["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let mut files = Vec::new();
    for output in job["outputs"].as_array().unwrap() {
        let response = server
            .http
            .get(output["url"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        files.push(response.bytes().await.unwrap().to_vec());
    }
    (job, files)
}

async fn upload_png(server: &TestServer, bytes: Vec<u8>) -> String {
    server.upload_asset(bytes, "image/png", "input.png").await
}

/// The PNG's chunks as `(type, data)`.
fn png_chunks(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let mut chunks = Vec::new();
    let mut at = 8;
    while at + 8 <= bytes.len() {
        let length = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let kind = String::from_utf8_lossy(&bytes[at + 4..at + 8]).into_owned();
        chunks.push((kind, bytes[at + 8..at + 8 + length].to_vec()));
        at += 12 + length;
    }
    chunks
}

/// The text of the PNG's `tEXt` chunk with `keyword`.
fn png_text(bytes: &[u8], keyword: &str) -> Option<String> {
    png_chunks(bytes).into_iter().find_map(|(kind, data)| {
        let split = data.iter().position(|byte| *byte == 0)?;
        let found = kind == "tEXt" && &data[..split] == keyword.as_bytes();
        // tEXt is Latin-1; ComfyUI writes JSON with non-ASCII escaped, so it is ASCII.
        found.then(|| {
            data[split + 1..]
                .iter()
                .map(|byte| char::from(*byte))
                .collect()
        })
    })
}

fn png_size(bytes: &[u8]) -> (u32, u32) {
    let (_, header) = png_chunks(bytes)
        .into_iter()
        .find(|(kind, _)| kind == "IHDR")
        .unwrap();
    let width = u32::from_be_bytes(header[0..4].try_into().unwrap());
    let height = u32::from_be_bytes(header[4..8].try_into().unwrap());
    (width, height)
}

fn pixel(bytes: &[u8]) -> [u8; 3] {
    image::load_from_memory(bytes)
        .unwrap()
        .to_rgb8()
        .get_pixel(0, 0)
        .0
}

fn close(left: [u8; 3], right: [u8; 3]) -> bool {
    left.iter()
        .zip(right)
        .all(|(left, right)| left.abs_diff(right) <= 1)
}

#[tokio::test]
async fn the_prompt_sent_is_exactly_the_prompt_in_the_png() {
    let templates = shipped_copy();
    let Some(server) = server(templates.path()).await else {
        return;
    };
    let prompt = "a lighthouse at dusk, \"quoted\", ünïcödé ☀ and a\nsecond line {not json}";
    let params = json!({"prompt": prompt, "width": 64, "height": 64, "steps": 2});
    let (job, files) = run_to_outputs(&server, "txt2img-sd15", params).await;
    assert_eq!(files.len(), 1);

    let embedded: Value = serde_json::from_str(&png_text(&files[0], "prompt").unwrap()).unwrap();
    assert_eq!(embedded["6"]["inputs"]["text"], prompt);
    assert_eq!(
        embedded["4"]["inputs"]["ckpt_name"],
        "tiny-sd15.safetensors"
    );

    // The seed was "random" by default: drawn, recorded, and the one that ran.
    let (_, entry) = server
        .get(&format!("/api/history/{}", job["id"].as_str().unwrap()))
        .await;
    let seed = entry["parameters"]["seed"]
        .as_u64()
        .expect("a drawn seed is recorded");
    assert_eq!(embedded["3"]["inputs"]["seed"], seed);
    assert_eq!(entry["template"], "txt2img-sd15");
    assert_eq!(entry["parameters"]["prompt"], prompt);

    let (_, workflow) = server
        .get(&format!(
            "/api/v2/jobs/{}/workflow",
            job["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        workflow["workflow"]["6"]["inputs"]["text"], prompt,
        "the submitted graph is stored"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_template_job_is_answered_like_a_v2_job() {
    let templates = shipped_copy();
    let Some(server) = server(templates.path()).await else {
        return;
    };
    let response = server
        .http
        .post(server.url("/api/templates/solid-color/jobs"))
        .json(&json!({"params": {"width": 8, "height": 8}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let job: Value = response.json().await.unwrap();
    assert_eq!(location, job["urls"]["self"]);
    let fetched = server.job(job["id"].as_str().unwrap()).await;
    let keys = |value: &Value| {
        value
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(&job), keys(&fetched));
    server.wait_final(job["id"].as_str().unwrap()).await;
    server.stop().await;
}

/// `(template, params, parameter named, reason, words the message holds)`.
fn bad_inputs(
    missing_asset: &str,
) -> Vec<(&'static str, Value, &'static str, &'static str, String)> {
    vec![
        ("txt2img-sd15", json!({"promt": "x"}), "promt", "unknown_parameter", "unknown parameter \"promt\"; this template takes \"prompt\"".into()),
        ("txt2img-sd15", json!({"steps": "abc"}), "steps", "wrong_type", "parameter \"steps\" must be an integer between 1 and 150, got \"abc\"".into()),
        ("txt2img-sd15", json!({"steps": 7.5}), "steps", "wrong_type", "must be an integer".into()),
        ("txt2img-sd15", json!({"steps": 0}), "steps", "out_of_bounds", "parameter \"steps\" must be an integer between 1 and 150, got 0".into()),
        ("txt2img-sd15", json!({"cfg": 1000}), "cfg", "out_of_bounds", "parameter \"cfg\" must be a number between 0.0 and 100.0, got 1000".into()),
        ("txt2img-sd15", json!({"prompt": 5}), "prompt", "wrong_type", "parameter \"prompt\" must be a string, got 5".into()),
        ("txt2img-sd15", json!({"sampler_name": "fastest"}), "sampler_name", "not_a_choice", "parameter \"sampler_name\" must be one of \"euler\"".into()),
        ("txt2img-sd15", json!({"checkpoint": "sd3.safetensors"}), "checkpoint", "not_a_choice", "must be one of \"tiny-sd15.safetensors\", got \"sd3.safetensors\"".into()),
        ("txt2img-sd15", json!({"seed": "lucky"}), "seed", "wrong_type", "parameter \"seed\" must be an integer between 0 and 18446744073709551615, or \"random\", got \"lucky\"".into()),
        ("txt2img-sd15", json!({"seed": -1}), "seed", "out_of_bounds", "parameter \"seed\"".into()),
        ("txt2img-sd15", json!({"denoise": 0.5}), "denoise", "unknown_parameter", "unknown parameter \"denoise\"".into()),
        ("img2img-sd15", json!({}), "image", "missing_parameter", "parameter \"image\" is required: the id of an uploaded asset".into()),
        ("img2img-sd15", json!({"image": "photo.png"}), "image", "wrong_type", "parameter \"image\" must be the id of an uploaded asset, got \"photo.png\"".into()),
        ("img2img-sd15", json!({"image": missing_asset}), "image", "missing_asset", format!("parameter \"image\": asset \"{missing_asset}\" does not exist")),
        ("solid-color", json!({"width": 5000}), "width", "out_of_bounds", "parameter \"width\" must be an integer between 1 and 4096, got 5000".into()),
        ("blend-images", json!({"image": missing_asset, "overlay": missing_asset, "mode": "burn"}), "mode", "not_a_choice", "parameter \"mode\" must be one of".into()),
    ]
}

#[tokio::test]
async fn every_kind_of_bad_parameter_is_a_422_naming_it() {
    let templates = shipped_copy();
    let Some(server) = server(templates.path()).await else {
        return;
    };
    let missing_asset = "7f3d2c1b-9a8e-4d6f-b012-3c4d5e6f7a8b";
    for (template, params, parameter, reason, words) in bad_inputs(missing_asset) {
        let (status, body) = run(&server, template, params.clone()).await;
        let case = format!("{template} {params}: {body}");
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{case}");
        let error = &body["error"];
        let expected_code = if reason == "missing_asset" {
            "missing_asset"
        } else {
            "invalid_parameter"
        };
        assert_eq!(error["code"], expected_code, "{case}");
        assert!(
            error["message"].as_str().unwrap().contains(&words),
            "{case}"
        );
        let named: Vec<&Value> = error["details"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|item| item["name"] == parameter)
            .collect();
        assert!(!named.is_empty(), "{case}");
        assert_eq!(named[0]["reason"], reason, "{case}");
    }

    // Several problems at once: all of them, each named.
    let (status, body) = run(
        &server,
        "txt2img-sd15",
        json!({"steps": 0, "cfg": "x", "size": 3}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let names: Vec<&str> = body["error"]["details"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["size", "steps", "cfg"]);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .ends_with("(and 2 more problems)")
    );

    let (status, body) = server
        .post("/api/templates/txt2img-sd15/jobs", &json!({"parms": {}}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_request"))
    );
    let (status, _) = run(&server, "no-such-template", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test]
async fn model_free_templates_run_on_the_cpu_with_uploaded_images() {
    let templates = shipped_copy();
    let Some(server) = server(templates.path()).await else {
        return;
    };

    let (_, files) = run_to_outputs(
        &server,
        "solid-color",
        json!({"width": 16, "height": 8, "color": 0x33_66cc}),
    )
    .await;
    assert_eq!(png_size(&files[0]), (16, 8));
    assert!(close(pixel(&files[0]), [0x33, 0x66, 0xcc]));
    let blue = upload_png(&server, files[0].clone()).await;

    let (_, files) = run_to_outputs(&server, "invert-image", json!({"image": blue})).await;
    assert!(
        close(pixel(&files[0]), [0xcc, 0x99, 0x33]),
        "{:?}",
        pixel(&files[0])
    );

    let (_, files) = run_to_outputs(
        &server,
        "scale-image",
        json!({"image": blue, "scale_by": 2, "method": "nearest-exact"}),
    )
    .await;
    assert_eq!(png_size(&files[0]), (32, 16));

    // An output is an asset too: the red card feeds the blend without an upload.
    let (red_job, _) = run_to_outputs(
        &server,
        "solid-color",
        json!({"width": 4, "height": 4, "color": 0xff_0000}),
    )
    .await;
    let red = red_job["outputs"][0]["id"].as_str().unwrap();
    let (_, files) = run_to_outputs(
        &server,
        "blend-images",
        json!({"image": blue, "overlay": red, "opacity": 1.0}),
    )
    .await;
    assert_eq!(
        png_size(&files[0]),
        (16, 8),
        "the overlay takes the base's size"
    );
    assert!(
        close(pixel(&files[0]), [0xff, 0, 0]),
        "{:?}",
        pixel(&files[0])
    );
    server.stop().await;
}

#[tokio::test]
async fn image_to_image_redraws_an_uploaded_picture() {
    let templates = shipped_copy();
    let Some(server) = server(templates.path()).await else {
        return;
    };
    let (card, _) =
        run_to_outputs(&server, "solid-color", json!({"width": 64, "height": 64})).await;
    let picture = card["outputs"][0]["id"].as_str().unwrap();
    let params = json!({"image": picture, "prompt": "in watercolour", "steps": 2, "seed": 7});
    let (_, files) = run_to_outputs(&server, "img2img-sd15", params).await;
    assert_eq!(png_size(&files[0]), (64, 64));

    let embedded: Value = serde_json::from_str(&png_text(&files[0], "prompt").unwrap()).unwrap();
    assert_eq!(embedded["6"]["inputs"]["text"], "in watercolour");
    assert_eq!(embedded["3"]["inputs"]["seed"], 7);
    // The asset reached ComfyUI as an uploaded input file.
    let loaded = embedded["10"]["inputs"]["image"].as_str().unwrap();
    assert!(
        loaded.starts_with("darkroom-") && loaded.ends_with(".png"),
        "{loaded}"
    );
    server.stop().await;
}

#[tokio::test]
async fn templates_are_listed_and_described_with_their_schema() {
    let templates = shipped_copy();
    let Some(server) = server(templates.path()).await else {
        return;
    };
    let (status, list) = server.get("/api/templates").await;
    assert_eq!(status, StatusCode::OK);
    let listed = list["templates"].as_array().unwrap();
    for name in [
        "txt2img-sd15",
        "txt2img-sdxl",
        "img2img-sd15",
        "upscale-model",
        "solid-color",
        "invert-image",
        "scale-image",
        "blend-images",
    ] {
        let entry = listed
            .iter()
            .find(|entry| entry["name"] == name)
            .unwrap_or_else(|| panic!("{name} not listed"));
        assert!(entry["error"].is_null(), "{entry}");
    }

    let (status, template) = server.get("/api/templates/txt2img-sd15").await;
    assert_eq!(status, StatusCode::OK);
    let schema = &template["schema"];
    assert_eq!(schema["additionalProperties"], false);
    let properties = &schema["properties"];
    assert_eq!(properties["prompt"]["type"], "string");
    assert_eq!(properties["prompt"]["x-darkroom-multiline"], true);
    assert_eq!(
        properties["steps"]["maximum"], 150,
        "the manifest narrows object_info's 10000"
    );
    assert_eq!(properties["steps"]["minimum"], 1);
    assert_eq!(properties["seed"]["x-darkroom-type"], "seed");
    assert_eq!(properties["seed"]["default"], "random");
    assert!(
        properties["sampler_name"]["enum"]
            .as_array()
            .unwrap()
            .contains(&json!("euler"))
    );
    // The manifest prefers v1-5-pruned-emaonly; the test backend only has the tiny one.
    assert_eq!(properties["checkpoint"]["default"], "tiny-sd15.safetensors");
    assert_eq!(
        properties["checkpoint"]["enum"],
        json!(["tiny-sd15.safetensors"])
    );
    assert!(properties.get("denoise").is_none());
    assert_eq!(template["hidden"], json!(["denoise"]));
    let prompt = template["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|parameter| parameter["name"] == "prompt")
        .unwrap();
    assert_eq!(prompt["bindings"], json!(["6.text"]));

    let (_, image) = server.get("/api/templates/img2img-sd15").await;
    assert_eq!(
        image["schema"]["properties"]["image"]["x-darkroom-type"],
        "image"
    );
    assert!(
        image["schema"]["required"]
            .as_array()
            .unwrap()
            .contains(&json!("image"))
    );
    server.stop().await;
}

fn invert_workflow() -> Value {
    json!({
        "1": {"class_type": "LoadImage", "inputs": {"image": "x.png"}, "_meta": {"title": "picture"}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "mine"}}
    })
}

#[tokio::test]
async fn templates_are_created_into_the_folder_and_reloaded() {
    let templates = shipped_copy();
    let Some(server) = server(templates.path()).await else {
        return;
    };
    let body = json!({
        "name": "my-invert",
        "workflow": invert_workflow(),
        "manifest": {"title": "Mine", "parameters": {"prefix": {"bind": "3.filename_prefix"}}},
    });
    let (status, created) = server.post("/api/templates", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["title"], "Mine");
    let names: Vec<&str> = created["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|parameter| parameter["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["picture", "prefix"],
        "a node titled \"picture\" binds it"
    );
    assert!(
        templates.path().join("my-invert.json").exists()
            && templates.path().join("my-invert.toml").exists()
    );

    let (status, again) = server.post("/api/templates", &body).await;
    assert_eq!(
        (status, again["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("template_exists"))
    );

    let bad = json!({"name": "bad", "workflow": invert_workflow(), "manifest": {"parameters": {"steps": {"bind": "9.steps"}}}});
    let (status, refused) = server.post("/api/templates", &bad).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_template"))
    );
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("binding \"9.steps\" of parameter \"steps\""),
        "{message}"
    );
    assert!(!templates.path().join("bad.json").exists());

    let (status, named) = server
        .post(
            "/api/templates",
            &json!({"name": "../up", "workflow": invert_workflow()}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{named}");

    // Files written beside the server are picked up by a reload, broken ones listed so.
    std::fs::write(templates.path().join("broken.json"), "{ not json").unwrap();
    std::fs::write(
        templates.path().join("copied.json"),
        invert_workflow().to_string(),
    )
    .unwrap();
    let (status, reloaded) = server.post("/api/templates/reload", &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reloaded["failed"], 1, "{reloaded}");
    let (_, list) = server.get("/api/templates").await;
    let entry = |name: &str| {
        list["templates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|entry| entry["name"] == name)
            .cloned()
            .unwrap()
    };
    assert!(entry("copied")["error"].is_null());
    assert!(
        entry("my-invert")["error"].is_null(),
        "a created template survives a reload"
    );
    assert!(
        entry("broken")["error"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );
    let (status, _) = server.get("/api/templates/broken").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    server.stop().await;
}

/// `EmptyImage -> SaveImage` as the editor saves it.
fn ui_workflow() -> Value {
    json!({
        "last_node_id": 2, "last_link_id": 1,
        "nodes": [
            {"id": 1, "type": "EmptyImage", "pos": [0, 0], "size": [315, 130], "flags": {}, "order": 0, "mode": 0,
             "inputs": [], "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1], "slot_index": 0}],
             "title": "Card", "properties": {"Node name for S&R": "EmptyImage"}, "widgets_values": [24, 12, 1, 65280]},
            {"id": 2, "type": "SaveImage", "pos": [400, 0], "size": [315, 270], "flags": {}, "order": 1, "mode": 0,
             "inputs": [{"name": "images", "type": "IMAGE", "link": 1}], "outputs": [],
             "properties": {"Node name for S&R": "SaveImage"}, "widgets_values": ["ui-card"]}
        ],
        "links": [[1, 1, 0, 2, 0, "IMAGE"]],
        "groups": [], "config": {}, "extra": {}, "version": 0.4
    })
}

#[tokio::test]
async fn a_ui_format_template_is_converted_and_runs() {
    let templates = shipped_copy();
    let Some(server) = server(templates.path()).await else {
        return;
    };
    let manifest =
        json!({"parameters": {"width": {"bind": "Card.width"}, "height": {"bind": "Card.height"}}});
    let (status, created) = server
        .post(
            "/api/templates",
            &json!({"name": "ui-card", "workflow": ui_workflow(), "manifest": manifest}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["format"], "ui");
    let (_, files) = run_to_outputs(&server, "ui-card", json!({"width": 20})).await;
    assert_eq!(png_size(&files[0]), (20, 12));
    assert!(close(pixel(&files[0]), [0, 0xff, 0]));
    server.stop().await;
}

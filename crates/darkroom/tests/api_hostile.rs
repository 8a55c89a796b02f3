//! Hostile input, from the outside: names that try to leave the store (from a client and
//! from ComfyUI), files that are not what they claim, secrets that must never be kept,
//! backends that never answer and runs that never end. Against the simulator.

#![allow(
    clippy::unwrap_used,
    reason = "helpers outside #[test] fns panic too: that is the failure message we want"
)]

mod support;

use std::path::Path;
use std::time::Duration;

use darkroom::config::Timeouts;
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::json;
use support::{Options, TestServer, until_interrupted};

fn form(bytes: &[u8], content_type: &str, name: &str) -> Form {
    Form::new()
        .text("content_type", content_type.to_owned())
        .text("file_path", name.to_owned())
        .part("file", Part::bytes(bytes.to_vec()).file_name("upload"))
}

fn png() -> Vec<u8> {
    let mut bytes = Vec::new();
    image::RgbImage::from_pixel(4, 4, image::Rgb([200, 10, 10]))
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
    bytes
}

/// Every file under `folder`, recursively.
fn files_under(folder: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

#[tokio::test]
async fn client_names_that_would_leave_the_store_are_refused() {
    let server = TestServer::start().await;
    for name in [
        "../../etc/passwd",
        "a/../../b.png",
        "/etc/passwd",
        "C:\\Windows\\win.ini",
        "nul\0byte.png",
        "line\nbreak.png",
        "photo\u{202e}gnp.exe",
        "zero\u{200b}width.png",
        "",
    ] {
        let (status, body) = server.upload_form(form(b"hello", "text/plain", name)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{name:?}: {body}");
        assert_eq!(body["error"]["code"], "invalid_request", "{name:?}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("file_path"),
            "{body}"
        );
    }
    // A name in folders is fine; it is only ever a label, served back as its last part.
    let (status, asset) = server
        .upload_form(form(b"hello", "text/plain", "notes/été.txt"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{asset}");
    let content = server
        .http
        .get(asset["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        content.headers()["content-disposition"],
        "inline; filename=\"_t_.txt\"; filename*=UTF-8''%C3%A9t%C3%A9.txt"
    );
    server.stop().await;
}

#[tokio::test]
async fn uploads_are_judged_by_their_bytes_not_their_name() {
    let server = TestServer::start().await;
    let html = b"<html><script>alert(document.cookie)</script></html>";
    let (status, body) = server.upload_form(form(html, "image/png", "cat.png")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "content_mismatch");
    assert_eq!(body["error"]["details"]["declared"], "image/png");

    // A JPEG sent as a PNG is stored as what it is.
    let mut jpeg = Vec::new();
    image::RgbImage::from_pixel(4, 4, image::Rgb([1, 2, 3]))
        .write_to(
            &mut std::io::Cursor::new(&mut jpeg),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    let (status, asset) = server
        .upload_form(form(&jpeg, "image/png", "photo.png"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{asset}");
    assert_eq!(asset["content_type"], "image/jpeg");
    server.stop().await;
}

#[tokio::test]
async fn an_image_parameter_refuses_an_asset_that_is_no_picture() {
    let templates = tempfile::tempdir().unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates");
    for file in ["invert-image.json", "invert-image.toml"] {
        std::fs::copy(shipped.join(file), templates.path().join(file)).unwrap();
    }
    let server = TestServer::with(Options {
        templates_dir: Some(templates.path().to_path_buf()),
        ..Options::default()
    })
    .await;
    let text = server
        .upload_asset(
            b"just words, named like a picture".to_vec(),
            "text/plain",
            "cat.png",
        )
        .await;
    let (status, body) = server
        .post(
            "/api/templates/invert-image/jobs",
            &json!({"params": {"image": text}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "invalid_parameter");
    let problem = &body["error"]["details"]["parameters"][0];
    assert_eq!(problem["name"], "image");
    assert_eq!(problem["reason"], "not_an_image");

    let picture = server.upload_asset(png(), "image/png", "red.png").await;
    let (status, job) = server
        .post(
            "/api/templates/invert-image/jobs",
            &json!({"params": {"image": picture}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    server.stop().await;
}

#[tokio::test]
async fn names_from_comfyui_never_become_paths_or_hide_what_they_are() {
    let server = TestServer::start().await;
    let data_dir = server.data_dir().to_path_buf();
    // A prefix ComfyUI accepts: folders and a right-to-left override in the name (which
    // would show `exe.png` as `png.exe`).
    let graph = json!({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0],
              "filename_prefix": "deep/er/\u{202e}gnp.exe"}},
    });
    let job = server.submit(&graph).await;
    let done = server.wait_final(job["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let name = done["outputs"][0]["name"].as_str().unwrap();
    assert!(
        !name.contains('/') && !name.contains('\u{202e}'),
        "{name:?}"
    );
    assert!(name.starts_with("gnp.exe"), "{name:?}");
    // Stored bytes live under their hash, nowhere named after ComfyUI's file.
    for path in files_under(&data_dir) {
        let text = path.to_string_lossy();
        assert!(!text.contains("gnp") && !text.contains("deep"), "{text}");
    }

    // A prefix that climbs out of ComfyUI's output folder: ComfyUI refuses it, and the
    // job fails saying so.
    let climbing = json!({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0],
              "filename_prefix": "../../../../tmp/darkroom-escape"}},
    });
    let job = server.submit(&climbing).await;
    let done = server.wait_final(job["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["outputs"], json!([]));
    server.stop().await;
}

#[tokio::test]
async fn secrets_are_never_stored() {
    let server = TestServer::start().await;
    let key = server
        .create_key("secretive", darkroom::auth::Role::User, Default::default())
        .await;
    let client = server.client_with_key(&key);
    let partner_key = "comfyorg-partner-key-5a1b2c3d4e5f";
    let response = client
        .post(server.url("/api/v2/jobs"))
        .json(&json!({"workflow": support::save_image("s"),
                      "extra_data": {"api_key_comfy_org": partner_key}}))
        .send()
        .await
        .unwrap();
    let (status, job) = support::read_json(response).await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    let id = job["id"].as_str().unwrap();
    server
        .events_with(&client, id, None)
        .await
        .collect_to_end()
        .await;
    let workflow = client
        .get(server.url(&format!("/api/v2/jobs/{id}/workflow")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!workflow.contains(partner_key));

    // Neither the partner key nor the API key is anywhere in the database: its files on
    // SQLite, its tables' rows on PostgreSQL.
    let contents = server.database_contents().await;
    assert!(!contents.is_empty(), "the database was searched");
    for (name, bytes) in &contents {
        for secret in [partner_key, key.as_str(), &key[4..]] {
            assert!(
                !bytes
                    .windows(secret.len())
                    .any(|window| window == secret.as_bytes()),
                "{name} holds a secret"
            );
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn a_run_past_the_longest_run_time_fails_with_run_timeout_and_frees_the_backend() {
    let server = TestServer::with(Options {
        timeouts: Timeouts {
            max_run_time: Duration::from_secs(1),
            ..Timeouts::default()
        },
        ..Options::default()
    })
    .await;
    let job = server.submit(&until_interrupted()).await;
    let done = server.wait_final(job["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "run_timeout", "{done}");
    assert!(
        done["error"]["message"].as_str().unwrap().contains("1s"),
        "{done}"
    );

    // The run was stopped on the backend: the next job runs.
    let next = server.submit(&support::save_image("next")).await;
    let next = server.wait_final(next["id"].as_str().unwrap()).await;
    assert_eq!(next["status"], "succeeded", "{next}");
    server.stop().await;
}

#[tokio::test]
async fn a_backend_that_never_answers_does_not_hold_a_request() {
    // A server of ours that accepts connections and never says a word.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = silent.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let timeouts = Timeouts {
        backend_connect: Duration::from_secs(1),
        backend_call: Duration::from_secs(1),
        ..Timeouts::default()
    };
    let server = TestServer::with(Options {
        backend: Some(format!("http://{address}")),
        timeouts,
        ..Options::default()
    })
    .await;
    // Without the call timeout this would wait on the silent backend for 30 s.
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        server.http.get(server.url("/api/v2/health")).send(),
    )
    .await
    .expect("health answers although its backend never does")
    .unwrap();
    let (_, health) = support::read_json(response).await;
    assert_eq!(health["backends"][0]["up"], false, "{health}");
    server.stop().await;
    holder.abort();
}

//! The routes the web page stands on, beside the contract: the page itself, server-made
//! thumbnails, the backends view and the history of jobs with their parameters.

#![allow(
    clippy::unwrap_used,
    reason = "helpers outside #[test] fns panic too: that is the failure message we want"
)]

mod support;

use reqwest::StatusCode;
use serde_json::Value;
use support::{TestServer, save_image, until_interrupted};

#[tokio::test]
async fn the_page_and_its_files_are_served_from_the_binary() {
    let server = TestServer::start().await;
    let page = server.http.get(server.url("/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let headers = page.headers().clone();
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(policy.starts_with("default-src 'self'"), "{policy}");
    let html = page.text().await.unwrap();
    assert!(html.contains("/ui/app.js"), "{html}");

    for (file, kind) in [("app.js", "text/javascript"), ("style.css", "text/css")] {
        let response = server
            .http
            .get(server.url(&format!("/ui/{file}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{file}");
        assert_eq!(response.headers()["content-type"], kind);
    }
    let (status, body) = server.get("/ui/secrets.txt").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    server.stop().await;
}

#[tokio::test]
async fn a_thumbnail_is_a_small_jpeg_of_an_output_and_the_same_each_time() {
    let server = TestServer::start().await;
    let job = server.submit(&save_image("thumbs")).await;
    let job = server.wait_final(job["id"].as_str().unwrap()).await;
    let output = &job["outputs"][0];
    let path = format!(
        "/api/v2/assets/{}/thumbnail?size=64",
        output["id"].as_str().unwrap()
    );

    let first = server.http.get(server.url(&path)).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(first.headers()["content-type"], "image/jpeg");
    let first = first.bytes().await.unwrap();
    let thumbnail = image::load_from_memory(&first).unwrap();
    assert!(thumbnail.width() <= 64 && thumbnail.height() <= 64);
    let again = server.http.get(server.url(&path)).send().await.unwrap();
    assert_eq!(again.bytes().await.unwrap(), first);

    let odd = path.replace("size=64", "size=100");
    let (status, body) = server.get(&odd).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("100"));
    server.stop().await;
}

#[tokio::test]
async fn a_large_picture_is_scaled_down_and_text_has_no_thumbnail() {
    let server = TestServer::start().await;
    let mut png = std::io::Cursor::new(Vec::new());
    image::RgbImage::from_pixel(600, 300, image::Rgb([1, 2, 3]))
        .write_to(&mut png, image::ImageFormat::Png)
        .unwrap();
    let picture = server
        .upload_asset(png.into_inner(), "image/png", "wide.png")
        .await;
    let path = format!("/api/v2/assets/{picture}/thumbnail?size=256");
    let response = server.http.get(server.url(&path)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let thumbnail = image::load_from_memory(&response.bytes().await.unwrap()).unwrap();
    assert_eq!((thumbnail.width(), thumbnail.height()), (256, 128));

    let text = server
        .upload_asset(b"not a picture".to_vec(), "text/plain", "a.txt")
        .await;
    let (status, body) = server
        .get(&format!("/api/v2/assets/{text}/thumbnail"))
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    let (status, _) = server
        .get("/api/v2/assets/7f3d2c1b-9a8e-4d6f-b012-3c4d5e6f7a8b/thumbnail")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test]
async fn backends_say_whether_they_answer_and_what_they_run() {
    let server = TestServer::start().await;
    let job = server.submit(&until_interrupted()).await;
    let id = job["id"].as_str().unwrap().to_owned();
    server.wait_for_status(&id, "running").await;

    let (status, answer) = server.get("/api/backends").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let backend = &answer["backends"][0];
    assert_eq!(backend["name"], "sim");
    assert_eq!(backend["up"], true, "{answer}");
    assert!(backend["version"].is_string(), "{answer}");
    assert_eq!(backend["current_job"]["id"], id.as_str());
    assert_eq!(answer["queued"], 0);
    server.cancel(&id).await;
    server.stop().await;
}

#[tokio::test]
async fn history_lists_jobs_newest_first_filtered_by_status_and_paged() {
    let server = TestServer::start().await;
    let mut ids = Vec::new();
    for prefix in ["one", "two", "three"] {
        let job = server.submit(&save_image(prefix)).await;
        let id = job["id"].as_str().unwrap().to_owned();
        server.wait_final(&id).await;
        ids.push(id);
    }
    let running = server.submit(&until_interrupted()).await;
    let running_id = running["id"].as_str().unwrap().to_owned();
    server.wait_for_status(&running_id, "running").await;

    let (status, page) = server.get("/api/history?status=succeeded&limit=2").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["total"], 3);
    let shown: Vec<&str> = entries(&page)
        .iter()
        .map(|entry| entry["id"].as_str().unwrap())
        .collect();
    assert_eq!(shown, [ids[2].as_str(), ids[1].as_str()]);
    let entry = &entries(&page)[0];
    assert!(
        entry["thumbnail"]
            .as_str()
            .unwrap()
            .ends_with("/thumbnail?size=256")
    );
    assert!(entry["template"].is_null() && entry["parameters"].is_null());

    let (_, next) = server
        .get("/api/history?status=succeeded&limit=2&offset=2")
        .await;
    assert_eq!(entries(&next)[0]["id"], ids[0].as_str());
    let (_, one) = server.get(&format!("/api/history/{}", ids[0])).await;
    assert_eq!(one["status"], "succeeded");
    assert_eq!(one["outputs"].as_array().unwrap().len(), 1);

    let (status, body) = server.get("/api/history?status=done").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = server.get("/api/history/not-a-job").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.cancel(&running_id).await;
    server.stop().await;
}

fn entries(page: &Value) -> &Vec<Value> {
    page["entries"].as_array().unwrap()
}

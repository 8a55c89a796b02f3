//! The assets resource over HTTP: streamed uploads deduplicated by blake3, minting from a
//! hash, existence checks, metadata, ranged downloads and deletion.

#![allow(
    clippy::unwrap_used,
    reason = "helpers outside #[test] fns panic too: that is the failure message we want"
)]

mod support;

use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use support::TestServer;

fn blake3_of(bytes: &[u8]) -> String {
    format!("blake3:{}", blake3::hash(bytes).to_hex())
}

/// Arbitrary bytes, so declared as text: a declared image must be one (see api_hostile).
fn form(bytes: &[u8], file_path: &str) -> Form {
    Form::new()
        .text("content_type", "text/plain")
        .text("file_path", file_path.to_owned())
        .part("file", Part::bytes(bytes.to_vec()).file_name("upload.bin"))
}

async fn upload(server: &TestServer, form: Form) -> (StatusCode, Value) {
    server.upload_form(form).await
}

async fn head_by_hash(server: &TestServer, hash: &str) -> StatusCode {
    let url = server.url(&format!("/api/v2/assets/by-hash/{hash}"));
    server.http.head(url).send().await.unwrap().status()
}

/// The status and bytes of an asset's content, from the `url` its view gives.
async fn content(server: &TestServer, asset: &Value) -> (StatusCode, Vec<u8>) {
    let url = asset["url"].as_str().unwrap();
    let response = server.http.get(url).send().await.unwrap();
    let status = response.status();
    (status, response.bytes().await.unwrap().to_vec())
}

async fn delete(server: &TestServer, id: &str) -> StatusCode {
    let url = server.url(&format!("/api/v2/assets/{id}"));
    server.http.delete(url).send().await.unwrap().status()
}

#[tokio::test]
async fn identical_uploads_share_one_blob_and_two_records() {
    let server = TestServer::start().await;
    let bytes = b"\x89PNG pretend image bytes".repeat(1000);

    let (status, first) = upload(&server, form(&bytes, "photo.png")).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["created_new"], true);
    assert_eq!(first["hash"], blake3_of(&bytes));
    assert_eq!(first["size_bytes"], bytes.len());
    assert_eq!(first["file_path"], "photo.png");
    assert_eq!(first["content_type"], "text/plain");
    assert_eq!(first["job_id"], Value::Null);
    assert!(first["expires_at"].is_string() && first["url_expires_at"].is_string());

    let (status, second) = upload(&server, form(&bytes, "again.png")).await;
    assert_eq!(status, StatusCode::OK, "a dedup hit: {second}");
    assert_eq!(second["created_new"], false);
    assert_eq!(second["hash"], first["hash"]);
    assert_ne!(second["id"], first["id"]);

    let download = server
        .http
        .get(second["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), StatusCode::OK);
    assert_eq!(
        download.headers()["content-disposition"],
        "inline; filename=\"again.png\""
    );
    assert_eq!(download.bytes().await.unwrap(), bytes);
    server.stop().await;
}

#[tokio::test]
async fn fields_may_come_after_the_file_and_a_wrong_expected_hash_is_refused() {
    let server = TestServer::start().await;
    let bytes = b"some bytes".to_vec();
    let after = Form::new()
        .part("file", Part::bytes(bytes.clone()))
        .text("file_path", "late.txt")
        .text("content_type", "text/plain")
        .text("expected_hash", blake3_of(&bytes))
        .text("expires_in", "600");
    let (status, asset) = upload(&server, after).await;
    assert_eq!(status, StatusCode::CREATED, "{asset}");

    let wrong = form(b"other bytes", "x.png").text("expected_hash", blake3_of(b"not these"));
    let (status, body) = upload(&server, wrong).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "hash_mismatch");
    assert_eq!(
        head_by_hash(&server, &blake3_of(b"other bytes")).await,
        StatusCode::NOT_FOUND,
        "no asset is minted and the bytes are not kept"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_missing_or_bad_field_is_named() {
    let server = TestServer::start().await;
    let cases = [
        (
            Form::new()
                .text("content_type", "image/png")
                .text("file_path", "a.png"),
            "\"file\"",
        ),
        (
            Form::new()
                .part("file", Part::bytes(vec![1]))
                .text("file_path", "a.png"),
            "\"content_type\"",
        ),
        (form(b"x", "../escape.png"), "file_path"),
        (form(b"x", "a.png").text("expires_in", "5"), "expires_in"),
        (form(b"x", "a.png").text("color", "red"), "\"color\""),
    ];
    for (form, named) in cases {
        let (status, body) = upload(&server, form).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"]["code"], "invalid_request");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(named), "{message} should name {named}");
    }
    let response = server
        .http
        .post(server.url("/api/v2/assets"))
        .json(&json!({"file": "x"}))
        .send()
        .await
        .unwrap();
    let (status, body) = support::read_json(response).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("multipart/form-data")
    );
    server.stop().await;
}

#[tokio::test]
async fn known_bytes_are_minted_from_their_hash_and_unknown_ones_are_not_found() {
    let server = TestServer::start().await;
    let bytes = b"minted bytes".to_vec();
    let hash = blake3_of(&bytes);
    assert_eq!(head_by_hash(&server, &hash).await, StatusCode::NOT_FOUND);
    let (_, uploaded) = upload(&server, form(&bytes, "source.png")).await;
    assert_eq!(head_by_hash(&server, &hash).await, StatusCode::OK);
    assert_eq!(
        head_by_hash(&server, "blake3:nothex").await,
        StatusCode::NOT_FOUND
    );

    let request = json!({"hash": hash, "file_path": "copy.png", "expires_in": 3600});
    let (status, minted) = server.post("/api/v2/assets/from-hash", &request).await;
    assert_eq!(status, StatusCode::CREATED, "{minted}");
    assert_ne!(minted["id"], uploaded["id"]);
    assert_eq!(minted["hash"], hash);
    assert_eq!(minted["file_path"], "copy.png");
    assert_eq!(minted["size_bytes"], bytes.len());
    assert_eq!(minted["created_new"], false);

    let unknown = json!({"hash": blake3_of(b"never uploaded")});
    let (status, body) = server.post("/api/v2/assets/from-hash", &unknown).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "blob_not_found");
    let (status, body) = server
        .post("/api/v2/assets/from-hash", &json!({"hash": "md5:1"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    server.stop().await;
}

#[tokio::test]
async fn content_is_served_whole_or_by_range() {
    let server = TestServer::start().await;
    let bytes: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let (_, asset) = upload(&server, form(&bytes, "ranged.bin")).await;
    let url = asset["url"].as_str().unwrap();

    let part = server
        .http
        .get(url)
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.headers()["content-range"], "bytes 100-199/10000");
    assert_eq!(part.headers()["content-length"], "100");
    assert_eq!(part.bytes().await.unwrap(), bytes[100..200]);

    let tail = server
        .http
        .get(url)
        .header("range", "bytes=-10")
        .send()
        .await
        .unwrap();
    assert_eq!(tail.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(tail.bytes().await.unwrap(), bytes[9_990..]);

    let past = server
        .http
        .get(url)
        .header("range", "bytes=10000-")
        .send()
        .await
        .unwrap();
    assert_eq!(past.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(past.headers()["content-range"], "bytes */10000");

    let whole = server.http.get(url).send().await.unwrap();
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(whole.headers()["accept-ranges"], "bytes");
    assert_eq!(whole.bytes().await.unwrap(), bytes);
    server.stop().await;
}

#[tokio::test]
async fn deleting_the_last_record_removes_the_bytes() {
    let server = TestServer::start().await;
    let bytes = b"short-lived".to_vec();
    let hash = blake3_of(&bytes);
    let (_, first) = upload(&server, form(&bytes, "one.png")).await;
    let (_, second) = upload(&server, form(&bytes, "two.png")).await;
    let first_id = first["id"].as_str().unwrap();
    let second_id = second["id"].as_str().unwrap();

    assert_eq!(delete(&server, first_id).await, StatusCode::NO_CONTENT);
    assert_eq!(delete(&server, first_id).await, StatusCode::NOT_FOUND);
    let (status, _) = server.get(&format!("/api/v2/assets/{first_id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, still) = content(&server, &second).await;
    assert_eq!(still, bytes, "the other record keeps its bytes");

    assert_eq!(delete(&server, second_id).await, StatusCode::NO_CONTENT);
    assert_eq!(head_by_hash(&server, &hash).await, StatusCode::NOT_FOUND);
    assert_eq!(delete(&server, "not-a-uuid").await, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test]
async fn bytes_uploaded_again_while_their_last_record_is_deleted_keep_their_record_whole() {
    let server = TestServer::start().await;
    let mut kept = 0;
    for round in 0..40 {
        let bytes = format!("round {round}: a delete racing an upload of the same bytes");
        let bytes = bytes.into_bytes();
        let (_, first) = upload(&server, form(&bytes, "first.txt")).await;
        let first_id = first["id"].as_str().unwrap().to_owned();

        let (deleted, (status, second)) = tokio::join!(
            delete(&server, &first_id),
            upload(&server, form(&bytes, "second.txt"))
        );
        assert_eq!(deleted, StatusCode::NO_CONTENT);
        if status == StatusCode::CONFLICT {
            // The upload found its bytes being deleted and recorded nothing: said, not lost.
            assert_eq!(second["error"]["code"], "blob_deleted", "{second}");
            continue;
        }
        assert!(status.is_success(), "round {round}: {status} {second}");
        let (status, stored) = content(&server, &second).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "round {round}: a record without bytes"
        );
        assert_eq!(stored, bytes);
        kept += 1;
    }
    assert!(
        kept > 0,
        "every upload lost the race; the test proves nothing"
    );
    server.stop().await;
}

//! A Darkroom whose artifacts live in S3 (moto's server on loopback): a job's output is
//! stored in the bucket, nothing on local disk, and the API serves it whole, by range and
//! as a thumbnail, byte for byte what ComfyUI made. `DARKROOM_SKIP_S3=1` skips this loudly.

#![allow(
    clippy::unwrap_used,
    reason = "helpers outside #[test] fns panic too: that is the failure message we want"
)]

mod support;

use reqwest::StatusCode;
use support::s3::MotoServer;
use support::{Options, TestServer, save_image};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_output_is_stored_in_the_bucket_and_served_from_it() {
    let Some(moto) = MotoServer::shared() else {
        return;
    };
    let bucket = moto.bucket().await;
    let server = TestServer::with(Options {
        artifacts_url: format!("s3://{bucket}/replicas"),
        s3: moto.settings(),
        ..Options::default()
    })
    .await;

    let job = server.submit(&save_image("in-s3")).await;
    let job = server.wait_final(job["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let output = &job["outputs"][0];
    let name = output["name"].as_str().unwrap();
    let original = server
        .http
        .get(format!("{}/view", server.sim.base_url()))
        .query(&[("filename", name), ("subfolder", ""), ("type", "output")])
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();

    let hex = blake3::hash(&original).to_hex().to_string();
    assert_eq!(output["hash"], format!("blake3:{hex}"));
    assert_eq!(
        moto.keys(&bucket, "").await,
        vec![format!("replicas/blobs/{}/{}", &hex[..2], &hex[2..])],
        "the blob is in the bucket, and no temporary object is left"
    );
    assert!(
        !server.data_dir().join("blobs").exists(),
        "nothing is stored on local disk"
    );

    let url = output["url"].as_str().unwrap();
    let download = server.http.get(url).send().await.unwrap();
    assert_eq!(download.status(), StatusCode::OK);
    assert_eq!(download.bytes().await.unwrap(), original);

    let part = server
        .http
        .get(url)
        .header("range", "bytes=8-23")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 8-23/{}", original.len()).as_str()
    );
    assert_eq!(part.bytes().await.unwrap(), original[8..24]);

    let asset_id = output["id"].as_str().unwrap();
    let thumbnail = server
        .http
        .get(server.url(&format!("/api/v2/assets/{asset_id}/thumbnail?size=64")))
        .send()
        .await
        .unwrap();
    assert_eq!(thumbnail.status(), StatusCode::OK);
    assert_eq!(thumbnail.headers()["content-type"], "image/jpeg");
    let jpeg = thumbnail.bytes().await.unwrap();
    assert!(jpeg.starts_with(&[0xFF, 0xD8]), "a JPEG");
    server.stop().await;
}

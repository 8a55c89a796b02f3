//! Who may do what, from the outside: keys and their absence, other keys' jobs and assets,
//! admin routes, the page's session cookie, and per-key limits (request rate, event
//! streams, queued jobs), body sizes, CORS and slow clients. Against the simulator.

#![allow(
    clippy::unwrap_used,
    reason = "helpers outside #[test] fns panic too: that is the failure message we want"
)]

mod support;

use std::time::Duration;

use darkroom::auth::{KeyLimits, Role};
use darkroom::config::{Limits, Timeouts};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Options, PATIENCE, TestServer, read_json, save_image, until_interrupted};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn get(client: &reqwest::Client, server: &TestServer, path: &str) -> (StatusCode, Value) {
    read_json(client.get(server.url(path)).send().await.unwrap()).await
}

/// A client sending a fresh key of `role`, with the default limits.
async fn keyed(server: &TestServer, name: &str, role: Role) -> reqwest::Client {
    server.client_with_key(&server.create_key(name, role, KeyLimits::default()).await)
}

async fn post(
    client: &reqwest::Client,
    server: &TestServer,
    path: &str,
    body: &Value,
) -> (StatusCode, Value) {
    read_json(
        client
            .post(server.url(path))
            .json(body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn submit(client: &reqwest::Client, server: &TestServer, workflow: &Value) -> Value {
    let (status, job) = post(
        client,
        server,
        "/api/v2/jobs",
        &json!({"workflow": workflow}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    job
}

async fn upload(
    client: &reqwest::Client,
    server: &TestServer,
    bytes: &[u8],
    content_type: &str,
    name: &str,
) -> (StatusCode, Value) {
    let form = reqwest::multipart::Form::new()
        .text("content_type", content_type.to_owned())
        .text("file_path", name.to_owned())
        .part(
            "file",
            reqwest::multipart::Part::bytes(bytes.to_vec()).file_name("f"),
        );
    let response = client
        .post(server.url("/api/v2/assets"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    read_json(response).await
}

fn assert_error(status: StatusCode, body: &Value, want_status: StatusCode, code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
}

/// A tiny real PNG.
fn png() -> Vec<u8> {
    let mut bytes = Vec::new();
    let image = image::RgbImage::from_pixel(4, 4, image::Rgb([10, 200, 30]));
    image
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
    bytes
}

#[tokio::test]
async fn once_a_key_exists_every_request_needs_a_valid_one() {
    let server = TestServer::start().await;
    let anonymous = reqwest::Client::new();
    // No key yet, on loopback: the local operator needs none.
    let (status, _) = get(&anonymous, &server, "/api/v2/jobs").await;
    assert_eq!(status, StatusCode::OK);

    let key = server
        .create_key("alice", Role::User, KeyLimits::default())
        .await;
    let response = anonymous
        .get(server.url("/api/v2/jobs"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"darkroom\""
    );
    let (status, body) = read_json(response).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");

    let wrong = server.client_with_key("drk_not-a-key-at-all");
    let (status, body) = get(&wrong, &server, "/api/v2/jobs").await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let basic = anonymous
        .get(server.url("/api/v2/jobs"))
        .header("authorization", format!("Basic {key}"))
        .send()
        .await
        .unwrap();
    let (status, body) = read_json(basic).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, body) = post(&anonymous, &server, "/api/v2/jobs", &json!({})).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");

    let alice = server.client_with_key(&key);
    let (status, _) = get(&alice, &server, "/api/v2/jobs").await;
    assert_eq!(status, StatusCode::OK);

    // Health, the page and the API description stay public.
    for path in ["/api/v2/health", "/", "/ui/app.js", "/api/openapi.json"] {
        let response = anonymous.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_revoked_key_is_refused_at_once() {
    let server = TestServer::start().await;
    let key = server
        .create_key("temp", Role::User, KeyLimits::default())
        .await;
    let client = server.client_with_key(&key);
    assert_eq!(
        get(&client, &server, "/api/v2/jobs").await.0,
        StatusCode::OK
    );

    let store = darkroom::store::open(&server.database_url).await.unwrap();
    store
        .revoke_api_key("temp", time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    let (status, body) = get(&client, &server, "/api/v2/jobs").await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    server.stop().await;
}

#[tokio::test]
async fn a_key_sees_only_its_own_jobs_and_assets_and_others_look_missing() {
    let server = TestServer::start().await;
    let alice = keyed(&server, "alice", Role::User).await;
    let bob = keyed(&server, "bob", Role::User).await;
    let admin = keyed(&server, "ops", Role::Admin).await;

    let job = submit(&alice, &server, &save_image("alice")).await;
    let id = job["id"].as_str().unwrap();
    let (status, asset) = upload(&alice, &server, &png(), "image/png", "mine.png").await;
    assert_eq!(status, StatusCode::CREATED, "{asset}");
    let asset_id = asset["id"].as_str().unwrap();

    // Bob gets exactly what an id that never existed gets.
    let never = "00000000-0000-4000-8000-000000000000";
    for (path, missing) in [
        (
            format!("/api/v2/jobs/{id}"),
            format!("/api/v2/jobs/{never}"),
        ),
        (
            format!("/api/v2/jobs/{id}/workflow"),
            format!("/api/v2/jobs/{never}/workflow"),
        ),
        (
            format!("/api/v2/jobs/{id}/events"),
            format!("/api/v2/jobs/{never}/events"),
        ),
        (
            format!("/api/history/{id}"),
            format!("/api/history/{never}"),
        ),
        (
            format!("/api/v2/assets/{asset_id}"),
            format!("/api/v2/assets/{never}"),
        ),
        (
            format!("/api/v2/assets/{asset_id}/content"),
            format!("/api/v2/assets/{never}/content"),
        ),
        (
            format!("/api/v2/assets/{asset_id}/thumbnail"),
            format!("/api/v2/assets/{never}/thumbnail"),
        ),
    ] {
        let (status, body) = get(&bob, &server, &path).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
        let (_, unknown) = get(&bob, &server, &missing).await;
        let same = body["error"]["message"]
            .as_str()
            .unwrap()
            .replace(id, never)
            .replace(asset_id, never);
        assert_eq!(same, unknown["error"]["message"], "{path}");
    }
    let (status, body) = post(
        &bob,
        &server,
        &format!("/api/v2/jobs/{id}/cancel"),
        &json!({}),
    )
    .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let response = bob
        .delete(server.url(&format!("/api/v2/assets/{asset_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let hash = asset["hash"].as_str().unwrap();
    let response = bob
        .head(server.url(&format!("/api/v2/assets/by-hash/{hash}")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::NOT_FOUND,
        "another key's blob"
    );
    let (status, body) = post(
        &bob,
        &server,
        "/api/v2/assets/from-hash",
        &json!({"hash": hash}),
    )
    .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "blob_not_found");

    // Bob cannot feed Alice's asset to his own job.
    let graph = json!({
        "1": {"class_type": "LoadImage", "inputs": {"image": {"__type": "core/ASSET", "info": {"id": asset_id}}}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "bob"}},
    });
    let (status, body) = post(&bob, &server, "/api/v2/jobs", &json!({"workflow": graph})).await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "missing_asset",
    );

    // Bob's own upload of the same bytes is new to him.
    let (status, mine) = upload(&bob, &server, &png(), "image/png", "same.png").await;
    assert_eq!(status, StatusCode::CREATED, "{mine}");
    assert_eq!(mine["created_new"], true);

    // Listings hold only what the caller owns; the admin sees everyone's.
    submit(&bob, &server, &save_image("bob")).await;
    let listed = |body: &Value, key: &str| -> Vec<String> {
        body[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|job| job["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, jobs) = get(&bob, &server, "/api/v2/jobs").await;
    assert_eq!(jobs["total"], 1);
    assert!(!listed(&jobs, "jobs").contains(&id.to_owned()));
    let (_, history) = get(&bob, &server, "/api/history").await;
    assert_eq!(history["total"], 1);
    let (_, jobs) = get(&alice, &server, "/api/v2/jobs").await;
    assert_eq!(listed(&jobs, "jobs"), vec![id.to_owned()]);
    let (_, everything) = get(&admin, &server, "/api/v2/jobs").await;
    assert_eq!(everything["total"], 2);
    let (status, seen) = get(&admin, &server, &format!("/api/v2/jobs/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{seen}");

    // Alice's job outputs are hers too.
    server
        .events_with(&alice, id, None)
        .await
        .collect_to_end()
        .await;
    let (_, done) = get(&alice, &server, &format!("/api/v2/jobs/{id}")).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let output = done["outputs"][0]["id"].as_str().unwrap();
    let path = format!("/api/v2/assets/{output}");
    assert_eq!(get(&alice, &server, &path).await.0, StatusCode::OK);
    assert_eq!(get(&bob, &server, &path).await.0, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test]
async fn routes_that_change_the_server_need_an_admin_key() {
    let server = TestServer::start().await;
    let user = keyed(&server, "user", Role::User).await;
    let admin = keyed(&server, "admin", Role::Admin).await;
    let (status, body) = post(&user, &server, "/api/templates/reload", &json!({})).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let template = json!({"name": "mine", "workflow": save_image("x")});
    let (status, body) = post(&user, &server, "/api/templates", &template).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");

    // Operating the backends and reading the metrics are the operator's.
    let (_, backends) = get(&admin, &server, "/api/backends").await;
    let name = backends["backends"][0]["name"].as_str().unwrap().to_owned();
    for path in [
        format!("/api/backends/{name}/drain"),
        format!("/api/backends/{name}/undrain"),
    ] {
        let (status, body) = post(&user, &server, &path, &json!({})).await;
        assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
        let (status, body) = post(&admin, &server, &path, &json!({})).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    let metrics = |client: &reqwest::Client| client.get(server.url("/metrics")).send();
    assert_eq!(
        metrics(&user).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let response = metrics(&admin).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("darkroom_jobs"));

    let (status, body) = post(&admin, &server, "/api/templates/reload", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Reading stays open to every key.
    assert_eq!(
        get(&user, &server, "/api/templates").await.0,
        StatusCode::OK
    );
    assert_eq!(get(&user, &server, "/api/backends").await.0, StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn the_session_cookie_reads_but_never_writes() {
    let server = TestServer::start().await;
    let key = server
        .create_key("page", Role::User, KeyLimits::default())
        .await;
    let client = server.client_with_key(&key);
    let job = submit(&client, &server, &until_interrupted()).await;
    let id = job["id"].as_str().unwrap();

    let response = client
        .post(server.url("/api/session"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains(&key), "the cookie must not hold the key");
    let pair = cookie.split(';').next().unwrap().to_owned();

    let plain = reqwest::Client::new();
    let with_cookie = |request: reqwest::RequestBuilder| request.header("cookie", pair.clone());
    let read = with_cookie(plain.get(server.url(&format!("/api/v2/jobs/{id}"))))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    let events = with_cookie(plain.get(server.url(&format!("/api/v2/jobs/{id}/events"))))
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), StatusCode::OK);
    drop(events);
    let cancel = with_cookie(plain.post(server.url(&format!("/api/v2/jobs/{id}/cancel"))))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        cancel.status(),
        StatusCode::UNAUTHORIZED,
        "a cookie never writes"
    );

    let forged = pair.replace("darkroom_session=key_", "darkroom_session=key_0");
    let refused = plain
        .get(server.url(&format!("/api/v2/jobs/{id}")))
        .header("cookie", forged)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    server.cancel_with(&client, id).await;
    server.stop().await;
}

#[tokio::test]
async fn oversized_bodies_and_uploads_get_413() {
    let limits = Limits {
        max_body_size: bytesize::ByteSize::kib(4),
        max_upload_size: bytesize::ByteSize::kib(16),
        ..Limits::default()
    };
    let server = TestServer::with(Options {
        limits,
        ..Options::default()
    })
    .await;
    let client = reqwest::Client::new();
    let padding = "x".repeat(8 * 1024);
    let mut workflow = save_image("big");
    workflow["2"]["inputs"]["filename_prefix"] = json!(padding);
    let (status, body) = post(
        &client,
        &server,
        "/api/v2/jobs",
        &json!({"workflow": workflow}),
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    assert!(
        body["error"]["message"].as_str().unwrap().contains("4 KiB"),
        "{body}"
    );

    let (status, body) = upload(
        &client,
        &server,
        &vec![7u8; 64 * 1024],
        "text/plain",
        "big.txt",
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    let (status, body) = upload(&client, &server, &[7u8; 1024], "text/plain", "small.txt").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    server.stop().await;
}

#[tokio::test]
async fn a_flood_past_the_rate_gets_429_with_retry_after() {
    let server = TestServer::start().await;
    let limits = KeyLimits {
        requests_per_minute: Some(6),
        burst: Some(5),
        ..KeyLimits::default()
    };
    let flooder = server.client_with_key(&server.create_key("flood", Role::User, limits).await);
    let calm = keyed(&server, "calm", Role::User).await;

    for request in 0..5 {
        let (status, body) = get(&flooder, &server, "/api/v2/jobs").await;
        assert_eq!(status, StatusCode::OK, "request {request}: {body}");
    }
    // Past the burst: refused before anything is looked up, even for a job that is not there.
    let response = flooder
        .get(server.url("/api/v2/jobs/00000000-0000-4000-8000-000000000000"))
        .send()
        .await
        .unwrap();
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=11).contains(&retry_after), "{retry_after}");
    let (status, body) = read_json(response).await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate_limited");

    // Another key has its own allowance.
    assert_eq!(get(&calm, &server, "/api/v2/jobs").await.0, StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn too_many_streams_get_429_until_one_ends() {
    let server = TestServer::start().await;
    let limits = KeyLimits {
        max_streams: Some(2),
        ..KeyLimits::default()
    };
    let client = server.client_with_key(&server.create_key("watcher", Role::User, limits).await);
    let job = submit(&client, &server, &until_interrupted()).await;
    let id = job["id"].as_str().unwrap();
    let path = format!("/api/v2/jobs/{id}/events");

    let first = client.get(server.url(&path)).send().await.unwrap();
    let second = client.get(server.url(&path)).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(second.status(), StatusCode::OK);
    let response = client.get(server.url(&path)).send().await.unwrap();
    assert!(response.headers().contains_key("retry-after"));
    let (status, body) = read_json(response).await;
    assert_error(
        status,
        &body,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_streams",
    );
    // Plain polling stays open.
    assert_eq!(
        get(&client, &server, &format!("/api/v2/jobs/{id}")).await.0,
        StatusCode::OK
    );

    // The job ends, its streams end with it, and their slots are free again.
    server.cancel_with(&client, id).await;
    for stream in [first, second] {
        tokio::time::timeout(PATIENCE, stream.bytes())
            .await
            .expect("the stream ends with the job")
            .unwrap();
    }
    let again = client.get(server.url(&path)).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn a_key_may_hold_only_so_many_queued_jobs() {
    let server = TestServer::start().await;
    let limits = KeyLimits {
        max_queued: Some(2),
        ..KeyLimits::default()
    };
    let busy = server.client_with_key(&server.create_key("busy", Role::User, limits).await);
    let other = keyed(&server, "other", Role::User).await;
    // The first job holds the only backend, so the next ones wait.
    let running = submit(&busy, &server, &until_interrupted()).await;
    let running_id = running["id"].as_str().unwrap();
    server
        .wait_for_status_with(&busy, running_id, "running")
        .await;
    submit(&busy, &server, &save_image("a")).await;
    submit(&busy, &server, &save_image("b")).await;

    let (status, body) = post(
        &busy,
        &server,
        "/api/v2/jobs",
        &json!({"workflow": save_image("c")}),
    )
    .await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "queue_full");
    submit(&other, &server, &save_image("d")).await;
    server.cancel_with(&busy, running_id).await;
    server.stop().await;
}

#[tokio::test]
async fn cors_is_off_unless_origins_are_configured() {
    let preflight = |server: &TestServer, origin: &str| {
        reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, server.url("/api/v2/jobs"))
            .header("origin", origin.to_owned())
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let closed = TestServer::start().await;
    let answer = preflight(&closed, "https://app.example").await.unwrap();
    assert!(!answer.headers().contains_key("access-control-allow-origin"));
    let simple = reqwest::Client::new()
        .get(closed.url("/api/v2/health"))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert!(!simple.headers().contains_key("access-control-allow-origin"));
    closed.stop().await;

    let open = TestServer::with(Options {
        cors_origins: vec!["https://app.example".to_owned()],
        ..Options::default()
    })
    .await;
    let answer = preflight(&open, "https://app.example").await.unwrap();
    assert_eq!(
        answer.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let allowed = answer.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("authorization"), "{allowed}");
    assert!(
        !answer
            .headers()
            .contains_key("access-control-allow-credentials")
    );
    let other = preflight(&open, "https://evil.example").await.unwrap();
    assert!(!other.headers().contains_key("access-control-allow-origin"));
    open.stop().await;
}

#[tokio::test]
async fn a_client_that_sends_its_headers_too_slowly_is_cut_off() {
    let server = TestServer::with(Options {
        timeouts: Timeouts {
            client_header: Duration::from_secs(1),
            ..Timeouts::default()
        },
        ..Options::default()
    })
    .await;
    let address = server.base.trim_start_matches("http://").to_owned();

    // Headers begun and never finished (slowloris).
    let mut slow = tokio::net::TcpStream::connect(&address).await.unwrap();
    slow.write_all(b"GET /api/v2/health HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(PATIENCE, slow.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the server kept a half-sent request open");

    // A keep-alive connection left idle after its answer is closed too.
    let mut idle = tokio::net::TcpStream::connect(&address).await.unwrap();
    idle.write_all(b"GET /api/v2/health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(PATIENCE, idle.read_to_end(&mut answer)).await;
    assert!(closed.is_ok(), "the server kept an idle connection open");
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    server.stop().await;
}

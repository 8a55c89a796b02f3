//! Helpers for the API's black-box tests: a Darkroom served in-process on a port-0
//! listener in front of a simulated ComfyUI, an HTTP client for it, a reader of its
//! server-sent events, and graphs the simulator runs.
//!
//! Nothing here sleeps to wait: waits follow the job's event stream, each bounded by
//! `PATIENCE`, and a timeout fails the test.
//!
//! The store is SQLite in the server's data folder; with `DARKROOM_TEST_STORE=postgres`
//! it is a fresh schema on the test PostgreSQL server instead (see `tests/postgres`), so
//! the API tests can run on either engine.

#![allow(
    dead_code,
    clippy::unwrap_used,
    reason = "each test binary uses a subset; a panic in a helper is the failure message we want"
)]

pub mod s3;

use std::time::Duration;

use comfy_sim::{Knobs, SimHandle, Simulator};
use darkroom::artifacts::S3Settings;
use darkroom::auth::{KeyLimits, NewKey, Role};
use darkroom::config::{BackendConfig, Config, Limits, Timeouts};
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

#[path = "../postgres/mod.rs"]
mod postgres;

/// How long any single wait may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// How a test server is set up.
#[derive(Debug, Clone)]
pub struct Options {
    pub queue_limit: u32,
    pub knobs: Knobs,
    /// A ComfyUI to run jobs on instead of the simulator (which still starts).
    pub backend: Option<String>,
    /// The template folder; by default an empty one in the data folder.
    pub templates_dir: Option<std::path::PathBuf>,
    /// Prompts kept inside the backend at once; 1 here, so a running job keeps the next
    /// one in Darkroom's queue, where tests can see and cancel it.
    pub prompts_per_backend: u32,
    /// Backends to use instead of the simulator the server starts (which still starts).
    pub backends: Vec<BackendConfig>,
    pub limits: Limits,
    pub timeouts: Timeouts,
    pub cors_origins: Vec<String>,
    /// Where blobs go: empty for the data folder, or `s3://BUCKET/PREFIX` with `s3`.
    pub artifacts_url: String,
    pub s3: S3Settings,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            queue_limit: 100,
            knobs: Knobs::default(),
            backend: None,
            templates_dir: None,
            prompts_per_backend: 1,
            backends: Vec::new(),
            limits: Limits::default(),
            timeouts: Timeouts::default(),
            cors_origins: Vec::new(),
            artifacts_url: String::new(),
            s3: S3Settings::default(),
        }
    }
}

/// A running Darkroom with its own data folder and simulator; stopped when dropped.
pub struct TestServer {
    pub base: String,
    /// The store the server uses: its SQLite file, or its PostgreSQL schema.
    pub database_url: String,
    pub http: reqwest::Client,
    pub sim: SimHandle,
    shutdown: Option<oneshot::Sender<()>>,
    served: Option<JoinHandle<Result<(), darkroom::server::ServeError>>>,
    data: tempfile::TempDir,
    /// Dropped after the server's store: the PostgreSQL schema, when the test uses one.
    schema: Option<postgres::TestSchema>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::with(Options::default()).await
    }

    pub async fn with(options: Options) -> Self {
        init_tracing();
        let sim = Simulator::builder()
            .knobs(options.knobs)
            .start()
            .await
            .unwrap();
        let data = tempfile::tempdir().unwrap();
        let schema = match std::env::var("DARKROOM_TEST_STORE").as_deref() {
            Ok("postgres") => postgres::TestSchema::create("an API test").await,
            _ => None,
        };
        let database_url = schema.as_ref().map_or_else(
            || format!("sqlite://{}", data.path().join("darkroom.db").display()),
            |schema| schema.url.clone(),
        );
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: data.path().to_path_buf(),
            database_url: database_url.clone(),
            queue_limit: options.queue_limit,
            retention: Duration::from_secs(3600),
            backend_lost_after: Duration::from_secs(60),
            max_attempts: 3,
            prompts_per_backend: options.prompts_per_backend,
            backends: if options.backends.is_empty() {
                vec![BackendConfig::at_url(
                    "sim",
                    options.backend.unwrap_or_else(|| sim.base_url()),
                )]
            } else {
                options.backends
            },
            templates_dir: options
                .templates_dir
                .unwrap_or_else(|| data.path().join("templates")),
            limits: options.limits,
            timeouts: options.timeouts,
            cors_origins: options.cors_origins,
            artifacts_url: options.artifacts_url,
            s3: options.s3,
            ..Config::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (shutdown, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(darkroom::server::serve(config, listener, async {
            let _ = stopped.await;
        }));
        // The listener is bound, so this waits (in its backlog) until the server has
        // opened its store and serves: tests may then open the same database themselves.
        let health = reqwest::get(format!("{base}/api/v2/health")).await;
        assert!(
            health.is_ok_and(|answer| answer.status().is_success()),
            "the server did not start"
        );
        Self {
            base,
            database_url,
            http: reqwest::Client::new(),
            sim,
            shutdown: Some(shutdown),
            served: Some(served),
            data,
            schema,
        }
    }

    /// Stops the server and waits for it, failing the test if it ended with an error.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(served) = self.served.take() {
            let result = tokio::time::timeout(PATIENCE, served).await;
            result
                .expect("server stops in time")
                .unwrap()
                .expect("server ends cleanly");
        }
    }

    /// Polls `/api/backends` (backends have no event stream) until `done` holds for the
    /// backend `name`, within `patience`; `what` names the wait in the failure message.
    pub async fn wait_backend(
        &self,
        name: &str,
        what: &str,
        patience: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let (_, list) = self.get("/api/backends").await;
            let backend = list["backends"]
                .as_array()
                .unwrap()
                .iter()
                .find(|backend| backend["name"] == name)
                .cloned()
                .unwrap();
            if done(&backend) {
                return backend;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "backend {name} never {what}: {backend}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits, within `PATIENCE`, until `/api/backends` shows `name` in `state`.
    pub async fn wait_backend_in(&self, name: &str, state: &str) -> Value {
        self.wait_backend(name, state, PATIENCE, |backend| backend["state"] == state)
            .await
    }

    /// The server's data folder (blobs, managed backends' folders and, on SQLite, its database).
    pub fn data_dir(&self) -> &std::path::Path {
        self.data.path()
    }

    /// Every row of the server's database as text: the SQLite file's bytes (with its
    /// journal), or each PostgreSQL table's rows cast to text.
    pub async fn database_contents(&self) -> Vec<(String, Vec<u8>)> {
        if self.schema.is_none() {
            let mut files = Vec::new();
            for entry in std::fs::read_dir(self.data.path()).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                if name.starts_with("darkroom.db") {
                    files.push((name, std::fs::read(&path).unwrap()));
                }
            }
            return files;
        }
        use sqlx::Connection;
        let mut connection = sqlx::postgres::PgConnection::connect(&self.database_url)
            .await
            .unwrap();
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema()",
        )
        .fetch_all(&mut connection)
        .await
        .unwrap();
        let mut contents = Vec::new();
        for table in tables {
            let sql = format!("SELECT CAST(t AS TEXT) FROM \"{table}\" AS t");
            let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_all(&mut connection)
                .await
                .unwrap();
            contents.push((table, rows.join("\n").into_bytes()));
        }
        contents
    }

    /// Creates an API key in the server's database, as `darkroom keys create` does (the
    /// server sees it at once), and returns the key.
    pub async fn create_key(&self, name: &str, role: Role, limits: KeyLimits) -> String {
        let store = darkroom::store::open(&self.database_url).await.unwrap();
        let key = NewKey::generate(name, role, limits, time::OffsetDateTime::now_utc());
        store.create_api_key(&key.record).await.unwrap();
        key.secret
    }

    /// A client that sends `key` with every request.
    pub fn client_with_key(&self, key: &str) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        let value = format!("Bearer {key}");
        headers.insert(reqwest::header::AUTHORIZATION, value.parse().unwrap());
        reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        read_json(response).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap();
        read_json(response).await
    }

    /// Submits `workflow` and returns the answer, whatever its status.
    /// `POST /api/v2/assets` with `form`, as it answers.
    pub async fn upload_form(&self, form: reqwest::multipart::Form) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.url("/api/v2/assets"))
            .multipart(form)
            .send()
            .await
            .unwrap();
        read_json(response).await
    }

    /// Uploads `bytes` as an asset named `name` and returns its id (new or deduplicated).
    pub async fn upload_asset(&self, bytes: Vec<u8>, content_type: &str, name: &str) -> String {
        let form = reqwest::multipart::Form::new()
            .text("content_type", content_type.to_owned())
            .text("file_path", name.to_owned())
            .part(
                "file",
                reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()),
            );
        let (status, asset) = self.upload_form(form).await;
        // 200 when the bytes are already stored, 201 when new.
        assert!(status.is_success(), "{asset}");
        asset["id"].as_str().unwrap().to_owned()
    }

    pub async fn try_submit(&self, workflow: &Value) -> (StatusCode, Value) {
        self.post("/api/v2/jobs", &json!({"workflow": workflow}))
            .await
    }

    /// Submits `workflow`, which must be accepted, and returns the job.
    pub async fn submit(&self, workflow: &Value) -> Value {
        let (status, job) = self.try_submit(workflow).await;
        assert_eq!(status, StatusCode::CREATED, "submission refused: {job}");
        job
    }

    pub async fn job(&self, id: &str) -> Value {
        let (status, job) = self.get(&format!("/api/v2/jobs/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{job}");
        job
    }

    pub async fn cancel(&self, id: &str) -> Value {
        let (status, job) = self
            .post(&format!("/api/v2/jobs/{id}/cancel"), &json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{job}");
        job
    }

    /// Cancels a job as the caller `client` speaks for.
    pub async fn cancel_with(&self, client: &reqwest::Client, id: &str) -> Value {
        let response = client
            .post(self.url(&format!("/api/v2/jobs/{id}/cancel")))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        let (status, job) = read_json(response).await;
        assert_eq!(status, StatusCode::OK, "{job}");
        job
    }

    /// Follows the job's events, as `client`, until `status` is reached.
    pub async fn wait_for_status_with(&self, client: &reqwest::Client, id: &str, status: &str) {
        let mut events = self.events_with(client, id, None).await;
        loop {
            let event = events
                .next()
                .await
                .unwrap_or_else(|| panic!("stream ended before {status}"));
            if event.name == "status" && event.data["status"] == status {
                return;
            }
        }
    }

    /// Opens the job's event stream, resuming after `last_event_id` when given.
    pub async fn events(&self, id: &str, last_event_id: Option<u64>) -> EventStream {
        self.events_with(&self.http, id, last_event_id).await
    }

    /// Opens the job's event stream as the caller `client` speaks for.
    pub async fn events_with(
        &self,
        client: &reqwest::Client,
        id: &str,
        last_event_id: Option<u64>,
    ) -> EventStream {
        let mut request = client.get(self.url(&format!("/api/v2/jobs/{id}/events")));
        if let Some(last) = last_event_id {
            request = request.header("last-event-id", last.to_string());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        EventStream {
            body: Box::pin(response.bytes_stream()),
            buffer: String::new(),
        }
    }

    /// Follows the job's events to the end of the stream and returns every event.
    pub async fn events_to_end(&self, id: &str) -> Vec<SseEvent> {
        self.events(id, None).await.collect_to_end().await
    }

    /// Follows the job's events until `status` is reached (or passed, when final).
    pub async fn wait_for_status(&self, id: &str, status: &str) {
        let mut events = self.events(id, None).await;
        loop {
            let event = events
                .next()
                .await
                .unwrap_or_else(|| panic!("stream ended before {status}"));
            if event.name == "status" && event.data["status"] == status {
                return;
            }
        }
    }

    /// Waits for the job to end and returns it as `GET /api/v2/jobs/{id}` shows it.
    pub async fn wait_final(&self, id: &str) -> Value {
        self.events_to_end(id).await;
        self.job(id).await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(served) = self.served.take() {
            served.abort();
        }
    }
}

pub async fn read_json(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let bytes = response.bytes().await.unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, body)
}

/// One server-sent event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub name: String,
    pub id: Option<u64>,
    pub data: Value,
}

type ByteStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// Reads `event:`/`id:`/`data:` frames off a response body; comments are skipped.
pub struct EventStream {
    body: ByteStream,
    buffer: String,
}

impl EventStream {
    /// The next event, or `None` when the server ended the stream.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                match parse_frame(&frame) {
                    Some(event) => return Some(event),
                    None => continue,
                }
            }
            let chunk = tokio::time::timeout(PATIENCE, self.body.next())
                .await
                .expect("an event before the timeout");
            match chunk {
                Some(chunk) => self
                    .buffer
                    .push_str(&String::from_utf8_lossy(&chunk.unwrap())),
                None => return None,
            }
        }
    }

    pub async fn collect_to_end(mut self) -> Vec<SseEvent> {
        let mut events = Vec::new();
        while let Some(event) = self.next().await {
            events.push(event);
        }
        events
    }
}

fn parse_frame(frame: &str) -> Option<SseEvent> {
    let (mut name, mut id, mut data) = (None, None, String::new());
    for line in frame.lines() {
        if let Some(value) = line.strip_prefix("event:") {
            name = Some(value.trim().to_owned());
        } else if let Some(value) = line.strip_prefix("id:") {
            id = value.trim().parse().ok();
        } else if let Some(value) = line.strip_prefix("data:") {
            data.push_str(value.strip_prefix(' ').unwrap_or(value));
        }
    }
    Some(SseEvent {
        name: name?,
        id,
        data: serde_json::from_str(&data).unwrap(),
    })
}

/// `EmptyImage -> SaveImage`: one PNG output, in about a millisecond.
pub fn save_image(prefix: &str) -> Value {
    json!({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 32, "batch_size": 1, "color": 16711680}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}},
    })
}

/// `DarkroomSteps -> SaveImage`: sampler-like progress, then one PNG output.
pub fn steps_then_save(steps: u64, step_ms: u64) -> Value {
    json!({
        "1": {"class_type": "DarkroomSteps", "inputs": {
            "steps": steps, "step_ms": step_ms, "preview": false, "preview_format": "JPEG",
            "progress_text": false, "size": 16, "color": 3368652, "always_run": true}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "steps"}},
    })
}

/// A run that goes on until it is interrupted (at most a minute).
pub fn until_interrupted() -> Value {
    json!({
        "1": {"class_type": "DarkroomUntilInterrupted", "inputs": {"max_seconds": 60, "heartbeat_ms": 20}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    })
}

/// Logs to the test's output when `RUST_LOG` is set.
fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

//! A `darkroom serve` process for tests that must kill it (SIGKILL) and start it again on
//! the same data folder, plus small helpers to drive the v2 API over HTTP.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

mod stop;

pub const WAIT: Duration = Duration::from_secs(60);

/// Runs a `darkroom` command on `data_dir` to its end, as an operator would: without the
/// test environment's `DARKROOM_*` settings or `RUST_LOG` (its logs at their default level).
pub async fn darkroom(data_dir: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_darkroom"));
    command.args(args).arg("--data-dir").arg(data_dir);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("DARKROOM_") || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    let run = tokio::time::timeout(WAIT, command.output());
    run.await.expect("darkroom answers in time").unwrap()
}

/// A running `darkroom serve`, killed when dropped.
pub struct DarkroomProcess {
    child: Child,
    /// Copies the server's stderr into its log file; done once the process has exited
    /// and every line is written.
    log: Option<tokio::task::JoinHandle<()>>,
    pub base: String,
    pub http: reqwest::Client,
}

impl DarkroomProcess {
    /// Starts `darkroom serve` on a free port with `data_dir` and one backend, and waits
    /// for the line saying it listens.
    pub async fn start(data_dir: &Path, backend: &str) -> Self {
        Self::start_with(data_dir, backend, &[]).await
    }

    /// Like [`Self::start`], with extra environment variables (`DARKROOM_*` settings).
    pub async fn start_with(data_dir: &Path, backend: &str, env: &[(&str, &str)]) -> Self {
        Self::start_with_backends(data_dir, &[backend], env).await
    }

    /// Like [`Self::start_with`], with several backends, named `backend-0`, `backend-1`...
    /// in the order given.
    pub async fn start_with_backends(
        data_dir: &Path,
        backends: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let backend_args = backends.iter().flat_map(|url| ["--backend", url]);
        let mut child = Command::new(env!("CARGO_BIN_EXE_darkroom"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(backend_args)
            .arg("--data-dir")
            .arg(data_dir)
            .env("RUST_LOG", "info,darkroom=debug")
            .env_remove("DARKROOM_CONFIG")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start darkroom");
        let stderr = child.stderr.take().unwrap();
        let log_path = data_dir.join(format!("darkroom-{}.log", child.id().unwrap_or(0)));
        let (address_tx, address_rx) = tokio::sync::oneshot::channel();
        let log = tokio::spawn(copy_log_and_find_address(stderr, log_path, address_tx));
        let address = tokio::time::timeout(WAIT, address_rx)
            .await
            .expect("darkroom did not start listening in time")
            .expect("darkroom exited before listening");
        Self {
            child,
            log: Some(log),
            base: format!("http://{address}"),
            http: reqwest::Client::new(),
        }
    }

    /// Stops the process with SIGTERM (as a person's Ctrl-C would) and waits for it to
    /// exit. Returns once its log file holds every line it wrote.
    pub async fn stop(mut self) {
        let exit = stop::terminate(&mut self.child, WAIT).await;
        assert!(exit.success(), "darkroom exited with {exit}");
        if let Some(log) = self.log.take() {
            log.await.unwrap();
        }
    }

    /// Ends the process with SIGKILL: no shutdown code runs. Returns once its log file
    /// holds every line it wrote.
    pub async fn kill_hard(mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
        if let Some(log) = self.log.take() {
            log.await.unwrap();
        }
    }

    pub async fn submit(&self, workflow: Value) -> Value {
        let response = self
            .http
            .post(format!("{}/api/v2/jobs", self.base))
            .json(&json!({ "workflow": workflow }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{:?}", response.text().await);
        response.json().await.unwrap()
    }

    /// `POST /api/v2/jobs/{id}/cancel`, which must be answered with 200.
    pub async fn cancel(&self, id: &str) -> Value {
        let response = self
            .http
            .post(format!("{}/api/v2/jobs/{id}/cancel", self.base))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{:?}", response.text().await);
        response.json().await.unwrap()
    }

    pub async fn job(&self, id: &str) -> Value {
        let response = self
            .http
            .get(format!("{}/api/v2/jobs/{id}", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// Follows the job's event stream until `done` holds for the job as
    /// `GET /api/v2/jobs/{id}` shows it; every event is a reason to look again.
    pub async fn wait_job(&self, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let job = self.job(id).await;
            if done(&job) {
                return job;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "job {id} never {what}: {job}"
            );
            let mut events = self.events(id).await;
            while tokio::time::timeout_at(deadline, events.next_event())
                .await
                .ok()
                .flatten()
                .is_some()
            {
                let job = self.job(id).await;
                if done(&job) {
                    return job;
                }
            }
        }
    }

    /// The job's SSE stream.
    pub async fn events(&self, id: &str) -> EventStream {
        let response = self
            .http
            .get(format!("{}/api/v2/jobs/{id}/events", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        EventStream {
            response,
            buffer: String::new(),
        }
    }

    pub async fn wait_final(&self, id: &str) -> Value {
        self.wait_job(id, "ended", is_final).await
    }

    /// Downloads every output of the job, asserting each matches its advertised size.
    pub async fn download_outputs(&self, job: &Value) -> Vec<Vec<u8>> {
        let mut files = Vec::new();
        for output in job["outputs"].as_array().unwrap() {
            let url = output["url"].as_str().unwrap();
            let url = if url.starts_with('/') {
                format!("{}{url}", self.base)
            } else {
                url.to_owned()
            };
            let response = self.http.get(url).send().await.unwrap();
            assert_eq!(response.status(), 200, "output {output} not readable");
            let bytes = response.bytes().await.unwrap().to_vec();
            assert_eq!(bytes.len() as u64, output["size_bytes"].as_u64().unwrap());
            files.push(bytes);
        }
        files
    }
}

pub fn is_final(job: &Value) -> bool {
    matches!(
        job["status"].as_str(),
        Some("succeeded" | "failed" | "canceled" | "expired")
    )
}

async fn copy_log_and_find_address(
    stderr: tokio::process::ChildStderr,
    log_path: PathBuf,
    address_tx: tokio::sync::oneshot::Sender<String>,
) {
    let mut lines = BufReader::new(stderr).lines();
    let mut log = tokio::fs::File::create(&log_path).await.ok();
    let mut address_tx = Some(address_tx);
    while let Ok(Some(line)) = lines.next_line().await {
        let line = strip_ansi(&line);
        if let Some(log) = log.as_mut() {
            use tokio::io::AsyncWriteExt;
            let _ = log.write_all(format!("{line}\n").as_bytes()).await;
        }
        if line.contains("listening")
            && let Some(address) = line.split("address=").nth(1)
            && let Some(sender) = address_tx.take()
        {
            let address = address.split_whitespace().next().unwrap_or_default();
            let _ = sender.send(address.to_owned());
        }
    }
    if let Some(log) = log.as_mut() {
        use tokio::io::AsyncWriteExt;
        let _ = log.flush().await;
    }
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for next in chars.by_ref() {
                if next.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `DarkroomSteps` running `steps` steps of `step_ms`, its image saved.
pub fn steps_graph(steps: u32, step_ms: u32, color: u32) -> Value {
    json!({
        "1": {"class_type": "DarkroomSteps", "inputs": {
            "steps": steps, "step_ms": step_ms, "preview": true, "preview_format": "JPEG",
            "progress_text": false, "size": 16, "color": color, "always_run": true}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "darkroom/steps"}}
    })
}

/// A minimal reader of `text/event-stream` frames.
pub struct EventStream {
    response: reqwest::Response,
    buffer: String,
}

/// One server-sent event: its name, its id (stored events carry their sequence number)
/// and its data.
#[derive(Debug, Clone)]
pub struct Frame {
    pub name: String,
    pub id: Option<u64>,
    pub data: Value,
}

impl EventStream {
    /// The next `(event, data)`; `None` when the stream ended.
    pub async fn next_event(&mut self) -> Option<(String, Value)> {
        let frame = self.next_frame().await?;
        Some((frame.name, frame.data))
    }

    /// The next frame; `None` when the stream ended.
    pub async fn next_frame(&mut self) -> Option<Frame> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::from("message");
                let mut id = None;
                let mut data = String::new();
                for line in frame.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        name = value.trim().to_owned();
                    } else if let Some(value) = line.strip_prefix("id:") {
                        id = value.trim().parse().ok();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.trim_start());
                    }
                }
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                let data = serde_json::from_str(&data).unwrap_or(Value::String(data));
                return Some(Frame { name, id, data });
            }
            let chunk = self.response.chunk().await.ok()??;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

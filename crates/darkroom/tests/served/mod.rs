//! A `darkroom serve` process in front of the shared real ComfyUI, with the shipped
//! templates and the test templates (`testing/templates`) in a folder of its own, for the
//! tests that drive Darkroom as a person or a script would: the page and the CLI.
//!
//! Waits are on events (the "listening" log line, a process exiting), each bounded, but
//! for the backend's first probe, which has no event: `/api/backends` is polled for it.

#![allow(
    dead_code,
    clippy::unwrap_used,
    reason = "each test binary uses a subset; a panic in a helper is the failure message we want"
)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

#[path = "../harness/stop.rs"]
mod stop;

/// From spawning `darkroom serve` to its "listening" log line.
pub const READY: Duration = Duration::from_secs(60);
/// From SIGTERM to the process having exited.
const STOP: Duration = Duration::from_secs(30);

/// A running `darkroom serve`, killed when dropped.
pub struct Served {
    child: Option<Child>,
    port: u16,
    backend: String,
    data_dir: tempfile::TempDir,
    templates_dir: tempfile::TempDir,
    log_path: PathBuf,
}

impl Served {
    /// Starts darkroom on a free loopback port in front of `backend`.
    pub async fn start(backend: &str) -> Self {
        let data_dir = tempfile::Builder::new()
            .prefix("darkroom-served-")
            .tempdir()
            .unwrap();
        let templates_dir = tempfile::Builder::new()
            .prefix("darkroom-templates-")
            .tempdir()
            .unwrap();
        let root = repo_root();
        copy_templates(&root.join("templates"), templates_dir.path());
        copy_templates(&root.join("testing/templates"), templates_dir.path());
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log_path = data_dir.path().join("darkroom.log");
        let mut served = Self {
            child: None,
            port,
            backend: backend.to_owned(),
            data_dir,
            templates_dir,
            log_path,
        };
        served.spawn().await;
        served.wait_probed().await;
        served
    }

    /// Waits, within `READY`, until every backend's node classes are known (its first
    /// probe): what depends on them, such as the templates no backend can run, is settled
    /// from then on.
    async fn wait_probed(&self) {
        let deadline = tokio::time::Instant::now() + READY;
        let url = format!("{}/api/backends", self.base_url());
        loop {
            let list: serde_json::Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
            let probed = list["backends"].as_array().is_some_and(|backends| {
                backends
                    .iter()
                    .all(|backend| !backend["node_classes"].is_null())
            });
            if probed {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the backend was never probed: {list}\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops the server with SIGTERM (as a person's Ctrl-C would), waits for it to exit,
    /// and starts it again on the same port and data.
    pub async fn restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop::terminate(&mut child, STOP).await;
        }
        self.spawn().await;
    }

    async fn spawn(&mut self) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_darkroom"));
        command
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
            .args(["--backend", &self.backend])
            .arg("--data-dir")
            .arg(self.data_dir.path())
            .arg("--templates-dir")
            .arg(self.templates_dir.path())
            .env("RUST_LOG", "info,darkroom=debug")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // The server reads DARKROOM_* variables; the test's own must not leak into it.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("DARKROOM_") {
                command.env_remove(name);
            }
        }
        // One prompt inside ComfyUI at a time, so a second job visibly waits in Darkroom's
        // queue (the page shows its position) instead of in ComfyUI's.
        command.env("DARKROOM_PROMPTS_PER_BACKEND", "1");
        let mut child = command.spawn().expect("start the darkroom binary");
        let stderr = child.stderr.take().unwrap();
        let (listening_tx, listening_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(copy_log(stderr, self.log_path.clone(), listening_tx));
        self.child = Some(child);
        let started = tokio::time::timeout(READY, listening_rx).await;
        assert!(
            matches!(started, Ok(Ok(()))),
            "darkroom did not start listening:\n{}",
            self.log_tail()
        );
    }

    /// Creates an API key with `darkroom keys create` on the server's database (the
    /// running server sees it at once) and returns the key. From then on every request
    /// needs a key.
    pub async fn create_key(&self, name: &str) -> String {
        let created = Command::new(env!("CARGO_BIN_EXE_darkroom"))
            .args(["keys", "create", name, "--data-dir"])
            .arg(self.data_dir.path())
            .env_remove("DARKROOM_CONFIG")
            .env_remove("DARKROOM_DATABASE_URL")
            .output()
            .await
            .unwrap();
        assert!(
            created.status.success(),
            "darkroom keys create failed: {}",
            String::from_utf8_lossy(&created.stderr)
        );
        let stdout = String::from_utf8_lossy(&created.stdout).into_owned();
        stdout.lines().last().unwrap().trim().to_owned()
    }

    /// The last lines of the server's log (all its runs), for failure messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }
}

/// Appends the server's log lines to `log_path`, and says when it listens.
async fn copy_log(
    stderr: tokio::process::ChildStderr,
    log_path: PathBuf,
    listening: tokio::sync::oneshot::Sender<()>,
) {
    let mut log = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .await
        .unwrap();
    let mut listening = Some(listening);
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let _ = log.write_all(format!("{line}\n").as_bytes()).await;
        if line.contains("listening")
            && let Some(sender) = listening.take()
        {
            let _ = sender.send(());
        }
    }
}

/// The repository's root, as this crate was built from.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn copy_templates(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let is_template = matches!(
            path.extension().and_then(|extension| extension.to_str()),
            Some("json" | "toml")
        );
        if is_template {
            std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
        }
    }
}

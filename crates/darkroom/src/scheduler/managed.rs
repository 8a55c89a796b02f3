//! Managed backends: ComfyUI processes Darkroom starts, watches and stops.
//!
//! One supervisor task per managed backend starts `python main.py` with the backend's own
//! output, temp, input and user folders (so two processes never write the same file
//! name) on a loopback port, copies its output into the log (`comfyui` target) and a
//! per-backend log file, calls it ready once `GET /system_stats` answers, and tells the
//! backend's driver about each start, readiness and exit. A process that exits is started
//! again after an exponential backoff, reset once a process has stayed up a while. On
//! shutdown the process is killed; the child is also killed if the task is dropped.
//!
//! Only the supervisor starts or ends the process, and only the one it started.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use comfy::ComfyUiClient;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command as ProcessCommand};
use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;

use super::{Command, Context};
use crate::config::ManagedConfig;
use crate::jobs::model::BackendId;

/// First wait before starting a process that exited.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// A process that stayed up this long resets the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(60);
/// How often readiness is asked while the process starts.
const READY_POLL: Duration = Duration::from_millis(250);

/// One managed backend: its settings, its port and its folder.
#[derive(Debug, Clone)]
pub struct ManagedSpec {
    pub config: ManagedConfig,
    pub port: u16,
    /// `<data_dir>/backends/NAME`: output/, temp/, input/, user/ and comfyui.log.
    pub folder: PathBuf,
}

/// What the supervisor tells the driver.
#[derive(Debug, Clone)]
pub enum ProcessEvent {
    Started { pid: Option<u32> },
    Ready,
    Exited { description: String },
}

impl ManagedSpec {
    /// Fixes the port (a free loopback port when the configuration says 0) and the
    /// folder of backend `name` under `data_dir`.
    ///
    /// # Errors
    ///
    /// No free port, or `main.py` missing from `comfyui_dir`.
    pub fn prepare(name: &str, config: ManagedConfig, data_dir: &Path) -> std::io::Result<Self> {
        let main = config.comfyui_dir.join("main.py");
        if !main.is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} does not exist", main.display()),
            ));
        }
        let port = match config.port {
            0 => std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port(),
            port => port,
        };
        Ok(Self {
            config,
            port,
            folder: data_dir.join("backends").join(name),
        })
    }

    /// The URL Darkroom reaches it at.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log_file(&self) -> PathBuf {
        self.folder.join("comfyui.log")
    }

    fn command(&self) -> std::io::Result<ProcessCommand> {
        let folder = |name: &str| -> std::io::Result<PathBuf> {
            let path = self.folder.join(name);
            std::fs::create_dir_all(&path)?;
            Ok(path)
        };
        // Temporary files of its own (PyTorch leaves a folder behind at every start) go to
        // a folder of this backend's, emptied at each start, not the system's.
        remove_folder(&self.folder.join("tmp"))?;
        let mut command = ProcessCommand::new(&self.config.python);
        command
            .arg(self.config.comfyui_dir.join("main.py"))
            .args(["--listen", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .arg("--output-directory")
            .arg(folder("output")?)
            .arg("--temp-directory")
            .arg(folder("temp")?)
            .arg("--input-directory")
            .arg(folder("input")?)
            .arg("--user-directory")
            .arg(folder("user")?)
            .arg("--disable-auto-launch")
            .args(&self.config.args)
            .env("TMPDIR", folder("tmp")?)
            .envs(&self.config.env)
            .current_dir(&self.config.comfyui_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        Ok(command)
    }
}

/// Removes the folder `path` and what is in it; one that is not there is fine.
fn remove_folder(path: &std::path::Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

pub(super) struct Supervisor {
    pub id: BackendId,
    pub spec: ManagedSpec,
    pub client: ComfyUiClient,
    pub driver: mpsc::UnboundedSender<Command>,
    pub context: Arc<Context>,
    pub stop: CancellationToken,
}

impl Supervisor {
    pub(super) async fn run(self) {
        let mut backoff = BACKOFF_MIN;
        let mut starts = 0u64;
        while !self.stop.is_cancelled() {
            let began = Instant::now();
            match self.spawn().await {
                Ok(child) => {
                    if starts > 0 {
                        self.context.metrics.backend_restarted(&self.id.0);
                        self.context
                            .board
                            .update(&self.id, |status| status.restarts += 1);
                    }
                    starts += 1;
                    let description = self.watch(child).await;
                    if self.stop.is_cancelled() {
                        break;
                    }
                    tracing::error!(backend.id = %self.id, reason = %description, "comfyui process ended");
                    self.tell(ProcessEvent::Exited { description });
                }
                Err(error) => {
                    let description = format!("cannot start comfyui: {error}");
                    tracing::error!(backend.id = %self.id, %error, "cannot start comfyui");
                    self.tell(ProcessEvent::Exited { description });
                }
            }
            if began.elapsed() > STABLE_AFTER {
                backoff = BACKOFF_MIN;
            }
            tracing::info!(backend.id = %self.id, backoff = ?backoff, "restarting comfyui after backoff");
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = self.stop.cancelled() => break,
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
        tracing::info!(backend.id = %self.id, "supervisor stopped");
    }

    fn tell(&self, event: ProcessEvent) {
        let _ = self.driver.send(Command::Process(event));
    }

    async fn spawn(&self) -> std::io::Result<Child> {
        let mut command = self.spec.command()?;
        let mut child = command.spawn()?;
        let pid = child.id();
        tracing::info!(backend.id = %self.id, pid = ?pid, port = self.spec.port, "comfyui process started");

        let log = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.spec.log_file())
            .await?;
        let log = Arc::new(Mutex::new(log));
        let header = format!("--- darkroom started comfyui, pid {pid:?} ---\n");
        log.lock().await.write_all(header.as_bytes()).await?;
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(copy_lines(stdout, self.id.clone(), Arc::clone(&log)));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(copy_lines(stderr, self.id.clone(), log));
        }
        self.context
            .board
            .update(&self.id, |status| status.pid = pid);
        self.tell(ProcessEvent::Started { pid });
        Ok(child)
    }

    /// Follows one process until it exits (or is killed for not becoming ready, or for
    /// shutdown), and says how it ended.
    async fn watch(&self, mut child: Child) -> String {
        let timeout = self.spec.config.ready_timeout;
        let ready = tokio::select! {
            ready = tokio::time::timeout(timeout, self.wait_ready()) => ready.is_ok(),
            status = child.wait() => return exit_description(status),
            () = self.stop.cancelled() => return self.kill(child).await,
        };
        if !ready {
            self.kill(child).await;
            return format!("not ready within {timeout:?}; killed");
        }
        tracing::info!(backend.id = %self.id, "comfyui ready");
        self.tell(ProcessEvent::Ready);
        tokio::select! {
            status = child.wait() => exit_description(status),
            () = self.stop.cancelled() => self.kill(child).await,
        }
    }

    async fn wait_ready(&self) {
        loop {
            let probe = tokio::time::timeout(Duration::from_secs(2), self.client.system_stats());
            if matches!(probe.await, Ok(Ok(_))) {
                return;
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    async fn kill(&self, mut child: Child) -> String {
        let pid = child.id();
        if let Err(error) = child.start_kill() {
            tracing::warn!(backend.id = %self.id, %error, "cannot kill comfyui");
        }
        let status = child.wait().await;
        self.context
            .board
            .update(&self.id, |status| status.pid = None);
        tracing::info!(backend.id = %self.id, pid = ?pid, "comfyui process stopped");
        exit_description(status)
    }
}

fn exit_description(status: std::io::Result<std::process::ExitStatus>) -> String {
    match status {
        Ok(status) => format!("the comfyui process exited ({status})"),
        Err(error) => format!("the comfyui process could not be waited for: {error}"),
    }
}

/// Copies a stream of the process into the log file and, line by line, into tracing.
async fn copy_lines(
    stream: impl tokio::io::AsyncRead + Unpin,
    id: BackendId,
    log: Arc<Mutex<tokio::fs::File>>,
) {
    let span = tracing::info_span!("backend", backend.id = %id);
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        span.in_scope(|| tracing::info!(target: "comfyui", line = %line, "comfyui output"));
        let mut file = log.lock().await;
        if file.write_all(line.as_bytes()).await.is_err() || file.write_all(b"\n").await.is_err() {
            break;
        }
    }
}

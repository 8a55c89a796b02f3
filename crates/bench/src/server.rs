//! The processes a benchmark starts: the `darkroom` binary (on a free loopback port, with
//! a data folder of its own) and, for comparison, `comfy-api-proxy`. Each is killed when
//! its handle is dropped; each one's memory is read from `/proc/PID/status`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// How long a server may take to start listening.
const START_PATIENCE: Duration = Duration::from_secs(60);

/// A process's resident memory, from `/proc/PID/status`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Memory {
    /// `VmRSS`: resident now, in MiB.
    pub rss_mib: f64,
    /// `VmHWM`: the most it has been resident since it started, in MiB.
    pub peak_mib: f64,
}

impl Memory {
    /// # Errors
    ///
    /// When the process is gone or its status has no memory lines.
    pub fn of(pid: u32) -> anyhow::Result<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("cannot read the status of process {pid}"))?;
        let field = |name: &str| -> anyhow::Result<f64> {
            let line = status
                .lines()
                .find(|line| line.starts_with(name))
                .with_context(|| format!("process {pid} has no {name}"))?;
            let kib: f64 = line
                .trim_start_matches(name)
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .with_context(|| format!("unreadable {name} line {line:?}"))?;
            Ok(kib / 1024.0)
        };
        Ok(Self {
            rss_mib: field("VmRSS:")?,
            peak_mib: field("VmHWM:")?,
        })
    }
}

/// A running `darkroom serve`.
#[derive(Debug)]
pub struct Darkroom {
    child: Child,
    pid: u32,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    data_dir: tempfile::TempDir,
}

impl Darkroom {
    /// Starts `binary serve` on `127.0.0.1:0` with a fresh data folder, the given backends
    /// and extra `DARKROOM_*` settings, and waits for it to say where it listens. Every
    /// `DARKROOM_*` variable of this process is left out, so only what is passed counts.
    ///
    /// # Errors
    ///
    /// When the binary cannot start or does not listen within a minute.
    pub async fn start(
        binary: &Path,
        backends: &[String],
        settings: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let data_dir = tempfile::Builder::new()
            .prefix("darkroom-bench-")
            .tempdir()?;
        let mut command = Command::new(binary);
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir.path());
        for backend in backends {
            command.args(["--backend", backend]);
        }
        for (name, _) in std::env::vars() {
            if name.starts_with("DARKROOM_") || name == "RUST_LOG" {
                command.env_remove(name);
            }
        }
        let mut child = command
            .envs(settings.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let pid = child.id().context("darkroom exited at once")?;
        let stderr = child.stderr.take().context("no stderr pipe")?;
        let log = data_dir.path().join("darkroom.log");
        let (address_tx, address_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(copy_log_and_find_address(stderr, log.clone(), address_tx));
        let address = match tokio::time::timeout(START_PATIENCE, address_rx).await {
            Ok(Ok(address)) => address,
            _ => bail!(
                "darkroom did not start listening; its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ),
        };
        Ok(Self {
            child,
            pid,
            base: format!("http://{address}"),
            data_dir,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// CPU time the process has used so far (user and system), from `/proc/PID/stat`:
    /// unlike a job's wall time, it does not grow when other programs share the machine.
    ///
    /// # Errors
    ///
    /// When the process is gone or its stat line is malformed.
    pub fn cpu_time(&self) -> anyhow::Result<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .with_context(|| format!("cannot read the stat of process {}", self.pid))?;
        // The command name may hold spaces; the fields after its closing parenthesis are
        // fixed: utime and stime are the 12th and 13th of them (fields 14 and 15).
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let ticks = |index: usize| -> anyhow::Result<u64> {
            fields
                .get(index)
                .context("short stat line")?
                .parse::<u64>()
                .context("malformed stat field")
        };
        // Linux reports these in USER_HZ, which is 100 on every platform it supports.
        let total = ticks(11)? + ticks(12)?;
        Ok(Duration::from_millis(total * 10))
    }

    /// How many times the process's threads, all of them, gave up the CPU to wait
    /// (voluntary context switches): each hand-over between threads costs two, so this
    /// counts the hops a job makes between Darkroom's own threads, whatever the machine's
    /// speed or load.
    ///
    /// # Errors
    ///
    /// When the process is gone.
    pub fn context_switches(&self) -> anyhow::Result<u64> {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", self.pid))
            .with_context(|| format!("cannot list the threads of process {}", self.pid))?;
        let mut total = 0;
        for task in tasks {
            // A thread that ended meanwhile took its count with it.
            let Ok(status) = std::fs::read_to_string(task?.path().join("status")) else {
                continue;
            };
            total += status
                .lines()
                .find_map(|line| line.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|count| count.trim().parse::<u64>().ok())
                .unwrap_or(0);
        }
        Ok(total)
    }

    /// # Errors
    ///
    /// When the process is gone.
    pub fn memory(&self) -> anyhow::Result<Memory> {
        Memory::of(self.pid)
    }

    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// Keeps the data folder (its database and `darkroom.log`) after the process ends.
    pub fn keep_data(&mut self) {
        self.data_dir.disable_cleanup(true);
        tracing::warn!(folder = %self.data_dir.path().display(), "darkroom's data folder and log are kept");
    }

    /// Ends the process (SIGKILL: nothing it does on shutdown is measured) and waits.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// Copies the server's log into `log_path` and sends the address of its `listening`
/// line.
async fn copy_log_and_find_address(
    stderr: tokio::process::ChildStderr,
    log_path: PathBuf,
    address_tx: tokio::sync::oneshot::Sender<String>,
) {
    let mut lines = BufReader::new(stderr).lines();
    let mut log = tokio::fs::File::create(&log_path).await.ok();
    let mut address_tx = Some(address_tx);
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(log) = log.as_mut() {
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
}

/// A running `comfy-api-proxy` in front of one backend.
#[derive(Debug)]
pub struct Proxy {
    child: Child,
    pid: u32,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    log: tempfile::NamedTempFile,
}

impl Proxy {
    /// Starts `program run --comfyui BACKEND --host 127.0.0.1 --port PORT` on a free port
    /// and waits until its health route answers.
    ///
    /// # Errors
    ///
    /// When it cannot start or does not answer within a minute.
    pub async fn start(
        program: &Path,
        backend: &str,
        http: &reqwest::Client,
    ) -> anyhow::Result<Self> {
        let port = free_port()?;
        let log = tempfile::Builder::new()
            .prefix("comfy-api-proxy-")
            .suffix(".log")
            .tempfile()?;
        let mut child = Command::new(program)
            .args([
                "run",
                "--comfyui",
                backend.trim_end_matches('/'),
                "--host",
                "127.0.0.1",
            ])
            .args(["--port", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.reopen()?)
            .stderr(log.reopen()?)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", program.display()))?;
        let pid = child.id().context("comfy-api-proxy exited at once")?;
        let base = format!("http://127.0.0.1:{port}");
        let health = format!("{base}/api/v2/health");
        let deadline = tokio::time::Instant::now() + START_PATIENCE;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                bail!(
                    "comfy-api-proxy exited ({status}): {}",
                    std::fs::read_to_string(log.path()).unwrap_or_default()
                );
            }
            if http
                .get(&health)
                .send()
                .await
                .is_ok_and(|response| response.status().is_success())
            {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                bail!("comfy-api-proxy did not answer on {health} within a minute");
            }
            // A Python server says it is ready in no other way than by answering.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self {
            child,
            pid,
            base,
            log,
        })
    }

    /// # Errors
    ///
    /// When the process is gone.
    pub fn memory(&self) -> anyhow::Result<Memory> {
        Memory::of(self.pid)
    }

    /// The last lines of its log, for a report of what went wrong.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log.path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// A loopback port free at the moment of asking, for a server that cannot be handed a
/// listener (a brief race with other programs is accepted).
///
/// # Errors
///
/// When no loopback port can be bound.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_of_this_process_is_read_from_proc() {
        let memory = Memory::of(std::process::id()).unwrap();
        assert!(memory.rss_mib > 0.0);
        assert!(memory.peak_mib >= memory.rss_mib);
        assert!(Memory::of(u32::MAX).is_err());
    }
}

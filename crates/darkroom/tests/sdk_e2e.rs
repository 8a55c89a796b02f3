//! The official Python SDK (`comfy-sdk` from PyPI, pinned in `testing/sdk`) against
//! `darkroom serve` in front of a real ComfyUI: it submits a workflow, streams its
//! events, downloads its outputs, uploads an asset a workflow uses, and cancels a running
//! job, through the SDK's public API only.
//!
//! The checks live in `testing/sdk/sdk_e2e.py`; this test builds the stage (ComfyUI,
//! the darkroom binary on a temp data folder, the SDK's venv), runs the script under a
//! time bound, and stops what it started. Waits are on events (a log line, an HTTP
//! answer, a pipe closing), each bounded.

#![allow(
    clippy::unwrap_used,
    reason = "helpers outside #[test] fns panic too: that is the failure message we want"
)]

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use testkit::RealComfyUi;

/// From spawning `darkroom serve` to its "listening" log line.
const DARKROOM_READY: Duration = Duration::from_secs(60);
/// Building the SDK venv from PyPI the first time (instant afterwards).
const SDK_INSTALL: Duration = Duration::from_secs(600);
/// The script bounds itself at 420 s; this catches a script that hangs regardless.
const SDK_RUN: Duration = Duration::from_secs(480);

#[test]
fn official_python_sdk_drives_darkroom_end_to_end() {
    let started = Instant::now();
    let Some(comfyui) = RealComfyUi::shared() else {
        return;
    };
    let comfyui_ready = started.elapsed();

    let data_dir = tempfile::Builder::new()
        .prefix("darkroom-sdk-e2e-")
        .tempdir()
        .unwrap();
    let darkroom = Darkroom::start(data_dir.path(), &comfyui.base_url());
    let darkroom_ready = started.elapsed();

    let python = install_sdk();
    let sdk_installed = started.elapsed();

    let script = testkit::repo_root().join("testing/sdk/sdk_e2e.py");
    let mut command = Command::new(&python);
    command
        .arg(&script)
        .env("COMFY_BASE_URL", darkroom.base_url())
        .env_remove("COMFY_API_KEY");
    let run = run_bounded(command, SDK_RUN, "testing/sdk/sdk_e2e.py");
    let finished = started.elapsed();

    eprintln!(
        "timings: comfyui {comfyui_ready:.1?}, darkroom {:.1?}, sdk install {:.1?}, sdk run {:.1?}",
        darkroom_ready - comfyui_ready,
        sdk_installed - darkroom_ready,
        finished - sdk_installed,
    );
    assert!(
        run.status.success(),
        "the SDK run failed ({}):\n--- summary (stdout)\n{}--- script log (stderr)\n{}\
         --- darkroom log (last lines)\n{}\n--- comfyui log (last lines)\n{}",
        run.status,
        run.stdout,
        run.stderr,
        darkroom.log_tail(),
        comfyui.log_tail(),
    );
    // Shown with --nocapture: every step and every HTTP request the SDK made.
    eprintln!("{}{}", run.stderr, run.stdout.trim_end());
}

/// A `darkroom serve` process of this test, killed (by its own handle) when dropped.
struct Darkroom {
    child: Child,
    addr: SocketAddr,
    log_path: PathBuf,
}

enum Startup {
    Listening,
    Exited,
}

impl Darkroom {
    /// Starts the binary on a free loopback port, waits for its "listening" line, then
    /// for `GET /api/v2/health` to answer 200.
    fn start(data_dir: &Path, backend: &str) -> Self {
        let addr = free_loopback_addr();
        let log_path = data_dir.join("darkroom.log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_darkroom"));
        command
            .args(["serve", "--listen", &addr.to_string(), "--backend", backend])
            .arg("--data-dir")
            .arg(data_dir)
            .env("RUST_LOG", "info,darkroom=debug")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // The configuration reads DARKROOM_* variables; the test's own settings must not
        // leak into the server it starts.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("DARKROOM_") {
                command.env_remove(name);
            }
        }
        let mut child = command.spawn().expect("start the darkroom binary");
        let stderr = child.stderr.take().unwrap();
        let (startup_tx, startup_rx) = mpsc::channel();
        let log = File::create(&log_path).unwrap();
        std::thread::spawn(move || copy_log(stderr, log, &startup_tx));

        let mut darkroom = Self {
            child,
            addr,
            log_path,
        };
        match startup_rx.recv_timeout(DARKROOM_READY) {
            Ok(Startup::Listening) => {}
            Ok(Startup::Exited) => panic!(
                "darkroom exited before listening ({:?}):\n{}",
                darkroom.child.wait(),
                darkroom.log_tail()
            ),
            Err(_) => panic!(
                "darkroom did not log \"listening\" within {DARKROOM_READY:?}:\n{}",
                darkroom.log_tail()
            ),
        }
        let status = http_status(darkroom.addr, "/api/v2/health");
        assert!(
            matches!(status, Ok(200)),
            "GET /api/v2/health answered {status:?}:\n{}",
            darkroom.log_tail()
        );
        darkroom
    }

    fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }
}

impl Drop for Darkroom {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Copies the server's log lines into `log`, reporting the first "listening" line, and
/// the end of the stream (the process is gone) if that came first.
fn copy_log(stderr: impl Read, mut log: File, startup: &mpsc::Sender<Startup>) {
    let mut listening = false;
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        let _ = writeln!(log, "{line}");
        if !listening && line.contains("listening") {
            listening = true;
            let _ = startup.send(Startup::Listening);
        }
    }
    let _ = startup.send(Startup::Exited);
}

fn free_loopback_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// The status code of a plain HTTP/1.1 GET, with bounded connect and read times.
fn http_status(addr: SocketAddr, path: &str) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = String::new();
    BufReader::new(stream).read_line(&mut head)?;
    head.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP status line: {head:?}")))
}

/// Runs `testing/sdk/install.sh` (instant once the venv is there) and returns the venv's
/// python, which the script prints as its only stdout line.
fn install_sdk() -> PathBuf {
    let mut command = Command::new("bash");
    command.arg(testkit::repo_root().join("testing/sdk/install.sh"));
    let install = run_bounded(command, SDK_INSTALL, "testing/sdk/install.sh");
    assert!(
        install.status.success(),
        "testing/sdk/install.sh failed ({}):\n{}{}",
        install.status,
        install.stdout,
        install.stderr
    );
    let python = PathBuf::from(install.stdout.lines().last().unwrap_or_default().trim());
    assert!(
        python.is_file(),
        "install.sh printed no python: {:?}",
        install.stdout
    );
    python
}

struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `command` to its end, or kills it (by its own handle) after `bound`.
fn run_bounded(mut command: Command, bound: Duration, what: &str) -> Finished {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {what}: {error}"));
    let (closed_tx, closed_rx) = mpsc::channel();
    let stdout = collect(child.stdout.take().unwrap(), closed_tx.clone());
    let stderr = collect(child.stderr.take().unwrap(), closed_tx);

    // Both pipes closing is the event that the process is done with its output.
    let deadline = Instant::now() + bound;
    for _ in 0..2 {
        let left = deadline.saturating_duration_since(Instant::now());
        if closed_rx.recv_timeout(left).is_err() {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} did not finish within {bound:?}\n--- stdout\n{}--- stderr\n{}",
                stdout.lock().unwrap(),
                stderr.lock().unwrap()
            );
        }
    }
    let status = child.wait().unwrap();
    let text = |buffer: Arc<Mutex<String>>| std::mem::take(&mut *buffer.lock().unwrap());
    Finished {
        status,
        stdout: text(stdout),
        stderr: text(stderr),
    }
}

/// Reads `pipe` to its end on a thread of its own, line by line into the returned buffer.
fn collect(pipe: impl Read + Send + 'static, closed: mpsc::Sender<()>) -> Arc<Mutex<String>> {
    let buffer = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&buffer);
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            let mut text = sink.lock().unwrap();
            text.push_str(&line);
            text.push('\n');
        }
        let _ = closed.send(());
    });
    buffer
}

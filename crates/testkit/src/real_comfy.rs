//! Starting and stopping a real ComfyUI for tests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Where the install script puts ComfyUI (`DARKROOM_COMFYUI_HOME` or the user's cache).
pub fn comfyui_home() -> PathBuf {
    if let Some(home) = std::env::var_os("DARKROOM_COMFYUI_HOME") {
        return PathBuf::from(home);
    }
    let user_home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(user_home).join(".cache/darkroom/comfyui")
}

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// How to start one ComfyUI.
#[derive(Debug, Clone)]
pub struct StartOptions {
    /// `--preview-method latent2rgb --preview-size 64`, so KSampler sends previews.
    pub latent_previews: bool,
    /// How long to wait for `/system_stats` to answer.
    pub ready_timeout: Duration,
}

impl Default for StartOptions {
    fn default() -> Self {
        Self {
            latent_previews: true,
            ready_timeout: Duration::from_secs(120),
        }
    }
}

/// A running ComfyUI with its own base folder (models, custom nodes, input, output).
///
/// The server runs under a small shell guard that reads its stdin: when this value is
/// dropped, or the test process dies, the pipe closes and the guard kills the server.
#[derive(Debug)]
pub struct RealComfyUi {
    addr: SocketAddr,
    guard: Child,
    guard_stdin: Option<ChildStdin>,
    base_dir: tempfile::TempDir,
}

impl RealComfyUi {
    /// The server shared by every test of this test binary, started on first use.
    /// Returns `None` only when the tier is explicitly skipped.
    pub fn shared() -> Option<&'static RealComfyUi> {
        static SHARED: OnceLock<Option<RealComfyUi>> = OnceLock::new();
        SHARED
            .get_or_init(|| Self::start(StartOptions::default()))
            .as_ref()
    }

    /// Starts a server of its own, for a test that restarts or kills it. Blocks until it
    /// answers. Returns `None` only when the tier is explicitly skipped.
    ///
    /// # Panics
    ///
    /// When ComfyUI is not installed or does not become ready: the message says why.
    pub fn start(options: StartOptions) -> Option<Self> {
        if std::env::var("DARKROOM_SKIP_REAL_COMFYUI").as_deref() == Ok("1") {
            eprintln!("SKIPPED: real ComfyUI tier (DARKROOM_SKIP_REAL_COMFYUI=1)");
            return None;
        }
        let home = comfyui_home();
        let start_script = home.join("start.sh");
        assert!(
            home.join(".installed").exists() && start_script.exists(),
            "no ComfyUI installed in {}: run scripts/install-comfyui.sh first \
             (or set DARKROOM_SKIP_REAL_COMFYUI=1 to skip this tier knowingly)",
            home.display()
        );

        let base_dir = prepare_base_dir(&home);
        let addr = free_loopback_addr();
        let mut args = vec![
            "--port".to_owned(),
            addr.port().to_string(),
            "--base-directory".to_owned(),
            base_dir.path().display().to_string(),
        ];
        if options.latent_previews {
            args.extend(
                ["--preview-method", "latent2rgb", "--preview-size", "64"].map(String::from),
            );
        }
        let mut server = Self::spawn_guarded(&start_script, &args, base_dir);
        server.addr = addr;
        server.wait_ready(options.ready_timeout);
        Some(server)
    }

    fn spawn_guarded(start_script: &Path, args: &[String], base_dir: tempfile::TempDir) -> Self {
        let log =
            std::fs::File::create(base_dir.path().join("comfyui.log")).expect("create comfyui.log");
        let tmp = base_dir.path().join("tmp");
        std::fs::create_dir_all(&tmp).expect("create the server's temporary folder");
        // The guard starts the server, then blocks reading stdin; EOF (our end dropped or
        // our process gone) kills the server, waits for it and removes its base folder.
        // The folder is the guard's to remove: the shared server lives in a static, which
        // is never dropped, so its `TempDir` never removes it (every test binary using it
        // left one behind in the temporary folder).
        let guard_script = r#"script="$1"; shift
"$script" "$@" </dev/null &
server=$!
echo "$server" > "$GUARD_PID_FILE"
read -r _ignored || true
kill "$server" 2>/dev/null
wait "$server" 2>/dev/null
if [ -n "$GUARD_BASE_DIR" ] && [ -d "$GUARD_BASE_DIR" ]; then rm -rf -- "$GUARD_BASE_DIR"; fi
exit 0"#;
        let mut guard = Command::new("bash")
            .arg("-c")
            .arg(guard_script)
            .arg("comfyui-guard")
            .arg(start_script)
            .args(args)
            .env("GUARD_PID_FILE", base_dir.path().join("server.pid"))
            .env("GUARD_BASE_DIR", base_dir.path())
            // PyTorch leaves a folder in the temporary folder at every start: let it be in
            // the base folder, which goes when the server does.
            .env("TMPDIR", &tmp)
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn bash to start ComfyUI");
        let guard_stdin = guard.stdin.take();
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            guard,
            guard_stdin,
            base_dir,
        }
    }

    fn wait_ready(&mut self, timeout: Duration) {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.guard.try_wait() {
                panic!(
                    "ComfyUI exited ({status}) before it was ready:\n{}",
                    self.log_tail()
                );
            }
            if system_stats_answers(self.addr) {
                return;
            }
            assert!(
                started.elapsed() < timeout,
                "ComfyUI not ready after {timeout:?}:\n{}",
                self.log_tail()
            );
            // ComfyUI announces readiness in no other way than answering on its port.
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `http://127.0.0.1:PORT/`.
    pub fn base_url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's base folder (its `output/`, `input/`, `temp/` are inside).
    pub fn base_dir(&self) -> &Path {
        self.base_dir.path()
    }

    /// The process id of the Python server itself.
    pub fn server_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.base_dir.path().join("server.pid")).ok()?;
        text.trim().parse().ok()
    }

    /// The last lines of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log =
            std::fs::read_to_string(self.base_dir.path().join("comfyui.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Stops the server and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut stdin) = self.guard_stdin.take() {
            let _ = stdin.write_all(b"stop\n");
        }
        let _ = self.guard.wait();
    }
}

impl Drop for RealComfyUi {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A fresh ComfyUI base folder holding the project's test nodes (`custom_nodes/`) and the
/// tiny checkpoint (`models/checkpoints/`), removed when dropped. For tests that start
/// ComfyUI another way (Darkroom's managed backends) with `--base-directory`.
///
/// # Panics
///
/// When the folder cannot be made or the installed checkpoint is missing.
pub fn prepare_base_dir(home: &Path) -> tempfile::TempDir {
    let base_dir = tempfile::Builder::new()
        .prefix("darkroom-comfyui-")
        .tempdir()
        .expect("create a base folder for ComfyUI");
    let custom_nodes = base_dir.path().join("custom_nodes");
    let checkpoints = base_dir.path().join("models/checkpoints");
    std::fs::create_dir_all(&custom_nodes).expect("create custom_nodes");
    std::fs::create_dir_all(&checkpoints).expect("create models/checkpoints");

    let nodes = repo_root().join("testing/comfy-nodes/darkroom_test_nodes");
    let nodes = nodes.canonicalize().unwrap_or(nodes);
    std::os::unix::fs::symlink(&nodes, custom_nodes.join("darkroom_test_nodes"))
        .expect("link the test nodes");
    let checkpoint = home.join("models/tiny-sd15.safetensors");
    assert!(
        checkpoint.exists(),
        "{} is missing: run scripts/install-comfyui.sh",
        checkpoint.display()
    );
    std::os::unix::fs::symlink(&checkpoint, checkpoints.join("tiny-sd15.safetensors"))
        .expect("link the tiny checkpoint");
    base_dir
}

fn free_loopback_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    listener.local_addr().expect("local address")
}

/// A bare HTTP/1.0 probe, so readiness can be checked from any thread without an async
/// runtime (the shared server outlives every test's runtime).
fn system_stats_answers(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /system_stats HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.ends_with(b"200")
}

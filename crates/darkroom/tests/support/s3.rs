//! moto's S3 server for the S3 blob-store tests: one per test binary, on a free loopback
//! port, under a shell guard that kills it by pid when this process ends (the guard's
//! stdin closes). Each test makes a bucket of its own.
//!
//! Installed by `scripts/install-moto.sh`; without it these tests fail saying so, unless
//! `DARKROOM_SKIP_S3=1`, which skips them with a loud notice.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use darkroom::artifacts::S3Settings;

const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running moto server.
#[derive(Debug)]
pub struct MotoServer {
    addr: SocketAddr,
    guard: Mutex<(Child, Option<ChildStdin>)>,
    log: tempfile::NamedTempFile,
}

impl MotoServer {
    /// The server shared by this test binary, started on first use; `None` when the S3
    /// tier is skipped on purpose.
    ///
    /// # Panics
    ///
    /// When moto is not installed or does not start: the message says what to do.
    pub fn shared() -> Option<&'static MotoServer> {
        static SHARED: OnceLock<Option<MotoServer>> = OnceLock::new();
        SHARED.get_or_init(Self::start).as_ref()
    }

    #[allow(clippy::print_stderr, reason = "a skipped tier says so loudly")]
    fn start() -> Option<Self> {
        if std::env::var("DARKROOM_SKIP_S3").as_deref() == Ok("1") {
            eprintln!("\n!!! SKIPPED: S3 blob-store tests (DARKROOM_SKIP_S3=1) !!!\n");
            return None;
        }
        let binary = moto_home().join("venv/bin/moto_server");
        assert!(
            binary.exists(),
            "moto is not installed ({} is missing): run scripts/install-moto.sh \
             (or set DARKROOM_SKIP_S3=1 to skip the S3 tests knowingly)",
            binary.display()
        );

        let addr = free_loopback_addr();
        let log = tempfile::NamedTempFile::new().expect("create the moto log");
        // The guard starts moto, then blocks reading stdin; EOF (our end dropped, or this
        // process gone) kills moto by its pid.
        let guard_script = r#""$1" -H 127.0.0.1 -p "$2" </dev/null &
server=$!
read -r _ignored || true
kill "$server" 2>/dev/null
wait "$server" 2>/dev/null
exit 0"#;
        let mut child = Command::new("bash")
            .args(["-c", guard_script, "moto-guard"])
            .arg(&binary)
            .arg(addr.port().to_string())
            .stdin(Stdio::piped())
            .stdout(log.reopen().expect("open the moto log"))
            .stderr(log.reopen().expect("open the moto log"))
            .spawn()
            .expect("spawn bash to start moto");
        let stdin = child.stdin.take();
        let server = Self {
            addr,
            guard: Mutex::new((child, stdin)),
            log,
        };
        server.wait_ready();
        Some(server)
    }

    /// moto says it is ready only by answering on its port.
    fn wait_ready(&self) {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.guard.lock().expect("guard lock").0.try_wait() {
                panic!(
                    "moto exited ({status}) before it was ready:\n{}",
                    self.log_tail()
                );
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            assert!(
                started.elapsed() < READY_TIMEOUT,
                "moto not ready after {READY_TIMEOUT:?}:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Settings reaching this server (moto takes any credentials).
    pub fn settings(&self) -> S3Settings {
        S3Settings {
            endpoint: self.endpoint(),
            region: "us-east-1".to_owned(),
            access_key_id: "darkroom-test".to_owned(),
            secret_access_key: "darkroom-test-secret".to_owned(),
            allow_http: true,
        }
    }

    /// Creates a bucket of a fresh name and returns the name.
    pub async fn bucket(&self) -> String {
        let name = format!("darkroom-{}", uuid::Uuid::new_v4().simple());
        let response = reqwest::Client::new()
            .put(format!("{}/{name}", self.endpoint()))
            .send()
            .await
            .expect("moto answers");
        assert!(
            response.status().is_success(),
            "bucket {name} not created: {}",
            response.status()
        );
        name
    }

    /// Every object key under `prefix` in `bucket`, sorted (first 1000: enough for tests).
    pub async fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let url = format!("{}/{bucket}?list-type=2&prefix={prefix}", self.endpoint());
        let mut keys = xml_values(&self.fetch(&url).await, "Key");
        keys.sort();
        keys
    }

    /// Multipart uploads started and neither completed nor aborted, in `bucket`.
    pub async fn open_uploads(&self, bucket: &str) -> usize {
        let url = format!("{}/{bucket}?uploads", self.endpoint());
        xml_values(&self.fetch(&url).await, "UploadId").len()
    }

    async fn fetch(&self, url: &str) -> String {
        let response = reqwest::get(url).await.expect("moto answers");
        assert!(
            response.status().is_success(),
            "{url}: {}",
            response.status()
        );
        response.text().await.expect("moto's answer")
    }

    /// The last lines of moto's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log.path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        if let Ok(mut guard) = self.guard.lock() {
            if let Some(mut stdin) = guard.1.take() {
                let _ = stdin.write_all(b"stop\n");
            }
            let _ = guard.0.wait();
        }
    }
}

/// The texts of every `<tag>` element: S3 listings are flat enough for this.
fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    xml.split(&open)
        .skip(1)
        .filter_map(|rest| rest.split_once(&close).map(|(value, _)| value.to_owned()))
        .collect()
}

fn moto_home() -> PathBuf {
    if let Some(home) = std::env::var_os("DARKROOM_MOTO_HOME") {
        return PathBuf::from(home);
    }
    let home = std::env::var_os("HOME").expect("HOME is set");
    PathBuf::from(home).join(".cache/darkroom/moto")
}

fn free_loopback_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    listener.local_addr().expect("local address")
}

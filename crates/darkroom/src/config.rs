//! Darkroom's configuration: one typed struct, layered from defaults, a TOML file,
//! `DARKROOM_*` environment variables and command-line flags, in that order.
//!
//! The layering is figment's; this module owns the keys, their defaults, and how secrets
//! are hidden when the effective configuration is printed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytesize::ByteSize;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::artifacts::{ArtifactsLocation, S3Settings};

/// The effective configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// Folder for the SQLite database and stored outputs.
    pub data_dir: PathBuf,
    /// `sqlite://...` or `postgres://...`; empty means `sqlite://<data_dir>/darkroom.db`.
    pub database_url: String,
    /// How many jobs may wait in Darkroom's queue before new ones get `queue_full`.
    pub queue_limit: u32,
    /// How long finished jobs and their outputs are kept.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// How long a backend may stay unreachable before its running jobs are given up and
    /// queued again (or failed after their last attempt).
    #[serde(with = "humantime_serde")]
    pub backend_lost_after: Duration,
    /// How many times a job may be handed to a backend before it fails (a backend that
    /// dies or restarts mid-run costs an attempt).
    pub max_attempts: u32,
    /// Prompts Darkroom keeps inside each ComfyUI at once (one running, the rest waiting),
    /// so a GPU never idles for a round trip between jobs; a backend's `max_prompts`
    /// overrides it.
    pub prompts_per_backend: u32,
    /// The ComfyUI servers jobs run on.
    pub backends: Vec<BackendConfig>,
    /// This process's name among the replicas sharing a PostgreSQL store; empty means
    /// `<hostname>-<pid>`, or just the hostname with SQLite, whose one process takes its
    /// leases back at once after a restart.
    pub replica_id: String,
    /// How long a replica's hold on a backend and its jobs lasts unless renewed (every
    /// third of it): the longest a backend waits for another replica after the one driving
    /// it died.
    #[serde(with = "humantime_serde")]
    pub lease_duration: Duration,
    /// Folder of workflow templates (`NAME.json` with an optional `NAME.toml`); empty
    /// means the source tree's shipped `templates/` when it exists, else
    /// `<data_dir>/templates`.
    pub templates_dir: PathBuf,
    /// Serve requests without API keys on a non-loopback address (when no key exists).
    /// Off by default: such a server refuses to start.
    pub open_server: bool,
    /// Origins (`https://app.example`) whose pages may call the API from a browser; empty
    /// means none (no CORS headers at all).
    pub cors_origins: Vec<String>,
    /// Sizes and per-key limits of requests.
    pub limits: Limits,
    /// Timeouts of client connections, calls to ComfyUI and runs.
    pub timeouts: Timeouts,
    /// Where outputs and uploads are kept: empty for `<data_dir>/blobs`,
    /// `file:///PATH`, or `s3://BUCKET/PREFIX` (shared by replicas; see `s3`).
    pub artifacts_url: String,
    /// How to reach the object store of an `s3://` `artifacts_url`.
    pub s3: S3Settings,
}

/// Request sizes, and what each API key may do at once (a key may have its own values).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// The largest JSON request body.
    pub max_body_size: ByteSize,
    /// The largest asset upload (streamed to disk, never held in memory).
    pub max_upload_size: ByteSize,
    /// Requests a key may make per minute; 0 means no limit.
    pub requests_per_minute: u32,
    /// Requests a key may make at once beyond its rate before it must wait.
    pub burst: u32,
    /// Jobs one key may have waiting in the queue.
    pub max_queued_per_key: u32,
    /// Event streams one key may hold open at once.
    pub max_streams_per_key: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_size: ByteSize::mib(32),
            max_upload_size: ByteSize::gib(1),
            requests_per_minute: 600,
            burst: 120,
            max_queued_per_key: 200,
            max_streams_per_key: 16,
        }
    }
}

impl Limits {
    /// The per-key defaults.
    pub fn key_defaults(&self) -> KeyLimitDefaults {
        KeyLimitDefaults {
            requests_per_minute: self.requests_per_minute,
            burst: self.burst,
            max_queued: self.max_queued_per_key,
            max_streams: self.max_streams_per_key,
        }
    }

    /// The JSON body limit in bytes.
    pub fn body_bytes(&self) -> usize {
        usize::try_from(self.max_body_size.as_u64()).unwrap_or(usize::MAX)
    }

    /// The upload limit in bytes.
    pub fn upload_bytes(&self) -> usize {
        usize::try_from(self.max_upload_size.as_u64()).unwrap_or(usize::MAX)
    }
}

/// What a key gets when it has no limit of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyLimitDefaults {
    pub requests_per_minute: u32,
    pub burst: u32,
    pub max_queued: u32,
    pub max_streams: u32,
}

/// Timeouts: nothing waits forever on a client, a backend or a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Timeouts {
    /// How long a client may take to send a request's headers, and how long an idle
    /// keep-alive connection is kept (slow clients cannot hold connections open).
    #[serde(with = "humantime_serde")]
    pub client_header: Duration,
    /// How long a request body may stall between two pieces.
    #[serde(with = "humantime_serde")]
    pub client_body: Duration,
    /// Connecting to a ComfyUI (HTTP and websocket).
    #[serde(with = "humantime_serde")]
    pub backend_connect: Duration,
    /// One call to a ComfyUI (a download may take longer while bytes keep coming).
    #[serde(with = "humantime_serde")]
    pub backend_call: Duration,
    /// The longest a job may run on a backend before it is stopped and failed with
    /// `run_timeout`; 0 means no limit.
    #[serde(with = "humantime_serde")]
    pub max_run_time: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            client_header: Duration::from_secs(30),
            client_body: Duration::from_secs(60),
            backend_connect: Duration::from_secs(5),
            backend_call: Duration::from_secs(30),
            max_run_time: Duration::from_secs(3600),
        }
    }
}

/// One ComfyUI server: reached at `url`, or a process Darkroom starts (`managed`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// Names the backend in the API, metrics and logs, and its folder under `data_dir`.
    pub name: String,
    /// The server's base URL; empty for a managed backend (Darkroom knows its port).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    /// Share of the work among backends that can all run a job: a backend of weight 2
    /// is given twice the prompts of one of weight 1 before either waits.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Free labels shown in `/api/backends` and the metrics.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Prompts kept inside this ComfyUI at once; default `prompts_per_backend`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_prompts: Option<u32>,
    /// A ComfyUI process Darkroom starts, supervises and stops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedConfig>,
}

impl BackendConfig {
    /// A backend reached at `url`, with every other setting at its default.
    pub fn at_url(name: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            url: url.into(),
            weight: default_weight(),
            tags: Vec::new(),
            max_prompts: None,
            managed: None,
        }
    }
}

/// How Darkroom starts one ComfyUI: `PYTHON COMFYUI_DIR/main.py --listen 127.0.0.1
/// --port PORT --output-directory ... --temp-directory ... --input-directory ...
/// --user-directory ... ARGS`, with its own folders under `<data_dir>/backends/NAME`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagedConfig {
    /// The Python interpreter of ComfyUI's environment.
    pub python: PathBuf,
    /// ComfyUI's folder, holding `main.py`.
    pub comfyui_dir: PathBuf,
    /// Further arguments, e.g. `["--cpu"]` or `["--base-directory", "/models"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment of the process, e.g. `{ CUDA_VISIBLE_DEVICES = "1" }`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The loopback port; 0 picks a free one at start-up (kept across restarts).
    #[serde(default)]
    pub port: u16,
    /// How long a start may take before the process is killed and started again.
    #[serde(default = "default_ready_timeout", with = "humantime_serde")]
    pub ready_timeout: Duration,
}

fn default_weight() -> u32 {
    1
}

fn default_ready_timeout() -> Duration {
    Duration::from_secs(300)
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8420)),
            data_dir: default_data_dir(),
            database_url: String::new(),
            queue_limit: 1000,
            retention: Duration::from_secs(7 * 24 * 3600),
            backend_lost_after: Duration::from_secs(60),
            max_attempts: 3,
            prompts_per_backend: 2,
            backends: vec![BackendConfig::at_url("local", "http://127.0.0.1:8188")],
            templates_dir: PathBuf::new(),
            replica_id: String::new(),
            lease_duration: Duration::from_secs(30),
            open_server: false,
            cors_origins: Vec::new(),
            limits: Limits::default(),
            timeouts: Timeouts::default(),
            artifacts_url: String::new(),
            s3: S3Settings::default(),
        }
    }
}

/// Values given on the command line; `None` leaves the lower layers' value.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backends: Option<Vec<BackendConfig>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub templates_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_server: Option<bool>,
}

/// A configuration that cannot be loaded.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Loads defaults, then `file` (when given, it must exist), then the environment, then
    /// `overrides`.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the key or file at fault.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    file.display()
                )));
            }
            figment = figment.merge(Toml::file(file));
        }
        figment = figment.merge(
            Env::prefixed("DARKROOM_")
                .ignore(&["BACKEND_URL"])
                .split("__"),
        );
        if let Ok(url) = std::env::var("DARKROOM_BACKEND_URL") {
            let backend = BackendConfig::at_url("local", url);
            figment = figment.merge(Serialized::default("backends", vec![backend]));
        }
        let mut config: Config = figment
            .merge(Serialized::defaults(overrides))
            .extract()
            .map_err(|error| ConfigError(error.to_string()))?;
        if config.database_url.is_empty() {
            config.database_url =
                format!("sqlite://{}", config.data_dir.join("darkroom.db").display());
        }
        config.templates_dir = config.templates_folder();
        config.check()?;
        Ok(config)
    }

    /// The template folder: `templates_dir`, or when it is empty the templates shipped in
    /// the source tree this binary was built from (a development checkout), else
    /// `<data_dir>/templates`.
    pub fn templates_folder(&self) -> PathBuf {
        if !self.templates_dir.as_os_str().is_empty() {
            return self.templates_dir.clone();
        }
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates");
        match shipped.canonicalize() {
            Ok(shipped) if shipped.is_dir() => shipped,
            _ => self.data_dir.join("templates"),
        }
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.backends.is_empty() {
            return Err(ConfigError(
                "at least one backend is needed in `backends`".to_owned(),
            ));
        }
        let mut names = std::collections::HashSet::new();
        for backend in &self.backends {
            backend.check()?;
            if !names.insert(backend.name.as_str()) {
                return Err(ConfigError(format!(
                    "backend name {:?} is used twice",
                    backend.name
                )));
            }
        }
        if self.queue_limit == 0 {
            return Err(ConfigError("`queue_limit` must be at least 1".to_owned()));
        }
        if self.max_attempts == 0 {
            return Err(ConfigError("`max_attempts` must be at least 1".to_owned()));
        }
        ArtifactsLocation::parse(&self.artifacts_url, &self.data_dir, &self.s3)
            .map_err(|error| ConfigError(error.to_string()))?;
        if self.prompts_per_backend == 0 {
            return Err(ConfigError(
                "`prompts_per_backend` must be at least 1".to_owned(),
            ));
        }
        if self.lease_duration < Duration::from_secs(1) {
            return Err(ConfigError(format!(
                "`lease_duration` must be at least 1s, got {:?}",
                self.lease_duration
            )));
        }
        for origin in &self.cors_origins {
            let parsed = url::Url::parse(origin).ok().filter(|url| {
                matches!(url.scheme(), "http" | "https")
                    && url.host().is_some()
                    && url.path() == "/"
                    && url.query().is_none()
                    && !origin.ends_with('/')
            });
            if parsed.is_none() {
                return Err(ConfigError(format!(
                    "cors_origins: {origin:?} is not an origin such as \"https://app.example\""
                )));
            }
        }
        let limits = &self.limits;
        if limits.max_body_size.as_u64() == 0 || limits.max_upload_size.as_u64() == 0 {
            return Err(ConfigError(
                "`limits.max_body_size` and `limits.max_upload_size` must be above 0".to_owned(),
            ));
        }
        if limits.max_queued_per_key == 0 || limits.max_streams_per_key == 0 {
            return Err(ConfigError(
                "`limits.max_queued_per_key` and `limits.max_streams_per_key` must be at least 1"
                    .to_owned(),
            ));
        }
        let timeouts = &self.timeouts;
        let zero = [
            ("client_header", timeouts.client_header),
            ("client_body", timeouts.client_body),
            ("backend_connect", timeouts.backend_connect),
            ("backend_call", timeouts.backend_call),
        ]
        .into_iter()
        .find(|(_, duration)| duration.is_zero());
        if let Some((name, _)) = zero {
            return Err(ConfigError(format!("`timeouts.{name}` must be above 0")));
        }
        Ok(())
    }

    /// The configuration as TOML, with passwords in URLs replaced by `****`.
    pub fn to_redacted_toml(&self) -> String {
        let mut shown = self.clone();
        shown.database_url = redact_url(&shown.database_url);
        if !shown.s3.secret_access_key.is_empty() {
            shown.s3.secret_access_key = "****".to_owned();
        }
        for backend in &mut shown.backends {
            backend.url = redact_url(&backend.url);
            for (key, value) in backend
                .managed
                .iter_mut()
                .flat_map(|managed| &mut managed.env)
            {
                if looks_secret(key) {
                    *value = "****".to_owned();
                }
            }
        }
        toml::to_string_pretty(&shown).unwrap_or_else(|error| format!("# cannot print: {error}\n"))
    }
}

/// Environment names that usually hold credentials.
fn looks_secret(key: &str) -> bool {
    let key = key.to_ascii_uppercase();
    ["KEY", "TOKEN", "SECRET", "PASSWORD"]
        .iter()
        .any(|word| key.contains(word))
}

impl BackendConfig {
    fn check(&self) -> Result<(), ConfigError> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !self.name.starts_with('.');
        if !name_ok {
            return Err(ConfigError(format!(
                "backend name {:?} must be 1 to 64 letters, digits, '-', '_' or '.', \
                 not starting with '.'",
                self.name
            )));
        }
        let invalid = |what: String| ConfigError(format!("backend {:?} {what}", self.name));
        match (&self.managed, self.url.is_empty()) {
            (Some(_), false) => {
                return Err(invalid(
                    "has both `url` and `managed`; a managed backend's url is Darkroom's to choose"
                        .to_owned(),
                ));
            }
            (None, true) => return Err(invalid("needs a `url` or a `managed` table".to_owned())),
            (None, false) => {
                url::Url::parse(&self.url).map_err(|error| {
                    invalid(format!("has an invalid url {:?}: {error}", self.url))
                })?;
            }
            (Some(_), true) => {}
        }
        if self.weight == 0 {
            return Err(invalid("`weight` must be at least 1".to_owned()));
        }
        if self.max_prompts == Some(0) {
            return Err(invalid("`max_prompts` must be at least 1".to_owned()));
        }
        Ok(())
    }
}

/// `text` with the password of a URL replaced by `****`; anything else unchanged.
pub fn redact_url(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("****"));
            url.to_string()
        }
        _ => text.to_owned(),
    }
}

fn default_data_dir() -> PathBuf {
    if let Some(data_home) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(data_home).join("darkroom");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".local/share/darkroom"),
        None => PathBuf::from("darkroom-data"),
    }
}

//! Darkroom's benchmark harness: starts the release `darkroom` binary against simulated
//! ComfyUI backends (`comfy-sim`, in this process) and, when one is installed, a real
//! ComfyUI, runs each scenario and prints one table of medians and tails with the goal
//! beside each figure.
//!
//! Speed is measured here and only here: the harness never fails because a figure misses
//! its goal. It fails only when a scenario cannot run at all, so a quick run in CI keeps
//! it working. Every server it starts listens on 127.0.0.1, on a port the system picked.

pub mod direct;
pub mod disk;
pub mod graphs;
pub mod report;
pub mod scenarios;
pub mod server;
pub mod stats;
pub mod v2;
pub mod wire;

use std::path::PathBuf;
use std::time::Duration;

use report::Report;

/// One of the harness's scenarios, by the name `--only` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// The server's memory with nothing to do.
    Idle,
    /// What Darkroom adds to one job's time, against a minimal client of the backend.
    Latency,
    /// Jobs accepted and status reads per second, with SQLite.
    Throughput,
    /// The share of backend time spent working, with 1, 4 and 16 backends.
    Utilisation,
    /// Event latency and memory with many event streams open.
    Fanout,
    /// Memory while a job's output of hundreds of megabytes is stored and served.
    LargeOutput,
    /// Latency and utilisation against a real ComfyUI, beside comfy-api-proxy.
    Real,
}

impl Scenario {
    pub const ALL: [Scenario; 7] = [
        Scenario::Idle,
        Scenario::Latency,
        Scenario::Throughput,
        Scenario::Utilisation,
        Scenario::Fanout,
        Scenario::LargeOutput,
        Scenario::Real,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Idle => "idle",
            Scenario::Latency => "latency",
            Scenario::Throughput => "throughput",
            Scenario::Utilisation => "utilisation",
            Scenario::Fanout => "fan-out",
            Scenario::LargeOutput => "large output",
            Scenario::Real => "real ComfyUI",
        }
    }
}

/// How big each scenario is: the full run, or the quick one CI uses to keep the harness
/// working.
#[derive(Debug, Clone)]
pub struct Sizes {
    /// Jobs per path (direct, Darkroom, proxy) in the latency comparison.
    pub latency_jobs: u64,
    /// How long each throughput measurement lasts.
    pub throughput_window: Duration,
    /// Concurrent clients of the throughput measurements.
    pub throughput_clients: Vec<usize>,
    /// Backend counts of the utilisation measurement.
    pub utilisation_backends: Vec<usize>,
    /// How long one job keeps a simulated backend busy.
    pub utilisation_job: Duration,
    /// Jobs queued per backend.
    pub utilisation_jobs_per_backend: u64,
    pub fanout_streams: usize,
    pub fanout_backends: usize,
    pub fanout_rounds: u64,
    pub large_output_bytes: u64,
    /// Jobs per path against the real ComfyUI.
    pub real_latency_jobs: u64,
    pub real_utilisation_jobs: u64,
}

impl Sizes {
    pub fn full() -> Self {
        Self {
            latency_jobs: 200,
            throughput_window: Duration::from_secs(3),
            throughput_clients: vec![1, 16, 256],
            utilisation_backends: vec![1, 4, 16],
            utilisation_job: Duration::from_millis(500),
            utilisation_jobs_per_backend: 10,
            fanout_streams: 1000,
            fanout_backends: 10,
            fanout_rounds: 20,
            large_output_bytes: 500 * 1024 * 1024,
            real_latency_jobs: 40,
            real_utilisation_jobs: 8,
        }
    }

    pub fn quick() -> Self {
        Self {
            latency_jobs: 20,
            throughput_window: Duration::from_millis(500),
            throughput_clients: vec![1, 16, 256],
            utilisation_backends: vec![1, 4, 16],
            utilisation_job: Duration::from_millis(100),
            utilisation_jobs_per_backend: 3,
            fanout_streams: 100,
            fanout_backends: 2,
            fanout_rounds: 5,
            large_output_bytes: 50 * 1024 * 1024,
            real_latency_jobs: 1,
            real_utilisation_jobs: 2,
        }
    }
}

/// Whether to run the real-ComfyUI scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RealMode {
    /// When ComfyUI is installed (scripts/install-comfyui.sh).
    Auto,
    /// Always; a missing install is an error.
    On,
    Off,
}

/// What a run was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    pub sizes: Sizes,
    /// The `darkroom` binary to measure.
    pub darkroom: PathBuf,
    /// The `comfy-api-proxy` program, when installed.
    pub proxy: Option<PathBuf>,
    pub real: RealMode,
    pub scenarios: Vec<Scenario>,
    /// `RUST_LOG` for every Darkroom started; its data folder and log are then kept.
    pub server_log: Option<String>,
}

/// What every scenario works with.
#[derive(Debug)]
pub struct Bench {
    pub options: Options,
    pub http: reqwest::Client,
    pub report: Report,
}

impl Bench {
    /// # Errors
    ///
    /// When no HTTP client can be built.
    pub fn new(options: Options) -> anyhow::Result<Self> {
        // No proxy from the environment: every request goes to 127.0.0.1 directly.
        let http = reqwest::Client::builder()
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            options,
            http,
            report: Report::default(),
        })
    }

    /// Runs the chosen scenarios in order; returns the scenarios that could not run, with
    /// why.
    pub async fn run(&mut self) -> Vec<(Scenario, anyhow::Error)> {
        let mut failed = Vec::new();
        for scenario in self.options.scenarios.clone() {
            tracing::info!(scenario = scenario.name(), "scenario starts");
            let outcome = match scenario {
                Scenario::Idle => scenarios::idle::run(self).await,
                Scenario::Latency => scenarios::latency::run(self).await,
                Scenario::Throughput => scenarios::throughput::run(self).await,
                Scenario::Utilisation => scenarios::utilisation::run(self).await,
                Scenario::Fanout => scenarios::fanout::run(self).await,
                Scenario::LargeOutput => scenarios::large_output::run(self).await,
                Scenario::Real => scenarios::real::run(self).await,
            };
            match outcome {
                Ok(()) => self.report.finished(scenario.name()),
                Err(error) => {
                    self.report
                        .text(scenario.name(), "did not run", &format!("{error:#}"));
                    failed.push((scenario, error));
                }
            }
        }
        failed
    }
}

/// The machine the figures come from: cores, CPU model, memory and load.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_gib = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "{cores} cores, {model}, {memory_gib:.0} GiB RAM, load average {}",
        load.join(" ")
    )
}

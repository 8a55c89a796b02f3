//! Prometheus metrics: counters and histograms updated where things happen, gauges read
//! from the store and the scheduler's board when `/metrics` is scraped.
//!
//! Label values are bounded: states, backend names from the configuration, template
//! names from the template folder (`inline` for a submitted graph).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::jobs::model::{Job, JobState};
use crate::scheduler::board::{BackendState, BackendStatus, Health};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabel {
    backend: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendStateLabels {
    backend: String,
    state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    template: String,
    backend: String,
}

fn seconds_histogram() -> Histogram {
    // 10 ms to about 45 minutes.
    Histogram::new(exponential_buckets(0.01, 2.0, 19))
}

fn latency_histogram() -> Histogram {
    // 0.5 ms to about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric Darkroom exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    jobs_submitted: Counter,
    jobs_finished: Family<StateLabel, Counter>,
    jobs: Family<StateLabel, Gauge>,
    queue_depth: Gauge,
    queue_wait: Histogram,
    run_time: Histograms<RunLabels>,
    dispatch_latency: Histograms<BackendLabel>,
    runs_lost: Family<BackendLabel, Counter>,
    backend_up: Family<BackendLabel, Gauge>,
    backend_state: Family<BackendStateLabels, Gauge>,
    backend_prompts: Family<BackendLabel, Gauge>,
    restarts: Family<BackendLabel, Counter>,
    bytes_stored: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let jobs_submitted = Counter::default();
        let jobs_finished = Family::<StateLabel, Counter>::default();
        let jobs = Family::<StateLabel, Gauge>::default();
        let queue_depth = Gauge::default();
        let queue_wait = seconds_histogram();
        let run_time: Histograms<RunLabels> = Family::new_with_constructor(seconds_histogram);
        let dispatch_latency: Histograms<BackendLabel> =
            Family::new_with_constructor(latency_histogram);
        let runs_lost = Family::<BackendLabel, Counter>::default();
        let backend_up = Family::<BackendLabel, Gauge>::default();
        let backend_state = Family::<BackendStateLabels, Gauge>::default();
        let backend_prompts = Family::<BackendLabel, Gauge>::default();
        let restarts = Family::<BackendLabel, Counter>::default();
        let bytes_stored = Counter::default();

        registry.register(
            "darkroom_jobs_submitted",
            "Jobs accepted since start",
            jobs_submitted.clone(),
        );
        registry.register(
            "darkroom_jobs_finished",
            "Jobs that reached a final state since start, by state",
            jobs_finished.clone(),
        );
        registry.register(
            "darkroom_jobs",
            "Jobs in the store, by Darkroom state",
            jobs.clone(),
        );
        registry.register(
            "darkroom_queue_depth",
            "Jobs waiting in Darkroom's queue for a backend",
            queue_depth.clone(),
        );
        registry.register(
            "darkroom_queue_wait_seconds",
            "Time from submission to being handed to a backend",
            queue_wait.clone(),
        );
        registry.register(
            "darkroom_job_run_seconds",
            "Time from a job's start on a backend to its final state, by template and backend",
            run_time.clone(),
        );
        registry.register(
            "darkroom_dispatch_seconds",
            "Time from handing a job to a backend to its ComfyUI accepting the prompt",
            dispatch_latency.clone(),
        );
        registry.register(
            "darkroom_runs_lost",
            "Runs a backend lost (died, restarted, unreachable); each costs the job an attempt",
            runs_lost.clone(),
        );
        registry.register(
            "darkroom_backend_up",
            "1 while the backend takes work or could (up, or draining), else 0",
            backend_up.clone(),
        );
        registry.register(
            "darkroom_backend_state",
            "1 for the backend's current state, 0 for the others",
            backend_state.clone(),
        );
        registry.register(
            "darkroom_backend_prompts",
            "Jobs posted to (or being posted to) the backend's ComfyUI",
            backend_prompts.clone(),
        );
        registry.register(
            "darkroom_backend_restarts",
            "Times a managed backend's process was started again",
            restarts.clone(),
        );
        registry.register(
            "darkroom_output_bytes_stored",
            "Bytes of job outputs written to the store since start",
            bytes_stored.clone(),
        );
        Self {
            registry,
            jobs_submitted,
            jobs_finished,
            jobs,
            queue_depth,
            queue_wait,
            run_time,
            dispatch_latency,
            runs_lost,
            backend_up,
            backend_state,
            backend_prompts,
            restarts,
            bytes_stored,
        }
    }

    pub fn job_submitted(&self) {
        self.jobs_submitted.inc();
    }

    /// Counts a job that reached a final state, and its run time when it ran.
    pub fn job_finished(&self, job: &Job) {
        self.jobs_finished
            .get_or_create(&StateLabel {
                state: job.state.as_str().to_owned(),
            })
            .inc();
        let (Some(started), Some(ended), Some(backend)) = (
            job.started_at.or(job.dispatched_at),
            job.completed_at,
            job.backend_id.as_ref(),
        ) else {
            return;
        };
        let labels = RunLabels {
            template: job.template.clone().unwrap_or_else(|| "inline".to_owned()),
            backend: backend.0.clone(),
        };
        self.run_time
            .get_or_create(&labels)
            .observe((ended - started).as_seconds_f64().max(0.0));
    }

    /// A job handed to a backend after waiting `seconds` since submission.
    pub fn job_claimed(&self, seconds: f64) {
        self.queue_wait.observe(seconds.max(0.0));
    }

    pub fn prompt_accepted(&self, backend: &str, seconds: f64) {
        self.dispatch_latency
            .get_or_create(&backend_label(backend))
            .observe(seconds.max(0.0));
    }

    pub fn run_lost(&self, backend: &str) {
        self.runs_lost.get_or_create(&backend_label(backend)).inc();
    }

    pub fn backend_restarted(&self, backend: &str) {
        self.restarts.get_or_create(&backend_label(backend)).inc();
    }

    pub fn bytes_stored(&self, bytes: u64) {
        self.bytes_stored.inc_by(bytes);
    }

    /// The text exposition, after setting the gauges from `jobs` (count per state),
    /// `queued` and `backends`.
    pub fn render(
        &self,
        jobs: &[(JobState, u64)],
        queued: u64,
        backends: &[BackendStatus],
    ) -> Result<String, std::fmt::Error> {
        for (state, count) in jobs {
            let label = StateLabel {
                state: state.as_str().to_owned(),
            };
            self.jobs.get_or_create(&label).set(gauge_value(*count));
        }
        self.queue_depth.set(gauge_value(queued));
        for backend in backends {
            let label = backend_label(&backend.id.0);
            // Touch the counter so a backend that never restarted still shows 0.
            let _ = self.restarts.get_or_create(&label);
            let _ = self.runs_lost.get_or_create(&label);
            let up = backend.driven && matches!(backend.health, Health::Up);
            self.backend_up.get_or_create(&label).set(i64::from(up));
            self.backend_prompts
                .get_or_create(&label)
                .set(gauge_value(backend.runs.len() as u64));
            let current = backend.state();
            for state in BackendState::ALL {
                let labels = BackendStateLabels {
                    backend: backend.id.0.clone(),
                    state: state.as_str().to_owned(),
                };
                self.backend_state
                    .get_or_create(&labels)
                    .set(i64::from(state == current));
            }
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

fn backend_label(backend: &str) -> BackendLabel {
    BackendLabel {
        backend: backend.to_owned(),
    }
}

fn gauge_value(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

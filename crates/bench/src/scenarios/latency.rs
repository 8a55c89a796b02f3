//! Scenario 1: what Darkroom adds to one job's time. The same small job runs, in turn,
//! through a minimal client of the backend (websocket open, post, wait for "done", read
//! history, download), through Darkroom (submit, follow the job's events to its end,
//! download) and, when installed, through comfy-api-proxy the same way. Turns alternate
//! so that drift on the machine falls on all paths alike; each job's added time is its
//! time minus the direct job's just before it.

use std::time::Duration;

use anyhow::Context;
use comfy_sim::Knobs;
use serde_json::Value;

use super::{darkroom_for, simulators};
use crate::direct::DirectClient;
use crate::disk::{Device, DiskCounters};
use crate::report::{Goal, Unit};
use crate::server::Proxy;
use crate::stats::Samples;
use crate::v2::V2Client;
use crate::{Bench, graphs};

const NAME: &str = "added latency";
/// Jobs per path run first and not counted: connections, caches, the node catalogue.
/// One when few jobs are counted (the quick run), three otherwise.
fn warm_up(jobs: u64) -> u64 {
    if jobs < 5 { 1 } else { 3 }
}

/// # Errors
///
/// When Darkroom or a job fails.
pub async fn run(bench: &mut Bench) -> anyhow::Result<()> {
    let sims = simulators(1, &Knobs::default()).await?;
    let darkroom = darkroom_for(bench, &sims, &[]).await?;
    let backend = sims[0].base_url();
    let proxy = match &bench.options.proxy {
        Some(program) => Some(Proxy::start(program, &backend, &bench.http).await?),
        None => None,
    };

    let mut paths = Paths {
        direct: DirectClient::connect(bench.http.clone(), &backend).await?,
        darkroom: V2Client::new(bench.http.clone(), &darkroom.base),
        proxy: proxy
            .as_ref()
            .map(|proxy| V2Client::new(bench.http.clone(), &proxy.base)),
        run_times: None,
    };
    let jobs = bench.options.sizes.latency_jobs;
    let disk = Device::of(darkroom.data_dir())?;
    let disk_before = disk.map(Device::counters).transpose()?.flatten();
    let cpu_before = darkroom.cpu_time()?;
    let switches_before = darkroom.context_switches()?;
    let timings = paths.compare(jobs, graphs::small_image).await;
    let cpu = darkroom.cpu_time()?.saturating_sub(cpu_before);
    let switches = darkroom.context_switches()?.saturating_sub(switches_before);
    let disk_after = disk.map(Device::counters).transpose()?.flatten();
    darkroom.stop().await;
    if let Some(proxy) = proxy {
        proxy.stop().await;
    }
    let timings = timings?;
    timings.report(bench, &format!("{NAME} (simulator)"), jobs, true);
    // Warm-up jobs ran too; 10 ms clock ticks make this a mean over many jobs.
    let all_jobs = jobs + warm_up(jobs);
    bench.report.figure(
        &format!("{NAME} (simulator)"),
        "Darkroom CPU time per job (user + system)",
        cpu.as_secs_f64() * 1000.0 / all_jobs as f64,
        Unit::Milliseconds,
        None,
    );
    bench.report.figure(
        &format!("{NAME} (simulator)"),
        "Darkroom threads' waits per job (voluntary context switches)",
        switches as f64 / all_jobs as f64,
        Unit::Count,
        None,
    );
    report_disk(bench, disk_before.zip(disk_after), all_jobs);
    if bench.options.proxy.is_none() {
        bench.report.text(
            &format!("{NAME} (simulator)"),
            "comfy-api-proxy",
            "not installed: scripts/install-comfy-api-proxy.sh",
        );
    }
    Ok(())
}

/// What the disk under Darkroom's data folder did over the turns, per Darkroom job (the
/// other paths keep nothing on disk): the device's own time per write and per flush is
/// what a job's two flushes (its accept's and its end's) cost on this machine.
fn report_disk(bench: &mut Bench, counters: Option<(DiskCounters, DiskCounters)>, jobs: u64) {
    let scenario = format!("{NAME} (simulator)");
    let Some((before, after)) = counters else {
        bench.report.text(
            &scenario,
            "disk under the data folder",
            "not measured: the folder is on no block device /proc/diskstats lists",
        );
        return;
    };
    let done = after.since(before);
    let per_job = |count: u64| count as f64 / jobs as f64;
    let each = |ms: u64, count: u64| {
        if count == 0 {
            f64::NAN
        } else {
            ms as f64 / count as f64
        }
    };
    let rows = [
        (
            "disk writes per job (the data folder's device)",
            per_job(done.writes),
            Unit::MeanCount,
        ),
        (
            "disk time per write",
            each(done.write_ms, done.writes),
            Unit::Milliseconds,
        ),
        (
            "disk flushes per job",
            per_job(done.flushes),
            Unit::MeanCount,
        ),
        (
            "disk time per flush",
            each(done.flush_ms, done.flushes),
            Unit::Milliseconds,
        ),
    ];
    for (measure, value, unit) in rows {
        bench.report.figure(&scenario, measure, value, unit, None);
    }
}

/// The ways one job can reach a backend.
#[derive(Debug)]
pub struct Paths {
    pub direct: DirectClient,
    pub darkroom: V2Client,
    pub proxy: Option<V2Client>,
    /// When set, each job's own run time on the backend (from the newest history entry's
    /// timestamps) is taken off its time, so that a backend whose run times vary a lot
    /// (a real ComfyUI on a busy CPU) does not drown what the paths add.
    pub run_times: Option<RunTimes>,
}

/// Reads the run time of the newest prompt from a ComfyUI's history.
#[derive(Debug, Clone)]
pub struct RunTimes {
    pub http: reqwest::Client,
    /// `http://127.0.0.1:PORT`.
    pub backend: String,
}

impl RunTimes {
    /// From `execution_start` to the last message of the newest history entry.
    ///
    /// # Errors
    ///
    /// When the history cannot be read or has no timestamps.
    pub async fn newest(&self) -> anyhow::Result<Duration> {
        let history: Value = self
            .http
            .get(format!("{}/history?max_items=1", self.backend))
            .send()
            .await?
            .json()
            .await?;
        let entry = history
            .as_object()
            .and_then(|entries| entries.values().next_back())
            .context("the history is empty")?;
        let (start, end) = run_span(entry).context("the newest run has no timestamps")?;
        Ok(Duration::from_millis(end.saturating_sub(start)))
    }
}

/// Milliseconds since the epoch of a run's `execution_start` and of its last message.
pub fn run_span(entry: &Value) -> Option<(u64, u64)> {
    let messages = entry["status"]["messages"].as_array()?;
    let stamp = |message: &Value| message[1]["timestamp"].as_u64();
    let start = messages
        .iter()
        .find(|message| message[0] == "execution_start")
        .and_then(stamp)?;
    let end = messages.iter().filter_map(stamp).max()?;
    Some((start, end))
}

/// Each path's job times, and the per-job differences to the direct path.
#[derive(Debug, Default)]
pub struct Timings {
    pub direct: Samples,
    pub darkroom: Samples,
    pub darkroom_added: Samples,
    pub proxy: Samples,
    pub proxy_added: Samples,
    /// Why the proxy stopped taking part, if it did.
    pub proxy_failure: Option<String>,
    /// Jobs whose event stream announced an end they did not have.
    pub darkroom_misreports: u32,
    pub proxy_misreports: u32,
}

impl Paths {
    /// Runs `jobs` turns (after a warm-up) of the graph `graph(n)`, each number used once.
    ///
    /// # Errors
    ///
    /// When a direct or Darkroom job fails. A proxy failure ends its part and is kept.
    pub async fn compare(
        &mut self,
        jobs: u64,
        graph: impl Fn(u64) -> Value,
    ) -> anyhow::Result<Timings> {
        let mut timings = Timings::default();
        let mut number = 1_000;
        let warm_up = warm_up(jobs);
        for turn in 0..warm_up + jobs {
            let counted = turn >= warm_up;
            number += 1;
            let started = std::time::Instant::now();
            self.direct.run(&graph(number)).await?;
            let direct = self.outside_the_run(started.elapsed()).await?;

            number += 1;
            let started = std::time::Instant::now();
            let (_, misreports) = self.darkroom.run(&graph(number)).await?;
            let darkroom = self.outside_the_run(started.elapsed()).await?;
            timings.darkroom_misreports += misreports;

            if counted {
                timings.direct.push_duration(direct);
                timings.darkroom.push_duration(darkroom);
                timings
                    .darkroom_added
                    .push((darkroom.as_secs_f64() - direct.as_secs_f64()) * 1000.0);
            }

            if let Some(proxy) = &self.proxy {
                number += 1;
                let started = std::time::Instant::now();
                let outcome = proxy.run(&graph(number)).await;
                if let Ok((_, misreports)) = &outcome {
                    timings.proxy_misreports += misreports;
                }
                let elapsed = self.outside_the_run(started.elapsed()).await?;
                match outcome {
                    Ok(_) if counted => {
                        timings.proxy.push_duration(elapsed);
                        timings
                            .proxy_added
                            .push((elapsed.as_secs_f64() - direct.as_secs_f64()) * 1000.0);
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(%error, "comfy-api-proxy failed a job; it takes no further part");
                        timings.proxy_failure = Some(format!("{error:#}"));
                        self.proxy = None;
                    }
                }
            }
        }
        Ok(timings)
    }

    /// `elapsed` less the newest run's time on the backend, when run times are taken off.
    async fn outside_the_run(&self, elapsed: Duration) -> anyhow::Result<Duration> {
        match &self.run_times {
            Some(run_times) => Ok(elapsed.saturating_sub(run_times.newest().await?)),
            None => Ok(elapsed),
        }
    }
}

impl Timings {
    /// Adds the rows of one comparison; `goals` puts the targets beside Darkroom's figures.
    pub fn report(&self, bench: &mut Bench, scenario: &str, jobs: u64, goals: bool) {
        let report = &mut bench.report;
        let goal = |limit: f64| goals.then_some(Goal::Below(limit));
        report.figure(
            scenario,
            &format!("direct job p50 ({jobs} jobs)"),
            self.direct.p50(),
            Unit::Milliseconds,
            None,
        );
        report.figure(
            scenario,
            "direct job p99",
            self.direct.p99(),
            Unit::Milliseconds,
            None,
        );
        report.figure(
            scenario,
            "via Darkroom p50",
            self.darkroom.p50(),
            Unit::Milliseconds,
            None,
        );
        report.figure(
            scenario,
            "via Darkroom p99",
            self.darkroom.p99(),
            Unit::Milliseconds,
            None,
        );
        report.figure(
            scenario,
            "Darkroom adds per job, p50",
            self.darkroom_added.p50(),
            Unit::Milliseconds,
            goal(2.0),
        );
        report.figure(
            scenario,
            "Darkroom adds per job, p99",
            self.darkroom_added.p99(),
            Unit::Milliseconds,
            goal(10.0),
        );
        if self.darkroom_misreports > 0 {
            report.figure(
                scenario,
                "Darkroom streams that announced a false end",
                f64::from(self.darkroom_misreports),
                Unit::Count,
                None,
            );
        }
        if let Some(failure) = &self.proxy_failure {
            report.text(scenario, "comfy-api-proxy", &format!("failed: {failure}"));
        }
        if !self.proxy.is_empty() {
            report.figure(
                scenario,
                "via comfy-api-proxy p50",
                self.proxy.p50(),
                Unit::Milliseconds,
                None,
            );
            report.figure(
                scenario,
                "comfy-api-proxy adds per job, p50",
                self.proxy_added.p50(),
                Unit::Milliseconds,
                None,
            );
            report.figure(
                scenario,
                "comfy-api-proxy adds per job, p99",
                self.proxy_added.p99(),
                Unit::Milliseconds,
                None,
            );
            report.figure(
                scenario,
                "job p50, comfy-api-proxy / Darkroom",
                self.proxy.p50() / self.darkroom.p50(),
                Unit::Times,
                None,
            );
            report.figure(
                scenario,
                "comfy-api-proxy streams that announced a false end",
                f64::from(self.proxy_misreports),
                Unit::Count,
                None,
            );
        }
    }
}

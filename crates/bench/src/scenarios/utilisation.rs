//! Scenario 3: how busy Darkroom keeps its backends. N simulated backends each take a
//! fixed time per job; a queue many times N is submitted at once; the share of backend
//! time spent working is the time the backends ran jobs over N times a span. Two spans:
//! while the queue still held work (from the first job starting to the last one
//! starting), which is what the scheduler answers for; and to the last job's end, which
//! adds the drain at the end, when some backends have run out of work before others.

use std::time::{Duration, Instant};

use anyhow::Context;
use comfy_sim::{Execution, Knobs, SimHandle};
use futures_util::StreamExt;
use futures_util::stream;
use serde_json::Value;

use super::{darkroom_for, simulators};
use crate::report::{Goal, Unit};
use crate::server::Proxy;
use crate::v2::V2Client;
use crate::{Bench, graphs};

const NAME: &str = "utilisation";
/// Submissions in flight at once while the queue is filled.
const SUBMITTERS: usize = 16;

/// # Errors
///
/// When Darkroom or a job fails.
pub async fn run(bench: &mut Bench) -> anyhow::Result<()> {
    let sizes = bench.options.sizes.clone();
    let job_ms = u64::try_from(sizes.utilisation_job.as_millis()).unwrap_or(u64::MAX);
    let per_backend = sizes.utilisation_jobs_per_backend;
    let scenario = format!("{NAME} ({job_ms} ms jobs, {per_backend} per backend)");

    let mut darkroom_single = f64::NAN;
    for backends in sizes.utilisation_backends.clone() {
        let sims = simulators(backends, &Knobs::default()).await?;
        let darkroom = darkroom_for(bench, &sims, &[]).await?;
        let client = V2Client::new(bench.http.clone(), &darkroom.base);
        let jobs = per_backend * backends as u64;
        let measured = run_queue(
            &client,
            jobs,
            |index| graphs::fixed_time(job_ms, index),
            true,
        )
        .await;
        darkroom.stop().await;
        let misreports = measured?;
        let busy = Busy::of(&sims)?;
        let goal = (backends >= 16).then_some(Goal::AtLeast(99.0));
        let label = format!("{backends} backend{}", if backends == 1 { "" } else { "s" });
        let fed = Busy::while_queued(&sims)?;
        bench.report.figure(
            &scenario,
            &format!("{label}: time working while jobs waited"),
            fed.percent(),
            Unit::Percent,
            goal,
        );
        bench.report.figure(
            &scenario,
            &format!("{label}: time working to the last job's end"),
            busy.percent(),
            Unit::Percent,
            None,
        );
        bench.report.figure(
            &scenario,
            &format!("{label}: idle between jobs, mean"),
            busy.idle_per_job_ms(),
            Unit::Milliseconds,
            None,
        );
        if misreports > 0 {
            bench.report.figure(
                &scenario,
                &format!("{label}: streams that announced a false end"),
                f64::from(misreports),
                Unit::Count,
                None,
            );
        }
        if backends == 1 {
            darkroom_single = busy.percent();
        }
    }

    // comfy-api-proxy fronts one ComfyUI: it is compared on one backend.
    if let Some(program) = bench.options.proxy.clone() {
        let sims = simulators(1, &Knobs::default()).await?;
        let proxy = Proxy::start(&program, &sims[0].base_url(), &bench.http).await?;
        let client = V2Client::new(bench.http.clone(), &proxy.base);
        let measured = run_queue(
            &client,
            per_backend,
            |index| graphs::fixed_time(job_ms, index),
            false,
        )
        .await;
        proxy.stop().await;
        match measured.and_then(|_| Busy::of(&sims)) {
            Ok(busy) => {
                bench.report.figure(
                    &scenario,
                    "1 backend via comfy-api-proxy: time working to the last job's end",
                    busy.percent(),
                    Unit::Percent,
                    None,
                );
                bench.report.figure(
                    &scenario,
                    "1 backend, Darkroom / comfy-api-proxy",
                    darkroom_single / busy.percent(),
                    Unit::Times,
                    None,
                );
            }
            Err(error) => {
                bench
                    .report
                    .text(&scenario, "comfy-api-proxy", &format!("failed: {error:#}"))
            }
        }
    }
    Ok(())
}

/// Submits `jobs` jobs (`graph(n)`) at once and waits until each has succeeded; returns
/// how many event streams announced an end their job did not have. With
/// `follow_all`, every job's event stream is followed at once; otherwise (a gateway that
/// caps its streams) one after another.
///
/// # Errors
///
/// When a job is refused or does not succeed.
pub async fn run_queue(
    client: &V2Client,
    jobs: u64,
    graph: impl Fn(u64) -> Value,
    follow_all: bool,
) -> anyhow::Result<u32> {
    let workflows: Vec<Value> = (0..jobs).map(|index| graph(1_000_000 + index)).collect();
    let submitted: Vec<anyhow::Result<String>> = stream::iter(&workflows)
        .map(|workflow| client.submit(workflow))
        .buffered(SUBMITTERS)
        .collect()
        .await;
    let ids = submitted
        .into_iter()
        .collect::<anyhow::Result<Vec<String>>>()?;

    if follow_all {
        let waits = ids.iter().map(|id| client.wait_succeeded(id));
        let mut misreports = 0;
        for outcome in futures_util::future::join_all(waits).await {
            misreports += outcome?.1;
        }
        return Ok(misreports);
    }
    // Submitted concurrently, the jobs reach the backend's queue in no set order: each is
    // followed in turn, one stream at a time.
    let mut misreports = 0;
    for id in &ids {
        misreports += client.wait_succeeded(id).await?.1;
    }
    Ok(misreports)
}

/// The backends' working time and the span it fell in.
#[derive(Debug)]
pub struct Busy {
    pub backends: usize,
    pub runs: usize,
    pub working: Duration,
    pub span: Duration,
}

impl Busy {
    /// From the simulators' records of their runs.
    ///
    /// # Errors
    ///
    /// When no run finished.
    pub fn of(sims: &[SimHandle]) -> anyhow::Result<Self> {
        let executions: Vec<Execution> = sims.iter().flat_map(SimHandle::executions).collect();
        let intervals: Vec<(Instant, Instant)> = executions
            .iter()
            .filter_map(|run| Some((run.started, run.finished?)))
            .collect();
        Self::from_intervals(sims.len(), &intervals)
    }

    /// From the simulators' records, counted from the first run's start to the last
    /// run's start: while every backend could have had work.
    ///
    /// # Errors
    ///
    /// When fewer than two runs finished.
    pub fn while_queued(sims: &[SimHandle]) -> anyhow::Result<Self> {
        let executions: Vec<Execution> = sims.iter().flat_map(SimHandle::executions).collect();
        let intervals: Vec<(Instant, Instant)> = executions
            .iter()
            .filter_map(|run| Some((run.started, run.finished?)))
            .collect();
        let first_start = intervals
            .iter()
            .map(|(start, _)| *start)
            .min()
            .context("no run finished")?;
        let last_start = intervals
            .iter()
            .map(|(start, _)| *start)
            .max()
            .context("no run finished")?;
        Ok(Self::within(
            sims.len(),
            &intervals,
            first_start,
            last_start,
        ))
    }

    /// The work done inside `[from, to]` by runs that started before `to`.
    fn within(
        backends: usize,
        intervals: &[(Instant, Instant)],
        from: Instant,
        to: Instant,
    ) -> Self {
        let inside: Vec<Duration> = intervals
            .iter()
            .filter(|(start, _)| *start < to)
            .map(|(start, end)| (*end).min(to).saturating_duration_since((*start).max(from)))
            .collect();
        Self {
            backends,
            runs: inside.len(),
            working: inside.iter().sum(),
            span: to - from,
        }
    }

    /// # Errors
    ///
    /// When there are no intervals.
    pub fn from_intervals(
        backends: usize,
        intervals: &[(Instant, Instant)],
    ) -> anyhow::Result<Self> {
        let first = intervals
            .iter()
            .map(|(start, _)| *start)
            .min()
            .context("no run finished")?;
        let last = intervals
            .iter()
            .map(|(_, end)| *end)
            .max()
            .context("no run finished")?;
        Ok(Self {
            backends,
            runs: intervals.len(),
            working: intervals.iter().map(|(start, end)| *end - *start).sum(),
            span: last - first,
        })
    }

    pub fn percent(&self) -> f64 {
        let available = self.span.as_secs_f64() * self.backends as f64;
        100.0 * self.working.as_secs_f64() / available
    }

    /// Backend time not spent working, per job run.
    pub fn idle_per_job_ms(&self) -> f64 {
        let available = self.span.as_secs_f64() * self.backends as f64;
        (available - self.working.as_secs_f64()) * 1000.0 / self.runs as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_share_is_work_over_backends_times_span() {
        let zero = Instant::now();
        let at = |ms: u64| zero + Duration::from_millis(ms);
        // Two backends over 100 ms: one works 100 ms, the other 50.
        let busy = Busy::from_intervals(2, &[(at(0), at(60)), (at(60), at(100)), (at(10), at(60))])
            .unwrap();
        assert!((busy.percent() - 75.0).abs() < 1e-9);
        assert!((busy.idle_per_job_ms() - 50.0 / 3.0).abs() < 1e-9);
        assert!(Busy::from_intervals(1, &[]).is_err());

        // Until the last start at 60: the first backend worked 60 of 60 ms, the second 50.
        let intervals = [(at(0), at(60)), (at(60), at(100)), (at(10), at(60))];
        let fed = Busy::within(2, &intervals, at(0), at(60));
        assert!((fed.percent() - 110.0 / 120.0 * 100.0).abs() < 1e-9);
    }
}

//! Scenario 2: jobs accepted per second and status reads per second, with SQLite, at
//! several numbers of concurrent clients. The one backend is kept busy by a job that runs
//! until interrupted, so what is accepted stays queued and the figure is the API's and the
//! store's, not the scheduler's. Status reads pick from the newest 10,000 accepted jobs,
//! as clients poll what they have just submitted (Darkroom keeps the 16,384 statuses most
//! recently used in memory; an older one is a database read).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use comfy_sim::Knobs;
use futures_util::future::join_all;
use serde_json::Value;

use super::{darkroom_for, simulators};
use crate::report::{Goal, Unit};
use crate::stats::Samples;
use crate::v2::V2Client;
use crate::{Bench, graphs};

const NAME: &str = "throughput (SQLite)";
/// The newest accepted jobs, whose ids status reads pick from.
const READ_IDS: usize = 10_000;

/// # Errors
///
/// When Darkroom fails or refuses requests.
pub async fn run(bench: &mut Bench) -> anyhow::Result<()> {
    let sims = simulators(1, &Knobs::default()).await?;
    // No queue limit worth the name: every job submitted stays queued.
    let darkroom = darkroom_for(bench, &sims, &[("DARKROOM_QUEUE_LIMIT", "100000000")]).await?;
    let client = V2Client::new(bench.http.clone(), &darkroom.base);
    client.submit(&graphs::until_interrupted(0)).await?;

    let window = bench.options.sizes.throughput_window;
    let mut ids = Vec::new();
    for clients in bench.options.sizes.throughput_clients.clone() {
        let counter = Arc::new(AtomicU64::new(1));
        let submitter = client.clone();
        let outcome = load(clients, window, move || {
            let client = submitter.clone();
            let counter = Arc::clone(&counter);
            async move {
                let number = counter.fetch_add(1, Ordering::Relaxed);
                client.submit(&graphs::small_image(number)).await
            }
        })
        .await?;
        let measure = format!("jobs accepted, {clients} client{}", plural(clients));
        bench.report.figure(
            NAME,
            &measure,
            outcome.rate,
            Unit::PerSecond,
            Some(Goal::AtLeast(2000.0)),
        );
        bench.report.figure(
            NAME,
            &format!("{measure}: submit p99"),
            outcome.latency.p99(),
            Unit::Milliseconds,
            None,
        );
        ids.extend(outcome.values);
    }
    if ids.is_empty() {
        bail!("no job was accepted");
    }
    // Clients poll the jobs they have just submitted: the newest.
    let ids: Vec<String> = ids.split_off(ids.len().saturating_sub(READ_IDS));

    let ids = Arc::new(ids);
    for clients in bench.options.sizes.throughput_clients.clone() {
        let counter = Arc::new(AtomicU64::new(0));
        let reader = client.clone();
        let ids = Arc::clone(&ids);
        let outcome = load(clients, window, move || {
            let client = reader.clone();
            let ids = Arc::clone(&ids);
            let counter = Arc::clone(&counter);
            async move {
                let number = counter.fetch_add(1, Ordering::Relaxed) as usize;
                let job: Value = client.job(&ids[number % ids.len()]).await?;
                Ok(job["id"].as_str().unwrap_or_default().to_owned())
            }
        })
        .await?;
        let measure = format!("status reads, {clients} client{}", plural(clients));
        bench.report.figure(
            NAME,
            &measure,
            outcome.rate,
            Unit::PerSecond,
            Some(Goal::AtLeast(20_000.0)),
        );
        bench.report.figure(
            NAME,
            &format!("{measure}: read p99"),
            outcome.latency.p99(),
            Unit::Milliseconds,
            None,
        );
    }
    let queued = darkroom.memory()?;
    darkroom.stop().await;
    bench.report.figure(
        NAME,
        "RSS at the end",
        queued.rss_mib,
        Unit::MebiBytes,
        None,
    );
    Ok(())
}

fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}

/// What a load run did.
#[derive(Debug)]
pub struct Load {
    /// Requests completed per second of the run.
    pub rate: f64,
    pub latency: Samples,
    /// What the requests returned.
    pub values: Vec<String>,
}

/// Runs `clients` loops, each its own task, each sending one request after another
/// (`request()`) until `window` has passed.
///
/// # Errors
///
/// The first request that failed.
pub async fn load<F, Fut>(clients: usize, window: Duration, request: F) -> anyhow::Result<Load>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<String>> + Send + 'static,
{
    let request = Arc::new(request);
    let started = Instant::now();
    let deadline = started + window;
    let loops: Vec<_> = (0..clients)
        .map(|_| {
            let request = Arc::clone(&request);
            tokio::spawn(async move {
                let mut latency = Samples::new();
                let mut values = Vec::new();
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    values.push(request().await?);
                    latency.push_duration(sent.elapsed());
                }
                anyhow::Ok((latency, values))
            })
        })
        .collect();
    let results = join_all(loops).await;
    let elapsed = started.elapsed();
    let mut latency = Samples::new();
    let mut values = Vec::new();
    for result in results {
        let (loop_latency, loop_values) = result??;
        latency.extend(loop_latency);
        values.extend(loop_values);
    }
    Ok(Load {
        rate: values.len() as f64 / elapsed.as_secs_f64(),
        latency,
        values,
    })
}

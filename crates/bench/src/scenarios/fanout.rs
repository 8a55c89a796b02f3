//! Scenario 4: many clients following running jobs. Several simulated backends each run
//! a job that lasts until interrupted; the streams are spread evenly over those jobs. In
//! each round every backend sends one `progress` message (spread over the round, as
//! independent backends would), and each stream's latency is from the moment the backend
//! sent it to the moment the client read the matching event. Rounds are further apart
//! than Darkroom's progress throttle, so every message is one the client must see.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use comfy_sim::Knobs;
use tokio::sync::mpsc;

use super::{darkroom_for, simulators};
use crate::report::{Goal, Unit};
use crate::stats::Samples;
use crate::v2::V2Client;
use crate::{Bench, graphs};

const NAME: &str = "fan-out";
/// The `max` of the progress the benchmark sends, so its events cannot be confused with
/// the job's own. Its `value` is `round * BACKENDS_PER_ROUND + backend`: the scheduler,
/// not the benchmark, chooses which backend runs which job.
const MARK: u64 = 987_654;
const BACKENDS_PER_ROUND: u64 = 1000;
/// Time between two messages of one backend; Darkroom writes a run's progress at most
/// every 150 ms.
const ROUND: Duration = Duration::from_millis(250);
/// How long a round may take to reach every stream before its stragglers count as lost.
const ROUND_PATIENCE: Duration = Duration::from_secs(5);

/// # Errors
///
/// When Darkroom, a job or a stream fails.
pub async fn run(bench: &mut Bench) -> anyhow::Result<()> {
    let sizes = bench.options.sizes.clone();
    let sims = simulators(sizes.fanout_backends, &Knobs::default()).await?;
    let darkroom = darkroom_for(bench, &sims, &[]).await?;
    let client = V2Client::new(bench.http.clone(), &darkroom.base);

    let mut jobs = Vec::new();
    for index in 0..sims.len() {
        jobs.push(
            client
                .submit(&graphs::until_interrupted(index as u64))
                .await?,
        );
    }
    for job in &jobs {
        wait_running(&client, job).await?;
    }
    let before = darkroom.memory()?;

    // Every stream reports each event of the benchmark as (its value, when read).
    let (arrivals_tx, mut arrivals) = mpsc::unbounded_channel::<(u64, Instant)>();
    let (ready_tx, mut ready) = mpsc::unbounded_channel::<()>();
    let mut streams = Vec::new();
    for stream in 0..sizes.fanout_streams {
        let mut events = client.events(&jobs[stream % jobs.len()]).await?;
        let arrivals_tx = arrivals_tx.clone();
        let ready_tx = ready_tx.clone();
        streams.push(tokio::spawn(async move {
            let mut ready_tx = Some(ready_tx);
            while let Ok(Some(event)) = events.next_event().await {
                // The replay of what is stored comes first: the stream is live after it.
                if let Some(ready) = ready_tx.take() {
                    let _ = ready.send(());
                }
                if event.name == "progress" && event.data["steps"] == MARK {
                    let value = event.data["step"].as_u64().unwrap_or_default();
                    let _ = arrivals_tx.send((value, Instant::now()));
                }
            }
        }));
    }
    drop((arrivals_tx, ready_tx));
    for _ in 0..streams.len() {
        tokio::time::timeout(ROUND_PATIENCE, ready.recv())
            .await
            .context("an event stream sent nothing")?;
    }
    let open = darkroom.memory()?;

    let mut latency = Samples::new();
    let mut lost = 0;
    for round in 1..=sizes.fanout_rounds {
        let round_started = Instant::now();
        let mut sent_at = Vec::new();
        for (index, sim) in sims.iter().enumerate() {
            let due = round_started + ROUND.mul_f64(index as f64 / sims.len() as f64);
            tokio::time::sleep_until(due.into()).await;
            let value = round * BACKENDS_PER_ROUND + index as u64;
            let sent = sim
                .send_progress(value, MARK)
                .context("a backend has no running job")?;
            sent_at.push(sent.at);
        }
        let expected = streams.len();
        let mut seen = 0;
        let deadline = tokio::time::Instant::now() + ROUND_PATIENCE;
        while seen < expected {
            match tokio::time::timeout_at(deadline, arrivals.recv()).await {
                Ok(Some((value, at))) if value / BACKENDS_PER_ROUND == round => {
                    let backend = (value % BACKENDS_PER_ROUND) as usize;
                    latency.push_duration(at.duration_since(sent_at[backend]));
                    seen += 1;
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        lost += expected - seen;
        tokio::time::sleep_until((round_started + ROUND + ROUND / 4).into()).await;
    }
    let after = darkroom.memory()?;
    for stream in &streams {
        stream.abort();
    }
    darkroom.stop().await;
    if latency.is_empty() {
        bail!("no progress event reached any stream");
    }

    let scenario = format!(
        "{NAME} ({} streams on {} running jobs)",
        streams.len(),
        jobs.len()
    );
    let report = &mut bench.report;
    report.figure(
        &scenario,
        &format!("event latency p50 ({} events)", latency.len()),
        latency.p50(),
        Unit::Milliseconds,
        None,
    );
    report.figure(
        &scenario,
        "event latency p99",
        latency.p99(),
        Unit::Milliseconds,
        Some(Goal::Below(10.0)),
    );
    report.figure(
        &scenario,
        "event latency max",
        latency.max(),
        Unit::Milliseconds,
        None,
    );
    report.figure(&scenario, "events lost", lost as f64, Unit::Count, None);
    report.figure(
        &scenario,
        "RSS before the streams",
        before.rss_mib,
        Unit::MebiBytes,
        None,
    );
    report.figure(
        &scenario,
        "RSS with the streams open",
        open.rss_mib.max(after.rss_mib),
        Unit::MebiBytes,
        Some(Goal::Below(100.0)),
    );
    report.figure(&scenario, "peak RSS", after.peak_mib, Unit::MebiBytes, None);
    Ok(())
}

/// Follows the job's events until it says it runs.
async fn wait_running(client: &V2Client, id: &str) -> anyhow::Result<()> {
    let follow = async {
        let mut events = client.events(id).await?;
        while let Some(event) = events.next_event().await? {
            if event.name == "status" && event.data["status"] == "running" {
                return Ok(());
            }
        }
        bail!("the events of job {id} ended before it ran")
    };
    tokio::time::timeout(Duration::from_secs(30), follow)
        .await
        .with_context(|| format!("job {id} did not start"))?
}

//! Scenarios 1 and 3 against a real ComfyUI (the CPU install of scripts/install-comfyui.sh,
//! its tiny text-to-image graph), with comfy-api-proxy on the same server in the same run
//! when it is installed. Busy time comes from ComfyUI's own history: the timestamps of
//! each run's `execution_start` and of its last message.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;
use testkit::{RealComfyUi, StartOptions};

use super::latency::{Paths, RunTimes, run_span};
use super::utilisation::{Busy, run_queue};
use crate::direct::DirectClient;
use crate::report::Unit;
use crate::server::{Darkroom, Proxy};
use crate::v2::V2Client;
use crate::{Bench, RealMode, graphs};

const NAME: &str = "real ComfyUI";

/// # Errors
///
/// When ComfyUI is wanted (`--real on`) but not installed, or a job fails.
pub async fn run(bench: &mut Bench) -> anyhow::Result<()> {
    let installed = testkit::comfyui_home().join(".installed").exists();
    match (bench.options.real, installed) {
        (RealMode::Off, _) => {
            bench.report.text(NAME, "skipped", "--real off");
            return Ok(());
        }
        (RealMode::Auto, false) => {
            bench.report.text(
                NAME,
                "skipped",
                "ComfyUI is not installed: scripts/install-comfyui.sh",
            );
            return Ok(());
        }
        (RealMode::On, false) => bail!("ComfyUI is not installed: run scripts/install-comfyui.sh"),
        _ => {}
    }
    let options = StartOptions {
        latent_previews: false,
        ..StartOptions::default()
    };
    let comfyui = tokio::task::spawn_blocking(move || RealComfyUi::start(options)).await?;
    let Some(comfyui) = comfyui else {
        bench
            .report
            .text(NAME, "skipped", "DARKROOM_SKIP_REAL_COMFYUI=1");
        return Ok(());
    };
    let outcome = compare(bench, &comfyui).await;
    tokio::task::spawn_blocking(move || drop(comfyui)).await?;
    outcome
}

async fn compare(bench: &mut Bench, comfyui: &RealComfyUi) -> anyhow::Result<()> {
    let backend = comfyui.base_url().trim_end_matches('/').to_owned();
    // As every scenario starts it: `--server-log` applies here too.
    let darkroom = super::start_darkroom(bench, std::slice::from_ref(&backend), &[]).await?;
    let proxy = match &bench.options.proxy {
        Some(program) => Some(Proxy::start(program, &backend, &bench.http).await?),
        None => None,
    };
    let outcome = measure(bench, &backend, &darkroom, proxy.as_ref()).await;
    darkroom.stop().await;
    if let Some(proxy) = proxy {
        proxy.stop().await;
    }
    outcome
}

async fn measure(
    bench: &mut Bench,
    backend: &str,
    darkroom: &Darkroom,
    proxy: Option<&Proxy>,
) -> anyhow::Result<()> {
    let sizes = bench.options.sizes.clone();
    let darkroom_client = V2Client::new(bench.http.clone(), &darkroom.base);
    let proxy_client = proxy.map(|proxy| V2Client::new(bench.http.clone(), &proxy.base));

    let mut paths = Paths {
        direct: DirectClient::connect(bench.http.clone(), backend).await?,
        darkroom: darkroom_client.clone(),
        proxy: proxy_client.clone(),
        run_times: Some(RunTimes {
            http: bench.http.clone(),
            backend: backend.to_owned(),
        }),
    };
    let timings = paths
        .compare(sizes.real_latency_jobs, graphs::real_txt2img)
        .await?;
    let latency_scenario = format!("{NAME}: added latency, outside ComfyUI's run");
    timings.report(bench, &latency_scenario, sizes.real_latency_jobs, false);
    if proxy.is_none() {
        bench.report.text(
            &latency_scenario,
            "comfy-api-proxy",
            "not installed: scripts/install-comfy-api-proxy.sh",
        );
    }

    let jobs = sizes.real_utilisation_jobs;
    let scenario = format!("{NAME}: utilisation ({jobs} jobs, 1 backend)");
    let graph = |index: u64| graphs::real_txt2img(5_000_000 + index);
    let darkroom_busy = busy_while(
        bench,
        backend,
        run_queue(&darkroom_client, jobs, graph, true),
    )
    .await?;
    bench.report.figure(
        &scenario,
        "via Darkroom: time working",
        darkroom_busy.percent(),
        Unit::Percent,
        None,
    );
    bench.report.figure(
        &scenario,
        "via Darkroom: idle between jobs, mean",
        darkroom_busy.idle_per_job_ms(),
        Unit::Milliseconds,
        None,
    );
    if let Some(client) = &proxy_client {
        let graph = |index: u64| graphs::real_txt2img(6_000_000 + index);
        match busy_while(bench, backend, run_queue(client, jobs, graph, false)).await {
            Ok(busy) => {
                bench.report.figure(
                    &scenario,
                    "via comfy-api-proxy: time working",
                    busy.percent(),
                    Unit::Percent,
                    None,
                );
                bench.report.figure(
                    &scenario,
                    "Darkroom / comfy-api-proxy",
                    darkroom_busy.percent() / busy.percent(),
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

/// Runs `work` and measures the backend's busy share from the history entries it added.
async fn busy_while(
    bench: &Bench,
    backend: &str,
    work: impl Future<Output = anyhow::Result<u32>>,
) -> anyhow::Result<Busy> {
    let before: HashSet<String> = history(bench, backend).await?.keys().cloned().collect();
    work.await?;
    let after = history(bench, backend).await?;
    let mut spans = Vec::new();
    for (prompt_id, entry) in &after {
        if !before.contains(prompt_id) {
            spans.push(
                run_span(entry).with_context(|| format!("prompt {prompt_id} has no timestamps"))?,
            );
        }
    }
    let origin = spans
        .iter()
        .map(|(start, _)| *start)
        .min()
        .context("no run was added")?;
    let now = Instant::now();
    let instant = |ms: u64| now + Duration::from_millis(ms - origin);
    let intervals: Vec<(Instant, Instant)> = spans
        .iter()
        .map(|(start, end)| (instant(*start), instant(*end)))
        .collect();
    Busy::from_intervals(1, &intervals)
}

async fn history(bench: &Bench, backend: &str) -> anyhow::Result<serde_json::Map<String, Value>> {
    let history: Value = bench
        .http
        .get(format!("{backend}/history"))
        .send()
        .await?
        .json()
        .await?;
    history
        .as_object()
        .cloned()
        .context("/history is not an object")
}

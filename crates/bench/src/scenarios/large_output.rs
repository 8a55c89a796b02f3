//! Scenario 5: a job whose one output is hundreds of megabytes. The server's peak memory
//! (`VmHWM`) after storing the output and again after serving it, against its resident
//! memory before the job: how much storing and serving cost beyond idle.

use std::time::Instant;

use anyhow::bail;
use comfy_sim::Knobs;

use super::{MIB, darkroom_for, simulators};
use crate::report::{Goal, Unit};
use crate::v2::V2Client;
use crate::{Bench, graphs};

/// # Errors
///
/// When Darkroom or the job fails, or the download is short.
pub async fn run(bench: &mut Bench) -> anyhow::Result<()> {
    let size = bench.options.sizes.large_output_bytes;
    let knobs = Knobs {
        output_bytes: size,
        ..Knobs::default()
    };
    let sims = simulators(1, &knobs).await?;
    let darkroom = darkroom_for(bench, &sims, &[]).await?;
    let client = V2Client::new(bench.http.clone(), &darkroom.base);
    let before = darkroom.memory()?;

    let started = Instant::now();
    let id = client.submit(&graphs::small_image(7)).await?;
    let (job, _) = client.wait_succeeded(&id).await?;
    let stored_in = started.elapsed();
    let stored = darkroom.memory()?;

    let started = Instant::now();
    let read = client.download_outputs(&job).await?;
    let served_in = started.elapsed();
    let served = darkroom.memory()?;
    darkroom.stop().await;
    if read != size {
        bail!("the output served has {read} bytes, not {size}");
    }

    let scenario = format!("large output ({:.0} MiB)", size as f64 / MIB);
    let report = &mut bench.report;
    report.figure(
        &scenario,
        "RSS before the job",
        before.rss_mib,
        Unit::MebiBytes,
        None,
    );
    report.figure(
        &scenario,
        "peak RSS growth, storing",
        stored.peak_mib - before.rss_mib,
        Unit::MebiBytes,
        Some(Goal::Below(50.0)),
    );
    report.figure(
        &scenario,
        "peak RSS growth, storing and serving",
        served.peak_mib - before.rss_mib,
        Unit::MebiBytes,
        Some(Goal::Below(50.0)),
    );
    report.figure(
        &scenario,
        "job, output written and stored",
        size as f64 / MIB / stored_in.as_secs_f64(),
        Unit::MebiBytesPerSecond,
        None,
    );
    report.figure(
        &scenario,
        "download from Darkroom",
        size as f64 / MIB / served_in.as_secs_f64(),
        Unit::MebiBytesPerSecond,
        None,
    );
    Ok(())
}

//! Scenario 0: the server's memory with nothing to do, fresh and after a run of jobs.

use std::time::Duration;

use comfy_sim::Knobs;

use super::{darkroom_for, simulators};
use crate::report::{Goal, Unit};
use crate::v2::V2Client;
use crate::{Bench, graphs};

const NAME: &str = "idle";
const JOBS: u64 = 50;
/// Time for whatever a job left behind (streams, tasks) to wind down.
const QUIET: Duration = Duration::from_secs(1);

/// # Errors
///
/// When Darkroom or a job fails.
pub async fn run(bench: &mut Bench) -> anyhow::Result<()> {
    let sims = simulators(1, &Knobs::default()).await?;
    let darkroom = darkroom_for(bench, &sims, &[]).await?;
    tokio::time::sleep(QUIET).await;
    let fresh = darkroom.memory()?;

    let client = V2Client::new(bench.http.clone(), &darkroom.base);
    for index in 0..JOBS {
        client.run(&graphs::small_image(index)).await?;
    }
    tokio::time::sleep(QUIET).await;
    let after = darkroom.memory()?;
    darkroom.stop().await;

    let report = &mut bench.report;
    report.figure(
        NAME,
        "RSS, started, one backend",
        fresh.rss_mib,
        Unit::MebiBytes,
        Some(Goal::Below(30.0)),
    );
    report.figure(
        NAME,
        &format!("RSS, idle after {JOBS} jobs"),
        after.rss_mib,
        Unit::MebiBytes,
        Some(Goal::Below(30.0)),
    );
    report.figure(
        NAME,
        "peak RSS so far",
        after.peak_mib,
        Unit::MebiBytes,
        None,
    );
    Ok(())
}

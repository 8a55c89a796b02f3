//! The scenarios, one module each, and what several of them share: simulated backends
//! and a Darkroom in front of them.

pub mod fanout;
pub mod idle;
pub mod large_output;
pub mod latency;
pub mod real;
pub mod throughput;
pub mod utilisation;

use std::time::Duration;

use comfy_sim::{Knobs, SimHandle, Simulator};

use crate::Bench;
use crate::server::Darkroom;

/// How long a fresh Darkroom is left to open its backends' websockets before it is
/// measured: it says it listens before its drivers have connected.
pub const SETTLE: Duration = Duration::from_millis(500);

/// Starts `count` simulators on loopback ports with `knobs`.
///
/// # Errors
///
/// When one cannot bind or prepare its folders.
pub async fn simulators(count: usize, knobs: &Knobs) -> anyhow::Result<Vec<SimHandle>> {
    let mut sims = Vec::with_capacity(count);
    for _ in 0..count {
        sims.push(Simulator::builder().knobs(knobs.clone()).start().await?);
    }
    Ok(sims)
}

/// Starts Darkroom in front of `sims` with extra settings and lets it connect.
///
/// # Errors
///
/// When it does not start.
pub async fn darkroom_for(
    bench: &Bench,
    sims: &[SimHandle],
    settings: &[(&str, &str)],
) -> anyhow::Result<Darkroom> {
    let backends: Vec<String> = sims.iter().map(SimHandle::base_url).collect();
    start_darkroom(bench, &backends, settings).await
}

/// Starts Darkroom in front of `backends` with extra settings (and the log filter asked
/// for, its folder then kept) and lets it connect.
///
/// # Errors
///
/// When it does not start.
pub async fn start_darkroom(
    bench: &Bench,
    backends: &[String],
    settings: &[(&str, &str)],
) -> anyhow::Result<Darkroom> {
    let mut settings = settings.to_vec();
    if let Some(filter) = &bench.options.server_log {
        settings.push(("RUST_LOG", filter.as_str()));
    }
    let mut darkroom = Darkroom::start(&bench.options.darkroom, backends, &settings).await?;
    if bench.options.server_log.is_some() {
        darkroom.keep_data();
    }
    tokio::time::sleep(SETTLE).await;
    Ok(darkroom)
}

/// Bytes in a MiB, as a float.
pub const MIB: f64 = 1024.0 * 1024.0;

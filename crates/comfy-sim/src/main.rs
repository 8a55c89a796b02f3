//! `comfy-sim`: runs the simulator as a process, for manual checks and for
//! tests of programs that are not written in Rust.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use comfy_sim::{Knobs, Simulator};
use tracing_subscriber::EnvFilter;

/// A ComfyUI 0.3.75 stand-in. Knobs can be changed at runtime with
/// `POST /_sim/knobs` (JSON), and `POST /_sim/restart` simulates a restart.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Port to listen on.
    #[arg(long, default_value_t = 8188)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    listen: String,
    /// Folder for input/, output/ and temp/ (default: a temporary folder).
    #[arg(long)]
    base_dir: Option<PathBuf>,
    /// Simulated milliseconds per plain node.
    #[arg(long, default_value_t = 2)]
    node_time_ms: u64,
    /// Simulated milliseconds per KSampler step.
    #[arg(long, default_value_t = 20)]
    sampler_step_ms: u64,
    /// Multiplier for every simulated duration.
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
    /// Delay between the end of a run and its history entry, in ms.
    #[arg(long, default_value_t = 0)]
    history_lag_ms: u64,
    /// Send sampler previews, like `--preview-method latent2rgb`.
    #[arg(long)]
    previews: bool,
    /// Pad every file SaveImage writes to this many bytes (0: off).
    #[arg(long, default_value_t = 0)]
    output_bytes: u64,
    /// Version reported by /system_stats.
    #[arg(long, default_value = "0.3.75")]
    comfyui_version: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();

    let knobs = Knobs {
        node_time: Duration::from_millis(args.node_time_ms),
        sampler_step_time: Duration::from_millis(args.sampler_step_ms),
        time_scale: args.time_scale,
        history_lag: Duration::from_millis(args.history_lag_ms),
        previews: args.previews,
        output_bytes: args.output_bytes,
        comfyui_version: args.comfyui_version,
        ..Knobs::default()
    };
    let address = format!("{}:{}", args.listen, args.port);
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    let mut builder = Simulator::builder().knobs(knobs).listener(listener);
    if let Some(dir) = args.base_dir {
        builder = builder.base_dir(dir);
    }
    let sim = builder.start().await?;

    stopped().await?;
    tracing::info!("shutting down");
    sim.shutdown().await;
    Ok(())
}

/// Resolves on ctrl-c or SIGTERM.
async fn stopped() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::select! {
        interrupted = tokio::signal::ctrl_c() => interrupted.context("cannot wait for ctrl-c"),
        _ = terminate.recv() => Ok(()),
    }
}

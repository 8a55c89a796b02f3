//! `darkroom-bench`: runs the benchmark scenarios and prints the table.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use darkroom_bench::{Bench, Options, RealMode, Scenario, Sizes, machine};
use tracing_subscriber::EnvFilter;

/// Measures what Darkroom costs: added latency, throughput, backend utilisation, event
/// fan-out and large outputs, against simulated backends and, when installed, a real
/// ComfyUI beside comfy-api-proxy. Prints medians and tails with each goal beside its
/// figure; a missed goal does not fail the run, a scenario that cannot run does.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Small sizes, for CI: the whole run well under a minute; figures are not comparable
    /// with a full run's.
    #[arg(long)]
    quick: bool,
    /// The darkroom binary to measure [default: `darkroom` beside this program, which for
    /// a release build is target/release/darkroom].
    #[arg(long, value_name = "PATH")]
    darkroom: Option<PathBuf>,
    /// The comfy-api-proxy program [default: the one scripts/install-comfy-api-proxy.sh
    /// installs, when it is there].
    #[arg(long, value_name = "PATH")]
    proxy: Option<PathBuf>,
    /// Run the real-ComfyUI comparison: auto (when installed), on, off.
    #[arg(long, value_enum, default_value_t = RealMode::Auto)]
    real: RealMode,
    /// Only these scenarios (repeatable, or comma-separated).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Scenario>,
    /// Run each Darkroom with this RUST_LOG filter (e.g. `info,darkroom=debug`) and keep
    /// its data folder and log, for finding where time goes.
    #[arg(long, value_name = "FILTER")]
    server_log: Option<String>,
    /// Also write the table as Markdown to this file.
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// Internal: serve FILE's bytes to every request (the throughput scenario's bare
    /// server) instead of running the scenarios.
    #[arg(long, value_name = "FILE", hide = true)]
    bare_server: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if let Some(answer) = &args.bare_server {
        return darkroom_bench::wire::serve_bare(answer).await;
    }

    let darkroom = match args.darkroom {
        Some(path) => path,
        None => std::env::current_exe()?
            .parent()
            .context("this program has no folder")?
            .join("darkroom"),
    };
    anyhow::ensure!(
        darkroom.is_file(),
        "no darkroom binary at {}: build it (cargo build --release -p darkroom) or pass --darkroom",
        darkroom.display()
    );
    let proxy = args.proxy.or_else(|| {
        let installed = std::env::var_os("HOME")
            .map(PathBuf::from)?
            .join(".cache/darkroom/comfy-api-proxy/venv/bin/comfy-api-proxy");
        installed.is_file().then_some(installed)
    });
    let options = Options {
        sizes: if args.quick {
            Sizes::quick()
        } else {
            Sizes::full()
        },
        darkroom,
        proxy,
        real: args.real,
        server_log: args.server_log,
        scenarios: if args.only.is_empty() {
            Scenario::ALL.to_vec()
        } else {
            args.only
        },
    };

    let header = format!(
        "darkroom-bench{}: {}\nmachine: {}\n",
        if args.quick { " --quick" } else { "" },
        options.darkroom.display(),
        machine()
    );
    let mut bench = Bench::new(options)?;
    let started = std::time::Instant::now();
    let failed = bench.run().await;
    let footer = format!(
        "{} of {} scenarios ran in {:.0} s; goals missed: {}\n",
        bench.report.scenarios_run().len(),
        bench.options.scenarios.len(),
        started.elapsed().as_secs_f64(),
        match bench.report.misses() {
            misses if misses.is_empty() => "none".to_owned(),
            misses => misses.join("; "),
        }
    );

    #[allow(clippy::print_stdout, reason = "printing the table is the command")]
    {
        print!("{header}\n{}\n{footer}", bench.report.to_text());
    }
    if let Some(path) = args.markdown {
        let markdown = format!("{header}\n{}\n{footer}", bench.report.to_markdown());
        std::fs::write(&path, markdown)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some((scenario, error)) = failed.first() {
        anyhow::bail!("scenario {} did not run: {error:#}", scenario.name());
    }
    Ok(())
}

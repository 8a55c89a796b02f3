//! The `darkroom` binary: parses arguments, sets up tracing, and calls the library.

use anyhow::Context;
use clap::Parser;
use darkroom::cli::{Cli, Command, ShowFlags, TemplateCommand};
use darkroom::config::Config;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    match cli.command {
        Command::Serve(flags) => {
            let config = Config::load(cli.config.as_deref(), &flags.overrides())?;
            // Before binding: an exposed server without keys never listens at all.
            darkroom::server::check_exposure(&config, config.listen).await?;
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
                .with_context(|| format!("cannot listen on {}", config.listen))?;
            darkroom::server::serve(config, listener, shutdown_signal()).await?;
        }
        Command::Config(flags) => {
            let config = Config::load(cli.config.as_deref(), &flags.overrides())?;
            #[allow(clippy::print_stdout, reason = "printing the config is the command")]
            {
                print!("{}", config.to_redacted_toml());
            }
        }
        // Client commands end with a status that says whose fault a failure was.
        Command::Run(args) => std::process::exit(darkroom::client::run(args).await),
        Command::Jobs(command) => std::process::exit(darkroom::client::jobs(command).await),
        Command::Templates(command) => {
            std::process::exit(darkroom::client::templates(command).await)
        }
        Command::Keys(command) => {
            let report = darkroom::auth::commands::run(cli.config.as_deref(), &command).await?;
            #[allow(clippy::print_stdout, reason = "printing the result is the command")]
            {
                print!("{report}");
            }
        }
        Command::Template(TemplateCommand::Show(flags)) => {
            let report = template_report(&flags).await?;
            #[allow(clippy::print_stdout, reason = "printing the report is the command")]
            {
                print!("{report}");
            }
        }
    }
    Ok(())
}

/// What `darkroom template show` prints, with the backend's `/object_info` when one is
/// named.
async fn template_report(flags: &ShowFlags) -> anyhow::Result<String> {
    let info = match &flags.backend {
        Some(url) => {
            let client = comfy::ComfyUiClient::new(url.as_str())?;
            let info = client.object_info().await;
            Some(info.with_context(|| format!("cannot read /object_info from {url}"))?)
        }
        None => None,
    };
    let template = darkroom::templates::compile_file(&flags.file, info.as_ref()).await?;
    Ok(template.report(&template.specs(info.as_ref())))
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutdown requested");
}

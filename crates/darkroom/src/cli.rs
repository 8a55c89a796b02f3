//! The command line: subcommands and their flags. Doc comments are the help text.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::client::{self, EXIT_STATUS_HELP};
use crate::config::{BackendConfig, Overrides};

/// Darkroom: a gateway in front of ComfyUI. Named workflows in, stored outputs out.
#[derive(Debug, Parser)]
#[command(version, propagate_version = true)]
pub struct Cli {
    /// TOML configuration file (see darkroom.example.toml).
    #[arg(long, global = true, env = "DARKROOM_CONFIG")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API and the web page, and run jobs on the backends.
    Serve(ServerFlags),
    /// Print the effective configuration, with secrets hidden.
    Config(ServerFlags),
    /// Run a template on a Darkroom server, show its progress and write its outputs.
    #[command(after_help = EXIT_STATUS_HELP)]
    Run(client::RunArgs),
    /// List, show, wait for or cancel jobs on a Darkroom server.
    #[command(subcommand, after_help = EXIT_STATUS_HELP)]
    Jobs(client::JobsCommand),
    /// List or show the templates a Darkroom server offers.
    #[command(subcommand, after_help = EXIT_STATUS_HELP)]
    Templates(client::TemplatesCommand),
    /// Inspect workflow templates.
    #[command(subcommand)]
    Template(TemplateCommand),
    /// Create, list and revoke API keys, in the database `serve` uses (also while it runs).
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it, once: only its hash is stored.
    Create(CreateKeyFlags),
    /// List every key (never the keys themselves): id, name, role, start, limits, state.
    List(KeysFlags),
    /// Revoke a key by id or name; requests with it are refused at once.
    Revoke {
        /// The key's id (key_...) or name.
        key: String,
        #[command(flatten)]
        flags: KeysFlags,
    },
}

/// Which database the key commands work on: the one `serve` would open.
#[derive(Debug, Clone, Args)]
pub struct KeysFlags {
    /// Folder for the database and stored outputs.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Database URL, such as sqlite:///var/lib/darkroom/darkroom.db.
    #[arg(long)]
    pub database_url: Option<String>,
}

impl KeysFlags {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            ..Overrides::default()
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct CreateKeyFlags {
    /// A name to recognise the key by (letters, digits, '-', '_', '.').
    pub name: String,
    /// An admin key sees every job and asset and manages templates and backends.
    #[arg(long)]
    pub admin: bool,
    /// Requests per minute (0: no limit) [default: limits.requests_per_minute].
    #[arg(long)]
    pub requests_per_minute: Option<u32>,
    /// Requests at once beyond the rate [default: limits.burst].
    #[arg(long)]
    pub burst: Option<u32>,
    /// Jobs the key may have waiting [default: limits.max_queued_per_key].
    #[arg(long)]
    pub max_queued: Option<u32>,
    /// Event streams the key may hold open [default: limits.max_streams_per_key].
    #[arg(long)]
    pub max_streams: Option<u32>,
    #[command(flatten)]
    pub flags: KeysFlags,
}

#[derive(Debug, Subcommand)]
pub enum TemplateCommand {
    /// Print what Darkroom makes of a workflow: each parameter, where it is bound, its
    /// type, default and bounds.
    Show(ShowFlags),
}

#[derive(Debug, Clone, Args)]
pub struct ShowFlags {
    /// The workflow (API or UI format); its manifest is the .toml beside it, if any.
    pub file: PathBuf,
    /// A ComfyUI to ask for /object_info: exact input types, bounds and choices, and the
    /// conversion of UI-format workflows.
    #[arg(long, value_name = "URL")]
    pub backend: Option<url::Url>,
}

/// Flags that override the configuration file and environment.
#[derive(Debug, Clone, Args)]
pub struct ServerFlags {
    /// Address to listen on [default: 127.0.0.1:8420].
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Folder for the database and stored outputs.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Database URL, such as sqlite:///var/lib/darkroom/darkroom.db.
    #[arg(long)]
    pub database_url: Option<String>,
    /// A ComfyUI server to run jobs on (repeatable); replaces the configured backends.
    #[arg(long = "backend", value_name = "URL")]
    pub backends: Vec<url::Url>,
    /// Folder of workflow templates [default: the shipped templates/, else
    /// <data_dir>/templates].
    #[arg(long)]
    pub templates_dir: Option<PathBuf>,
    /// Accept requests without API keys even when listening beyond loopback (only while
    /// no key exists). Anyone who reaches the address can then run jobs.
    #[arg(long)]
    pub open_server: bool,
}

impl ServerFlags {
    /// The flags as the top configuration layer.
    pub fn overrides(&self) -> Overrides {
        let backends = (!self.backends.is_empty()).then(|| {
            self.backends
                .iter()
                .enumerate()
                .map(|(index, url)| BackendConfig::at_url(format!("backend-{index}"), url.as_str()))
                .collect()
        });
        Overrides {
            listen: self.listen,
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            backends,
            templates_dir: self.templates_dir.clone(),
            open_server: self.open_server.then_some(true),
        }
    }
}

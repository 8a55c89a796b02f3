//! The client commands' flags. Doc comments are the help text.

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// How the exit statuses are explained under every client command's help.
pub const EXIT_STATUS_HELP: &str = "\
Exit status:
  0  done (for run and jobs wait: the job succeeded and its outputs were written)
  1  any other error (the server failed, a file could not be written)
  2  invalid input: a bad --set or --input, an unknown template or parameter, a value
     the server refuses
  3  the job failed or was canceled
  4  the Darkroom server could not be reached";

/// Where the Darkroom server is.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// The Darkroom server's address.
    #[arg(
        long,
        env = "DARKROOM_SERVER",
        default_value = "http://127.0.0.1:8420",
        value_name = "URL"
    )]
    pub server: url::Url,
    /// The API key to send, when the server has keys (`darkroom keys create`).
    #[arg(
        long,
        env = "DARKROOM_API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub api_key: Option<String>,
}

/// How results are printed.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Print one JSON document on stdout instead of text, and no progress bar: the result
    /// (for run and jobs wait: {"job", "files"}, whatever the job's end), or {"error"}.
    #[arg(long)]
    pub json: bool,
}

/// `darkroom run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The template to run, as `darkroom templates list` names it.
    pub template: String,
    /// A parameter value, NAME=VALUE (repeatable); `seed=random` draws a new seed.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    /// An image parameter from a local file, NAME=FILE (repeatable); it is uploaded first.
    #[arg(long = "input", value_name = "NAME=FILE")]
    pub inputs: Vec<String>,
    /// Folder to write the outputs into (created if missing).
    #[arg(short = 'o', long = "out", value_name = "DIR", default_value = ".")]
    pub out_dir: PathBuf,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `darkroom jobs ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum JobsCommand {
    /// Past and current jobs, newest first.
    List {
        /// Only jobs of this template.
        #[arg(long)]
        template: Option<String>,
        /// Only jobs with this status (queued, running, succeeded, failed, canceled, ...).
        #[arg(long)]
        status: Option<String>,
        /// How many jobs to show.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// One job: status, template, parameters, timings, outputs and error.
    Show {
        id: String,
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Wait for a job to end, with a progress bar; write its outputs when -o is given.
    #[command(after_help = EXIT_STATUS_HELP)]
    Wait {
        id: String,
        /// Folder to write the outputs into.
        #[arg(short = 'o', long = "out", value_name = "DIR")]
        out_dir: Option<PathBuf>,
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Cancel a job (a job already ended is left as it is).
    Cancel {
        id: String,
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
}

impl JobsCommand {
    pub fn json(&self) -> bool {
        match self {
            Self::List { output, .. }
            | Self::Show { output, .. }
            | Self::Wait { output, .. }
            | Self::Cancel { output, .. } => output.json,
        }
    }
}

/// `darkroom templates ...`: the templates a Darkroom server offers.
#[derive(Debug, Clone, Subcommand)]
pub enum TemplatesCommand {
    /// Every template the server offers.
    List {
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// One template's parameters: type, default, range or choices.
    Show {
        name: String,
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
}

impl TemplatesCommand {
    pub fn json(&self) -> bool {
        match self {
            Self::List { output, .. } | Self::Show { output, .. } => output.json,
        }
    }
}

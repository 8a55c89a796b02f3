//! The client commands (`darkroom run`, `darkroom jobs ...`, `darkroom templates ...`):
//! a terminal's and a script's way to a Darkroom server, through its public HTTP API only.
//!
//! Every command ends in an exit status that says whose problem it was, so scripts can
//! branch on it: 2 for input the server (or the command line) refuses, 3 for a job that
//! failed or was canceled, 4 for a server that could not be reached, 1 for anything else.
//! Nothing here touches the store or the scheduler.

mod args;
mod events;
mod http;
mod jobs;
mod params;
mod progress;
mod run;
mod templates;

pub use args::{EXIT_STATUS_HELP, JobsCommand, RunArgs, ServerArgs, TemplatesCommand};
pub use http::Client;

/// The exit statuses, as `--help` documents them.
pub const EXIT_FAILURE: i32 = 1;
pub const EXIT_INVALID_INPUT: i32 = 2;
pub const EXIT_JOB_FAILED: i32 = 3;
pub const EXIT_UNREACHABLE: i32 = 4;

/// Why a client command stopped.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A flag, a value or a file the command line gave, or a request the server refused
    /// as invalid (4xx).
    #[error("{message}")]
    InvalidInput {
        message: String,
        details: Option<serde_json::Value>,
    },
    /// The job ended failed or canceled.
    #[error("{0}")]
    JobFailed(String),
    #[error("cannot reach the Darkroom server at {server}: {reason}")]
    Unreachable { server: String, reason: String },
    /// The server failed (5xx) or answered something unreadable.
    #[error("{0}")]
    Server(String),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ClientError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidInput {
            message: message.into(),
            details: None,
        }
    }

    /// The process exit status for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::InvalidInput { .. } => EXIT_INVALID_INPUT,
            Self::JobFailed(_) => EXIT_JOB_FAILED,
            Self::Unreachable { .. } => EXIT_UNREACHABLE,
            Self::Server(_) | Self::Io { .. } => EXIT_FAILURE,
        }
    }
}

/// Runs `darkroom run`; returns the exit status after printing any error.
pub async fn run(args: RunArgs) -> i32 {
    let json = args.output.json;
    finish(run::run(args).await, json)
}

/// Runs `darkroom jobs ...`.
pub async fn jobs(command: JobsCommand) -> i32 {
    let json = command.json();
    finish(jobs::jobs(command).await, json)
}

/// Runs `darkroom templates ...`.
pub async fn templates(command: TemplatesCommand) -> i32 {
    let json = command.json();
    finish(templates::templates(command).await, json)
}

/// Prints the error (as JSON on stdout too when asked for JSON) and picks the exit status.
#[allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command line reports its errors on the terminal"
)]
fn finish(result: Result<(), ClientError>, json: bool) -> i32 {
    let Err(error) = result else {
        return 0;
    };
    eprintln!("error: {error}");
    if let ClientError::InvalidInput {
        details: Some(details),
        ..
    } = &error
    {
        eprintln!("details: {details}");
    }
    // With --json stdout holds one document: a finished job's outcome was printed already.
    if json && !matches!(error, ClientError::JobFailed(_)) {
        let details = match &error {
            ClientError::InvalidInput { details, .. } => details.clone(),
            _ => None,
        };
        let body = serde_json::json!({
            "error": {"exit_code": error.exit_code(), "message": error.to_string(), "details": details}
        });
        println!("{body}");
    }
    error.exit_code()
}

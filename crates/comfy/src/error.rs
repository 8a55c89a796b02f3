//! The one error type of the ComfyUI client, keeping the server's own detail.

use reqwest::StatusCode;

use crate::prompt::PromptRejection;

/// Everything that can go wrong talking to one ComfyUI server.
#[derive(Debug, thiserror::Error)]
pub enum ComfyError {
    /// The server could not be reached, or the connection broke mid-request.
    #[error("cannot reach comfyui at {url}")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },

    /// `POST /prompt` refused the graph; every node error is kept.
    #[error("comfyui rejected the prompt: {0}")]
    Rejected(Box<PromptRejection>),

    /// The server answered with a status the route does not document for this case.
    #[error("comfyui answered {status} to {route}: {body}")]
    Status {
        route: &'static str,
        status: StatusCode,
        body: String,
    },

    /// The body did not have the shape ComfyUI documents for the route.
    #[error("comfyui sent an unreadable body for {route}: {message}")]
    Decode {
        route: &'static str,
        message: String,
    },

    /// `/view` has no such file.
    #[error("comfyui has no file {filename:?} in {subfolder:?} ({kind})")]
    FileNotFound {
        filename: String,
        subfolder: String,
        kind: String,
    },

    /// The server's version lacks what the call needs.
    #[error("comfyui {version} does not support {feature}")]
    Unsupported {
        version: String,
        feature: &'static str,
    },

    /// The base URL cannot be turned into a route or websocket URL.
    #[error("invalid comfyui url {url:?}: {message}")]
    InvalidUrl { url: String, message: String },
}

impl ComfyError {
    /// True when retrying the same call later may succeed (the server was down or busy).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::Status { status, .. } => status.is_server_error(),
            _ => false,
        }
    }
}

//! The simulator's own failures: starting, binding, preparing its folders.
//! Protocol-level errors (a 400 for a bad prompt) are answers, not errors,
//! and live with the handlers.

use std::io;

/// Why the simulator could not start or act.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Binding or inspecting the listening socket failed.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The address asked for.
        addr: String,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// Creating the input/output/temp folders failed.
    #[error("cannot prepare folder {path}")]
    Folder {
        /// The folder.
        path: String,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// Something a test waited for did not happen in time.
    #[error("timed out waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
    },
}

//! The artifacts layer's error type.

use std::io;
use std::path::PathBuf;

use super::BlobHash;

/// What can go wrong storing or reading a blob.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// A hash string that is not exactly `blake3:` and 64 lowercase hex digits.
    #[error("invalid blob hash {value:?}: expected \"blake3:\" and 64 lowercase hex digits")]
    InvalidHash { value: String },

    #[error("blob {hash} not found")]
    NotFound { hash: BlobHash },

    /// A byte range that starts past the end of the blob.
    #[error("range starting at byte {offset} is outside blob {hash} of {size} bytes")]
    RangeNotSatisfiable {
        hash: BlobHash,
        offset: u64,
        size: u64,
    },

    /// The stream being stored failed; nothing was kept.
    #[error("blob source stream failed")]
    Source(#[source] io::Error),

    /// An `artifacts_url` that names no place blobs can live.
    #[error("invalid artifacts_url {url:?}: {reason}")]
    InvalidLocation { url: String, reason: String },

    /// The object store refused or could not be reached.
    #[error("object store failed to {action} {key}")]
    Object {
        action: &'static str,
        key: String,
        #[source]
        source: object_store::Error,
    },

    /// The database that keeps small blobs (SQLite, beside local artifacts) failed.
    #[error("database failed to {action} blob {hash}")]
    Database {
        action: &'static str,
        hash: BlobHash,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("failed to {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl ArtifactError {
    /// A closure for `map_err` that names the failed action and its path.
    pub(crate) fn io(
        action: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }
}

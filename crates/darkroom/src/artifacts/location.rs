//! Where blobs live, from `artifacts_url` and the `[s3]` settings: read once at start-up,
//! so a typo is named then rather than at the first output.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ArtifactError;

/// How to reach an S3-compatible object store. Every field is optional; an empty one is
/// left to the engine's default (AWS's endpoint for the region).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Settings {
    /// Base URL of the S3 API, e.g. `http://127.0.0.1:9000`; empty means AWS.
    pub endpoint: String,
    /// Region the bucket is in; empty means `us-east-1`.
    pub region: String,
    pub access_key_id: String,
    /// Never logged; `darkroom config` shows `****`.
    pub secret_access_key: String,
    /// Allows an `http://` endpoint (a local test server); off, only HTTPS is used.
    pub allow_http: bool,
}

impl fmt::Debug for S3Settings {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = if self.secret_access_key.is_empty() {
            ""
        } else {
            "****"
        };
        formatter
            .debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &secret)
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

/// A blob store's place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactsLocation {
    /// A folder on this machine.
    Local(PathBuf),
    /// Keys under `prefix` (may be empty) in `bucket`.
    S3 {
        bucket: String,
        prefix: String,
        settings: S3Settings,
    },
}

impl ArtifactsLocation {
    /// Reads `url`: empty for `<data_dir>/blobs`, `file:///ABSOLUTE/PATH`, or
    /// `s3://BUCKET[/PREFIX]` reached with `settings`.
    ///
    /// # Errors
    ///
    /// [`ArtifactError::InvalidLocation`] naming what is wrong with `url`.
    pub fn parse(url: &str, data_dir: &Path, settings: &S3Settings) -> Result<Self, ArtifactError> {
        let invalid = |reason: &str| ArtifactError::InvalidLocation {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        if url.is_empty() {
            return Ok(Self::Local(data_dir.join("blobs")));
        }
        let parsed = url::Url::parse(url).map_err(|error| invalid(&error.to_string()))?;
        match parsed.scheme() {
            "file" => {
                let path = parsed
                    .to_file_path()
                    .map_err(|()| invalid("a file URL needs an absolute path"))?;
                Ok(Self::Local(path))
            }
            "s3" => {
                let bucket = parsed
                    .host_str()
                    .filter(|bucket| !bucket.is_empty())
                    .ok_or_else(|| invalid("an s3 URL needs a bucket: s3://BUCKET/PREFIX"))?;
                if parsed.query().is_some() || parsed.fragment().is_some() {
                    return Err(invalid("an s3 URL takes no query or fragment"));
                }
                Ok(Self::S3 {
                    bucket: bucket.to_owned(),
                    prefix: parsed.path().trim_matches('/').to_owned(),
                    settings: settings.clone(),
                })
            }
            other => Err(invalid(&format!(
                "scheme {other:?} is not supported; use s3://BUCKET/PREFIX or file:///PATH"
            ))),
        }
    }
}

/// For logs: the folder, or `s3://bucket/prefix` at its endpoint; never a credential.
impl fmt::Display for ArtifactsLocation {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local(root) => write!(formatter, "{}", root.display()),
            Self::S3 {
                bucket,
                prefix,
                settings,
            } if settings.endpoint.is_empty() => write!(formatter, "s3://{bucket}/{prefix}"),
            Self::S3 {
                bucket,
                prefix,
                settings,
            } => write!(formatter, "s3://{bucket}/{prefix} at {}", settings.endpoint),
        }
    }
}

//! `BlobHash`: the only way to name a blob, and so the only input to a path.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::ArtifactError;

const PREFIX: &str = "blake3:";
const HEX_LEN: usize = 64;

/// A blake3 content hash written `blake3:<64 lowercase hex>`.
///
/// Parsing is strict on purpose: exactly that prefix, exactly 64 characters
/// from `0-9a-f`. Anything else (uppercase, other Unicode digits, separators,
/// NUL, `..`) is refused, which is what makes [`BlobHash::relative_path`]
/// safe to join onto the store's root.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BlobHash(String);

impl BlobHash {
    /// The hash of bytes just digested.
    #[must_use]
    pub fn from_digest(digest: &blake3::Hash) -> Self {
        Self(format!("{PREFIX}{}", digest.to_hex()))
    }

    /// The full `blake3:<hex>` form.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 64 hex digits without the prefix.
    #[must_use]
    pub fn hex(&self) -> &str {
        &self.0[PREFIX.len()..]
    }

    /// `<aa>/<bb>/<hex>`: two levels of fan-out keep directories small.
    #[must_use]
    pub fn relative_path(&self) -> PathBuf {
        let hex = self.hex();
        [&hex[0..2], &hex[2..4], hex].iter().collect()
    }
}

impl fmt::Display for BlobHash {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl FromStr for BlobHash {
    type Err = ArtifactError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let well_formed = value.strip_prefix(PREFIX).is_some_and(|hex| {
            hex.len() == HEX_LEN
                && hex
                    .bytes()
                    .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
        });
        if !well_formed {
            return Err(ArtifactError::InvalidHash {
                value: value.to_owned(),
            });
        }
        Ok(Self(value.to_owned()))
    }
}

impl TryFrom<String> for BlobHash {
    type Error = ArtifactError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<BlobHash> for String {
    fn from(hash: BlobHash) -> String {
        hash.0
    }
}

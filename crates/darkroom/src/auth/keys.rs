//! API keys: how they are made, how they are stored, and what a key may do.
//!
//! A key is shown once, when it is created, and never stored: the store keeps its hash
//! and a short prefix for people to recognise it by. Keys are 256 random bits, so a fast
//! hash is the right one: a slow password hash (argon2, bcrypt) protects guessable secrets
//! against brute force, and nobody can enumerate 2^256 keys however fast the hash. BLAKE3
//! in derive-key mode keeps these hashes apart from every other BLAKE3 use in Darkroom.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Every key starts with this, so a leaked one is recognisable (secret scanners, logs).
pub const KEY_PREFIX: &str = "drk_";
/// Characters of a key kept (beside the prefix) to tell keys apart in listings.
const SHOWN_CHARS: usize = 8;
const HASH_CONTEXT: &str = "darkroom 2025 api key hash v1";

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sees every job and asset, and manages templates and backends.
    Admin,
    /// Sees only its own jobs and assets.
    User,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::User => "user",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "admin" => Ok(Self::Admin),
            "user" => Ok(Self::User),
            other => Err(format!("unknown role {other:?}; roles are admin and user")),
        }
    }
}

/// Limits of one key; `None` takes the server's default from the configuration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyLimits {
    pub requests_per_minute: Option<u32>,
    pub burst: Option<u32>,
    pub max_queued: Option<u32>,
    pub max_streams: Option<u32>,
}

/// A stored key, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Public and stable: it is the `owner` of the key's jobs and assets.
    pub id: String,
    pub name: String,
    pub role: Role,
    /// The key's hash; secret-derived, so never shown to anyone.
    pub hash: String,
    /// The first characters of the key, for people to recognise it by.
    pub shown: String,
    pub limits: KeyLimits,
    pub created_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
}

impl ApiKey {
    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none()
    }
}

/// A key about to be created: its record and the secret, which only the creator sees.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub record: ApiKey,
    pub secret: String,
}

impl NewKey {
    /// A fresh random key named `name`.
    #[must_use]
    pub fn generate(name: &str, role: Role, limits: KeyLimits, created_at: OffsetDateTime) -> Self {
        let bytes: [u8; 32] = rand::random();
        let secret = format!(
            "{KEY_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        );
        let id_bytes: [u8; 8] = rand::random();
        let id = format!("key_{}", hex(&id_bytes));
        let shown = secret
            .chars()
            .take(KEY_PREFIX.len() + SHOWN_CHARS)
            .collect();
        let record = ApiKey {
            id,
            name: name.to_owned(),
            role,
            hash: hash_key(&secret),
            shown,
            limits,
            created_at,
            revoked_at: None,
        };
        Self { record, secret }
    }
}

/// The stored form of a presented key.
pub fn hash_key(secret: &str) -> String {
    let mut hasher = blake3::Hasher::new_derive_key(HASH_CONTEXT);
    hasher.update(secret.as_bytes());
    hasher.finalize().to_hex().to_string()
}

/// A key name people type: letters, digits, `-`, `_` and `.`, 1 to 64 of them.
///
/// # Errors
///
/// A message naming what is wrong with `name`.
pub fn check_name(name: &str) -> Result<(), String> {
    let fine = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-_.".contains(&byte));
    if fine {
        Ok(())
    } else {
        Err(format!(
            "key name {name:?} must be 1 to 64 letters, digits, '-', '_' or '.'"
        ))
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_stored_only_as_hashes() {
        let now = OffsetDateTime::now_utc();
        let one = NewKey::generate("a", Role::User, KeyLimits::default(), now);
        let two = NewKey::generate("a", Role::User, KeyLimits::default(), now);
        assert_ne!(one.secret, two.secret);
        assert_ne!(one.record.id, two.record.id);
        assert!(one.secret.starts_with(KEY_PREFIX));
        assert_eq!(one.secret.len(), KEY_PREFIX.len() + 43);
        assert_eq!(one.record.hash, hash_key(&one.secret));
        assert!(!one.record.hash.contains(&one.secret[KEY_PREFIX.len()..]));
        assert!(one.secret.starts_with(&one.record.shown));
    }

    #[test]
    fn names_are_plain() {
        assert!(check_name("ci-runner_2.prod").is_ok());
        for bad in ["", "a b", "x/y", "é", &"n".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}

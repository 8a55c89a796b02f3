//! `darkroom keys create | list | revoke`: key management on the database itself, so it
//! works with the server stopped or running (SQLite in WAL mode takes both).

use std::fmt::Write as _;

use time::OffsetDateTime;

use super::keys::{self, KeyLimits, NewKey, Role};
use crate::cli::{CreateKeyFlags, KeysCommand};
use crate::config::Config;
use crate::store::{self, StoreError};

/// What a key command failed on.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("{0}")]
    InvalidName(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Runs one key command against the configured database and returns what to print.
///
/// # Errors
///
/// [`KeysError`]: a bad name, a name in use, an unknown key, a database fault.
pub async fn run(
    config_file: Option<&std::path::Path>,
    command: &KeysCommand,
) -> Result<String, KeysError> {
    let flags = match command {
        KeysCommand::Create(create) => &create.flags,
        KeysCommand::List(flags) | KeysCommand::Revoke { flags, .. } => flags,
    };
    let config = Config::load(config_file, &flags.overrides())?;
    let store = store::open_beside_server(&config.database_url).await?;
    let now = OffsetDateTime::now_utc();
    match command {
        KeysCommand::Create(create) => create_key(store.as_ref(), create, now).await,
        KeysCommand::List(_) => Ok(listing(&store.api_keys().await?)),
        KeysCommand::Revoke { key, .. } => {
            let revoked = store.revoke_api_key(key, now).await?;
            Ok(format!(
                "revoked {} ({}); requests with it are refused from now on\n",
                revoked.id, revoked.name
            ))
        }
    }
}

async fn create_key(
    store: &dyn store::Store,
    flags: &CreateKeyFlags,
    now: OffsetDateTime,
) -> Result<String, KeysError> {
    keys::check_name(&flags.name).map_err(KeysError::InvalidName)?;
    let role = if flags.admin { Role::Admin } else { Role::User };
    let limits = KeyLimits {
        requests_per_minute: flags.requests_per_minute,
        burst: flags.burst,
        max_queued: flags.max_queued,
        max_streams: flags.max_streams,
    };
    let key = NewKey::generate(&flags.name, role, limits, now);
    store.create_api_key(&key.record).await?;
    tracing::info!(key.id = %key.record.id, key.role = %role, "api key created");
    // The key on a line of its own, so scripts can take the last line.
    Ok(format!(
        "created {role} key {} ({}); it is shown only now, store it safely:\n{}\n",
        key.record.id, key.record.name, key.secret
    ))
}

/// One line per key: never the key, only the start it was created with.
fn listing(keys: &[keys::ApiKey]) -> String {
    let mut text = format!(
        "{:<21} {:<20} {:<5} {:<13} {:<20} {:<24} limits\n",
        "id", "name", "role", "starts", "created", "state"
    );
    let date = |at: OffsetDateTime| {
        at.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    for key in keys {
        let state = match key.revoked_at {
            Some(at) => format!("revoked {}", date(at)),
            None => "live".to_owned(),
        };
        let limit = |value: Option<u32>| value.map_or("default".to_owned(), |v| v.to_string());
        let limits = format!(
            "rate={}/min burst={} queued={} streams={}",
            limit(key.limits.requests_per_minute),
            limit(key.limits.burst),
            limit(key.limits.max_queued),
            limit(key.limits.max_streams)
        );
        let _ = writeln!(
            text,
            "{:<21} {:<20} {:<5} {:<13} {:<20} {:<24} {limits}",
            key.id,
            key.name,
            key.role,
            format!("{}…", key.shown),
            date(key.created_at),
            state
        );
    }
    if keys.is_empty() {
        text.push_str("(no keys: the server accepts requests without one, on loopback only)\n");
    }
    text
}

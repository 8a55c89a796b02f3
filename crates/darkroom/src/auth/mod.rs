//! Who may do what: API keys, the caller of a request, ownership, and per-key limits.
//!
//! A caller is a key, or anonymous. Anonymous callers are let in only while no key exists
//! and the server is not exposed (it listens on loopback, or the operator started it with
//! `open_server`); they act as the local operator and see everything. Once one key exists,
//! every request names a key. A key sees only what it owns (its id is the `owner` of its
//! jobs and assets) unless it is an admin key.
//!
//! This module decides; `api::guard` reads requests and answers them.

pub mod commands;
pub mod keys;
pub mod limits;
pub mod session;

use std::net::SocketAddr;
use std::sync::Arc;

pub use keys::{ApiKey, KeyLimits, NewKey, Role};
pub use limits::{Effective, Gate, StreamPermit};

use crate::config::Config;

/// The caller of one request.
#[derive(Debug, Clone)]
pub enum Caller {
    /// No key: only while no key exists, on a server that is not exposed (or told to be).
    Anonymous,
    Key(Arc<ApiKey>),
}

impl Caller {
    /// The `owner` recorded on what this caller creates.
    pub fn owner(&self) -> Option<String> {
        match self {
            Self::Anonymous => None,
            Self::Key(key) => Some(key.id.clone()),
        }
    }

    /// Admin keys, and the anonymous local operator.
    pub fn is_admin(&self) -> bool {
        match self {
            Self::Anonymous => true,
            Self::Key(key) => key.role == Role::Admin,
        }
    }

    /// Whether the caller may see a record owned by `owner`.
    pub fn may_see(&self, owner: Option<&str>) -> bool {
        self.is_admin() || self.owner().as_deref() == owner
    }

    /// The owner a listing is narrowed to; `None` lists everyone's.
    pub fn listing_owner(&self) -> Option<String> {
        if self.is_admin() { None } else { self.owner() }
    }

    /// A name for logs: the key's id, never its secret.
    pub fn label(&self) -> &str {
        match self {
            Self::Anonymous => "anonymous",
            Self::Key(key) => &key.id,
        }
    }
}

/// The access policy of one server.
#[derive(Debug)]
pub struct Auth {
    pub gate: Gate,
    /// The server listens only on loopback.
    pub loopback: bool,
    /// The operator accepts an exposed server without keys.
    pub open_server: bool,
}

impl Auth {
    pub fn new(config: &Config, address: SocketAddr) -> Self {
        Self {
            gate: Gate::new(config.limits.key_defaults()),
            loopback: address.ip().is_loopback(),
            open_server: config.open_server,
        }
    }

    /// Whether a request without a key may pass, given whether any key exists.
    pub fn admits_anonymous(&self, keys_exist: bool) -> bool {
        !keys_exist && (self.loopback || self.open_server)
    }

    /// The limits of `caller`, or `None` for the local operator on loopback, who is not
    /// limited (the same person could reach ComfyUI directly).
    pub fn limits_of(&self, caller: &Caller) -> Option<Effective> {
        match caller {
            Caller::Key(key) => Some(self.gate.effective(&key.limits)),
            Caller::Anonymous if self.loopback => None,
            Caller::Anonymous => Some(self.gate.effective(&KeyLimits::default())),
        }
    }
}

/// Why a server must not start as configured.
#[derive(Debug, thiserror::Error)]
#[error(
    "refusing to listen on {address} without API keys: anyone who reaches it could run \
     jobs on your GPUs. Create a key with `darkroom keys create NAME`, listen on 127.0.0.1, \
     or pass --open-server (open_server = true) to accept an open server"
)]
pub struct ExposedWithoutKeys {
    pub address: SocketAddr,
}

/// Refuses a server that would listen beyond loopback with no key and no `open_server`.
///
/// # Errors
///
/// [`ExposedWithoutKeys`].
pub fn check_exposure(
    address: SocketAddr,
    active_keys: u64,
    open_server: bool,
) -> Result<(), ExposedWithoutKeys> {
    if address.ip().is_loopback() || active_keys > 0 {
        return Ok(());
    }
    if open_server {
        tracing::warn!(%address, "open server: anyone who reaches this address may run jobs without a key");
        return Ok(());
    }
    Err(ExposedWithoutKeys { address })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_or_keys_or_the_flag_may_serve() {
        let loopback: SocketAddr = "127.0.0.1:8420".parse().unwrap();
        let v6_loopback: SocketAddr = "[::1]:8420".parse().unwrap();
        let everywhere: SocketAddr = "0.0.0.0:8420".parse().unwrap();
        let v6_everywhere: SocketAddr = "[::]:8420".parse().unwrap();
        assert!(check_exposure(loopback, 0, false).is_ok());
        assert!(check_exposure(v6_loopback, 0, false).is_ok());
        assert!(check_exposure(everywhere, 0, false).is_err());
        assert!(check_exposure(v6_everywhere, 0, false).is_err());
        assert!(check_exposure(everywhere, 1, false).is_ok());
        assert!(check_exposure(everywhere, 0, true).is_ok());
    }

    #[test]
    fn callers_see_their_own_and_admins_see_all() {
        let now = time::OffsetDateTime::now_utc();
        let user = Caller::Key(Arc::new(
            NewKey::generate("u", Role::User, KeyLimits::default(), now).record,
        ));
        let admin = Caller::Key(Arc::new(
            NewKey::generate("a", Role::Admin, KeyLimits::default(), now).record,
        ));
        let own = user.owner();
        assert!(user.may_see(own.as_deref()));
        assert!(!user.may_see(Some("key_other")));
        assert!(!user.may_see(None));
        assert!(admin.may_see(Some("key_other")) && admin.may_see(None));
        assert_eq!(user.listing_owner(), own);
        assert_eq!(admin.listing_owner(), None);
        assert!(Caller::Anonymous.is_admin());
    }
}

//! Session cookies, for what a browser fetches without a header: `<img>` sources,
//! download links and `EventSource` streams.
//!
//! Why a cookie and not a key in the URL: a URL is written to logs, browser history and
//! `Referer` headers, and would have to be minted for every image. The cookie holds no key:
//! it is `KEY_ID.EXPIRY.MAC`, signed with a secret derived from the key's stored hash, so
//! it survives a restart of Darkroom and dies with its key. It is `HttpOnly` and
//! `SameSite=Strict`, and accepted only on `GET` and `HEAD`, so it can read what its key
//! may read and change nothing (no cross-site request can use it to submit or cancel).

use time::OffsetDateTime;

use super::keys::ApiKey;

/// The cookie's name.
pub const COOKIE: &str = "darkroom_session";
/// How long a session cookie is good for; the page renews it on every load.
pub const LIFETIME: time::Duration = time::Duration::hours(12);
const MAC_CONTEXT: &str = "darkroom 2025 session cookie v1";

/// A session token for `key`, good until `expires_at`.
pub fn issue(key: &ApiKey, expires_at: OffsetDateTime) -> String {
    let claim = format!("{}.{}", key.id, expires_at.unix_timestamp());
    format!("{claim}.{}", mac(key, &claim).to_hex())
}

/// The key id a token claims, before its signature is checked against that key.
pub fn claimed_key(token: &str) -> Option<&str> {
    token.split('.').next().filter(|id| !id.is_empty())
}

/// Whether `token` was issued for `key` and has not expired at `now`.
pub fn verify(token: &str, key: &ApiKey, now: OffsetDateTime) -> bool {
    let Some((claim, signature)) = token.rsplit_once('.') else {
        return false;
    };
    let Some((id, expires)) = claim.split_once('.') else {
        return false;
    };
    let Ok(expires) = expires.parse::<i64>() else {
        return false;
    };
    let Ok(signature) = blake3::Hash::from_hex(signature) else {
        return false;
    };
    // `blake3::Hash` compares in constant time.
    id == key.id && expires > now.unix_timestamp() && signature == mac(key, claim)
}

fn mac(key: &ApiKey, claim: &str) -> blake3::Hash {
    let secret = blake3::derive_key(MAC_CONTEXT, key.hash.as_bytes());
    blake3::keyed_hash(&secret, claim.as_bytes())
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then_some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::keys::{KeyLimits, NewKey, Role};

    fn key() -> ApiKey {
        NewKey::generate(
            "page",
            Role::User,
            KeyLimits::default(),
            OffsetDateTime::now_utc(),
        )
        .record
    }

    #[test]
    fn a_token_is_good_for_its_key_until_it_expires() {
        let key = key();
        let now = OffsetDateTime::now_utc();
        let token = issue(&key, now + LIFETIME);
        assert_eq!(claimed_key(&token), Some(key.id.as_str()));
        assert!(verify(&token, &key, now));
        assert!(!verify(&token, &key, now + LIFETIME));
        assert!(!verify(&token, &self::key(), now), "another key's");
    }

    #[test]
    fn a_changed_token_is_refused() {
        let key = key();
        let now = OffsetDateTime::now_utc();
        let token = issue(&key, now + LIFETIME);
        let later = (now + time::Duration::days(50)).unix_timestamp();
        let (claim, signature) = token.rsplit_once('.').unwrap();
        let (id, _) = claim.split_once('.').unwrap();
        assert!(!verify(&format!("{id}.{later}.{signature}"), &key, now));
        for bad in ["", ".", "a.b.c", &token[..token.len() - 1]] {
            assert!(!verify(bad, &key, now), "{bad:?}");
        }
    }

    #[test]
    fn cookies_are_read_by_name() {
        let header = "a=1; darkroom_session=x.y.z; b=2";
        assert_eq!(cookie_value(header, COOKIE), Some("x.y.z"));
        assert_eq!(cookie_value("darkroom_sessionx=1", COOKIE), None);
    }
}

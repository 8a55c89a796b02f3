//! The follow-up links responses embed, so clients follow links instead of building URLs.
//!
//! Job links are host-relative, as the contract's `JobUrls` allows. Content URLs of assets
//! and outputs are absolute (the contract types them `uri`), built from the origin the
//! client reached Darkroom through, and host-relative when the request named none.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;

use crate::jobs::model::{AssetId, JobId};

pub fn job(id: JobId) -> String {
    format!("/api/v2/jobs/{id}")
}

pub fn job_events(id: JobId) -> String {
    format!("/api/v2/jobs/{id}/events")
}

pub fn job_cancel(id: JobId) -> String {
    format!("/api/v2/jobs/{id}/cancel")
}

pub fn asset_content(id: AssetId) -> String {
    format!("/api/v2/assets/{id}/content")
}

/// `scheme://authority` of the request, when its headers name a plausible one.
#[derive(Debug, Clone, Default)]
pub struct Origin(Option<String>);

impl Origin {
    /// `path` made absolute against the request's origin, when known.
    pub fn absolute(&self, path: &str) -> String {
        match &self.0 {
            Some(origin) => format!("{origin}{path}"),
            None => path.to_owned(),
        }
    }

    fn from_headers(headers: &HeaderMap) -> Self {
        let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
        // A reverse proxy in front says what the client really used.
        let scheme = match header("x-forwarded-proto") {
            Some("https") => "https",
            _ => "http",
        };
        let host = header("x-forwarded-host")
            .or_else(|| header("host"))
            .filter(|host| is_plausible_authority(host));
        Self(host.map(|host| format!("{scheme}://{host}")))
    }
}

/// Hostnames, IPv4, bracketed IPv6 and a port: nothing that could bend the URL's shape.
fn is_plausible_authority(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b".-:[]_".contains(&byte))
}

impl<S: Send + Sync> FromRequestParts<S> for Origin {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::from_headers(&parts.headers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(pairs: &[(&'static str, &'static str)]) -> Origin {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, value.parse().unwrap());
        }
        Origin::from_headers(&headers)
    }

    #[test]
    fn content_urls_follow_the_host_the_client_used() {
        let url = origin(&[("host", "127.0.0.1:8420")]).absolute("/a");
        assert_eq!(url, "http://127.0.0.1:8420/a");
        let proxied = origin(&[
            ("host", "internal:1"),
            ("x-forwarded-host", "darkroom.test"),
            ("x-forwarded-proto", "https"),
        ]);
        assert_eq!(proxied.absolute("/a"), "https://darkroom.test/a");
    }

    #[test]
    fn a_strange_host_leaves_the_link_host_relative() {
        assert_eq!(origin(&[("host", "evil/path?")]).absolute("/a"), "/a");
        assert_eq!(origin(&[]).absolute("/a"), "/a");
    }
}

//! `POST /api/session` and `DELETE /api/session`: the page's session cookie, for what a
//! browser fetches without headers (images, downloads, `EventSource`). See
//! `auth::session` for why a cookie and what it holds.

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use time::OffsetDateTime;

use crate::auth::{Caller, session};

/// Sets the session cookie of the key the request names and says who that is. Anonymous
/// callers (a server without keys) get no cookie: they need none.
pub async fn create(caller: Caller, headers: HeaderMap) -> Response {
    let Caller::Key(key) = &caller else {
        return Json(json!({"key": null, "role": "admin", "expires_at": null})).into_response();
    };
    let expires_at = OffsetDateTime::now_utc() + session::LIFETIME;
    let token = session::issue(key, expires_at);
    let cookie = cookie(&token, session::LIFETIME.whole_seconds(), &headers);
    let body = json!({
        "key": {"id": key.id, "name": key.name},
        "role": key.role,
        "expires_at": expires_at.format(&time::format_description::well_known::Rfc3339).ok(),
    });
    let mut response = Json(body).into_response();
    if let Ok(cookie) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// Clears the cookie (signing out of the page).
pub async fn delete(headers: HeaderMap) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(cookie) = HeaderValue::from_str(&cookie("", 0, &headers)) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// `Secure` when a proxy in front says the client used https; plain http on loopback
/// would otherwise never send it back.
fn cookie(value: &str, max_age: i64, headers: &HeaderMap) -> String {
    let secure = headers
        .get("x-forwarded-proto")
        .is_some_and(|proto| proto.as_bytes() == b"https");
    format!(
        "{}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{}",
        session::COOKIE,
        if secure { "; Secure" } else { "" }
    )
}

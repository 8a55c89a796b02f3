//! The web page: `GET /` and its files under `/ui/`, compiled into the binary from
//! `crates/darkroom/web/` (plain HTML, CSS and JavaScript modules, no build step).
//!
//! The page talks to the public API only, like any other client. Its content security
//! policy allows nothing outside this origin, so it cannot fetch anything at run time
//! from elsewhere, even by mistake.

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::ApiError;

/// Every file of the page: name under `/ui/`, content type, bytes.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "style.css",
        "text/css",
        include_bytes!("../../web/style.css"),
    ),
    ("app.js", JS, include_bytes!("../../web/app.js")),
    ("api.js", JS, include_bytes!("../../web/api.js")),
    ("dom.js", JS, include_bytes!("../../web/dom.js")),
    ("form.js", JS, include_bytes!("../../web/form.js")),
    ("generate.js", JS, include_bytes!("../../web/generate.js")),
    ("watch.js", JS, include_bytes!("../../web/watch.js")),
    ("job.js", JS, include_bytes!("../../web/job.js")),
    ("history.js", JS, include_bytes!("../../web/history.js")),
    ("backends.js", JS, include_bytes!("../../web/backends.js")),
    (
        "icon.svg",
        "image/svg+xml",
        include_bytes!("../../web/icon.svg"),
    ),
];
const JS: &str = "text/javascript";
const INDEX: &[u8] = include_bytes!("../../web/index.html");

/// Images may be data or blob URLs: previews arrive as base64 over the event stream.
const POLICY: &str = "default-src 'self'; img-src 'self' data: blob:; \
                      object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// `GET /`: the page itself.
pub async fn index() -> Response {
    serve("text/html; charset=utf-8", INDEX)
}

/// `GET /ui/{file}`: one of the page's files.
///
/// # Errors
///
/// `404 not_found` for a name that is not one of them.
pub async fn file(Path(name): Path<String>) -> Result<Response, ApiError> {
    FILES
        .iter()
        .find(|(file, _, _)| *file == name)
        .map(|(_, content_type, bytes)| serve(content_type, bytes))
        .ok_or_else(|| ApiError::not_found(format!("the page has no file {name:?}")))
}

fn serve(content_type: &'static str, bytes: &'static [u8]) -> Response {
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Revalidated on every load, so a new binary's page is never mixed with an old one's.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

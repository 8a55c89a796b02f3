//! `GET /api/v2/assets/{id}/content`: the bytes, streamed from the blob store, whole or
//! as one byte range (`206`, or `416` past the end).
//!
//! Only single ranges are served; a multi-range or malformed `Range` is ignored and the
//! whole content sent, as HTTP allows. Content types come from clients, so responses say
//! `nosniff`, and only media and plain text are offered inline.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::load;
use crate::api::{ApiError, AppState};
use crate::artifacts::ArtifactError;
use crate::auth::Caller;
use crate::jobs::model::Asset;

/// What a `Range` header asks of a representation of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wanted {
    Whole,
    /// First and last byte, inclusive.
    Part {
        first: u64,
        last: u64,
    },
    Unsatisfiable,
}

/// Serves an asset's bytes.
///
/// # Errors
///
/// `404 not_found`; `416 range_not_satisfiable`; `500` when the blob is missing.
pub async fn content(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let asset = load(&state, &caller, &id).await?;
    let blob = state
        .blobs
        .open(&asset.hash)
        .await
        .map_err(|error| match error {
            // A record whose bytes vanished is our fault, not the client's.
            ArtifactError::NotFound { .. } => ApiError::internal(&error),
            other => ApiError::from(other),
        })?;
    let size = blob.size();
    let range = headers
        .get(header::RANGE)
        .and_then(|value| value.to_str().ok());

    let (status, first, length) = match wanted(range, size) {
        Wanted::Whole => (StatusCode::OK, 0, size),
        Wanted::Part { first, last } => (StatusCode::PARTIAL_CONTENT, first, last - first + 1),
        Wanted::Unsatisfiable => return Ok(unsatisfiable(size)),
    };
    let slice = blob.range(first, Some(length)).await?;
    let mut response = (status, Body::from_stream(slice.into_stream())).into_response();

    let headers = response.headers_mut();
    describe(headers, &asset, length);
    if status == StatusCode::PARTIAL_CONTENT {
        let range = format!("bytes {first}-{}/{size}", first + length - 1);
        headers.insert(header::CONTENT_RANGE, header_value(&range));
    }
    Ok(response)
}

fn describe(headers: &mut HeaderMap, asset: &Asset, length: u64) {
    headers.insert(header::CONTENT_TYPE, header_value(&asset.content_type));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(
        header::ETAG,
        header_value(&format!("\"{}\"", asset.hash.hex())),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Assets are served from the page's own origin: whatever a file holds (an SVG with a
    // script, say) must not run with the page's rights when opened directly.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'; img-src 'self'; media-src 'self'"),
    );
    let name = asset.file_path.as_deref().unwrap_or("asset");
    let name = name.rsplit('/').next().unwrap_or(name);
    headers.insert(
        header::CONTENT_DISPOSITION,
        header_value(&disposition(&asset.content_type, name)),
    );
}

fn unsatisfiable(size: u64) -> Response {
    let error = ApiError::new(
        StatusCode::RANGE_NOT_SATISFIABLE,
        "range_not_satisfiable",
        format!("the requested range is outside the content's {size} bytes"),
    );
    let mut response = error.into_response();
    let range = format!("bytes */{size}");
    response
        .headers_mut()
        .insert(header::CONTENT_RANGE, header_value(&range));
    response
}

/// The values built here are ASCII by construction; a stray one becomes empty, not a panic.
fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Reads a `Range` header against a representation of `size` bytes.
fn wanted(range: Option<&str>, size: u64) -> Wanted {
    let Some(spec) = range.and_then(|range| range.trim().strip_prefix("bytes=")) else {
        return Wanted::Whole;
    };
    // An empty representation has no bytes to give a part of.
    if spec.contains(',') || size == 0 {
        return Wanted::Whole;
    }
    let Some((start, end)) = spec.trim().split_once('-') else {
        return Wanted::Whole;
    };
    let number = |text: &str| text.trim().parse::<u64>().ok();
    match (start.trim().is_empty(), number(start), number(end)) {
        // `bytes=-N`: the last N bytes.
        (true, _, Some(0)) => Wanted::Unsatisfiable,
        (true, _, Some(suffix)) => Wanted::Part {
            first: size.saturating_sub(suffix),
            last: size - 1,
        },
        (false, Some(first), _) if first >= size => Wanted::Unsatisfiable,
        (false, Some(first), None) if end.trim().is_empty() => Wanted::Part {
            first,
            last: size - 1,
        },
        (false, Some(first), Some(last)) if last >= first => Wanted::Part {
            first,
            last: last.min(size - 1),
        },
        _ => Wanted::Whole,
    }
}

/// `inline` for what a browser shows safely, `attachment` for the rest, with the name as
/// plain ASCII and, when it is not, also UTF-8 encoded (RFC 6266).
fn disposition(content_type: &str, name: &str) -> String {
    // SVG is an image that can carry script: offered as a download, never inline.
    let shown = ["image/", "video/", "audio/", "text/plain"]
        .iter()
        .any(|prefix| content_type.starts_with(prefix))
        && !content_type.starts_with("image/svg");
    let kind = if shown { "inline" } else { "attachment" };
    let ascii: String = name
        .chars()
        .map(|character| match character {
            ' '..='~' if character != '"' && character != '\\' => character,
            _ => '_',
        })
        .collect();
    if ascii == name {
        return format!("{kind}; filename=\"{ascii}\"");
    }
    let encoded: String = name
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect();
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_read_as_http_says() {
        let part = |first, last| Wanted::Part { first, last };
        assert_eq!(wanted(None, 10), Wanted::Whole);
        assert_eq!(wanted(Some("bytes=0-3"), 10), part(0, 3));
        assert_eq!(wanted(Some("bytes=4-"), 10), part(4, 9));
        assert_eq!(wanted(Some("bytes=-3"), 10), part(7, 9));
        assert_eq!(wanted(Some("bytes=-30"), 10), part(0, 9));
        assert_eq!(wanted(Some("bytes=5-100"), 10), part(5, 9));
        assert_eq!(wanted(Some("bytes=10-"), 10), Wanted::Unsatisfiable);
        assert_eq!(wanted(Some("bytes=-0"), 10), Wanted::Unsatisfiable);
        for ignored in ["bytes=3-1", "bytes=0-1,4-5", "items=0-1", "bytes=x-"] {
            assert_eq!(wanted(Some(ignored), 10), Wanted::Whole, "{ignored}");
        }
        assert_eq!(wanted(Some("bytes=0-0"), 0), Wanted::Whole);
    }

    #[test]
    fn download_names_cannot_break_the_header() {
        assert_eq!(
            disposition("image/png", "a.png"),
            "inline; filename=\"a.png\""
        );
        assert_eq!(
            disposition("text/html", "x\"y.html"),
            "attachment; filename=\"x_y.html\"; filename*=UTF-8''x%22y.html"
        );
        assert!(
            disposition("image/png", "été.png").ends_with("filename*=UTF-8''%C3%A9t%C3%A9.png")
        );
    }

    #[test]
    fn svg_is_never_shown_inline() {
        assert!(disposition("image/svg+xml", "x.svg").starts_with("attachment;"));
    }
}

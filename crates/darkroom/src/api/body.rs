//! Reading request bodies into JSON with errors in the contract's envelope: axum's own
//! rejections are plain text, and a client must always get `{"error": ...}`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::ApiError;

/// The largest JSON body Darkroom reads (a workflow with its inline data).
pub const JSON_LIMIT: usize = 32 * 1024 * 1024;
/// The largest asset upload; it is streamed to disk, never held in memory.
pub const UPLOAD_LIMIT: usize = 1024 * 1024 * 1024;

/// A body axum could not read, as an envelope: 413 past the limit, 400 otherwise.
pub fn rejected(rejection: &BytesRejection) -> ApiError {
    unreadable(rejection.status(), &rejection.body_text(), JSON_LIMIT)
}

/// A body (JSON or multipart) that could not be read, with the limit that applied.
pub fn unreadable(status: StatusCode, reason: &str, limit: usize) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        let mebibytes = limit / (1024 * 1024);
        return ApiError::new(
            status,
            "payload_too_large",
            format!("request body is larger than the {mebibytes} MiB limit"),
        );
    }
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        format!("request body could not be read: {}", reason.to_lowercase()),
    )
}

/// Parses a JSON body; a syntax error is reported with `code`, naming line and column.
///
/// # Errors
///
/// [`ApiError`] when the body was not read or is not JSON of the expected shape.
pub fn json<T: DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
    code: &'static str,
) -> Result<T, ApiError> {
    let bytes = body.map_err(|rejection| rejected(&rejection))?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|error| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
            format!("request body is not valid JSON: {error}"),
        )
    })?;
    serde_json::from_value(value).map_err(|error| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
            format!("request body does not match the expected shape: {error}"),
        )
    })
}

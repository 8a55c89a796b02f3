//! Reading request bodies into JSON with errors in the contract's envelope: axum's own
//! rejections are plain text, and a client must always get `{"error": ...}`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::ApiError;
use crate::config::Limits;

/// A body axum could not read, as an envelope: 413 past the limit, 400 otherwise.
pub fn rejected(rejection: &BytesRejection, limit: u64) -> ApiError {
    unreadable(rejection.status(), &rejection.body_text(), limit)
}

/// A body (JSON or multipart) that could not be read, with the limit (bytes) that applied.
pub fn unreadable(status: StatusCode, reason: &str, limit: u64) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        let limit = size_in_words(limit);
        return ApiError::new(
            status,
            "payload_too_large",
            format!("request body is larger than the {limit} limit"),
        );
    }
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        format!("request body could not be read: {}", reason.to_lowercase()),
    )
}

/// Parses a JSON body read under `limits`; a syntax error is reported with `code`, naming
/// line and column.
///
/// # Errors
///
/// [`ApiError`] when the body was not read or is not JSON of the expected shape.
pub fn json<T: DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
    code: &'static str,
    limits: &Limits,
) -> Result<T, ApiError> {
    let bytes = body.map_err(|rejection| rejected(&rejection, limits.max_body_size.as_u64()))?;
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

/// `32 MiB`, `4 KiB`, `1000 bytes`: a limit as an operator would have written it.
fn size_in_words(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    const GIB: u64 = 1024 * MIB;
    match bytes {
        0 => "0 bytes".to_owned(),
        _ if bytes.is_multiple_of(GIB) => format!("{} GiB", bytes / GIB),
        _ if bytes.is_multiple_of(MIB) => format!("{} MiB", bytes / MIB),
        _ if bytes.is_multiple_of(KIB) => format!("{} KiB", bytes / KIB),
        _ => format!("{bytes} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::size_in_words;

    #[test]
    fn limits_read_as_written() {
        assert_eq!(size_in_words(32 * 1024 * 1024), "32 MiB");
        assert_eq!(size_in_words(1 << 30), "1 GiB");
        assert_eq!(size_in_words(4096), "4 KiB");
        assert_eq!(size_in_words(1000), "1000 bytes");
    }
}

//! What stored bytes are, by their content: the first bytes of a file name its format
//! (magic numbers, read by the `infer` crate), whatever a client called it.
//!
//! An upload that claims to be an image, a video or a sound must be one; its stored type
//! is then the one its bytes show (a JPEG sent as `image/png` is stored as `image/jpeg`).
//! Other declared types are kept: they are served as downloads or plain text with
//! `nosniff`, so no browser runs them as something else.

use axum::http::StatusCode;
use serde_json::json;
use tokio::io::AsyncReadExt;

use crate::api::ApiError;
use crate::artifacts::{ArtifactError, BlobHash, BlobStore};

/// Enough bytes for every format `infer` knows.
const HEAD: u64 = 8192;

/// The first bytes of a stored blob.
///
/// # Errors
///
/// `NotFound` or `Io` from the blob store.
pub async fn head(blobs: &dyn BlobStore, hash: &BlobHash) -> Result<Vec<u8>, ArtifactError> {
    let slice = blobs.open_range(hash, 0, Some(HEAD)).await?;
    let mut head = Vec::new();
    slice
        .into_reader()
        .read_to_end(&mut head)
        .await
        .map_err(|source| ArtifactError::Io {
            action: "read",
            path: hash.relative_path(),
            source,
        })?;
    Ok(head)
}

/// The media kind a declared type claims, when it is one content can prove.
fn claimed_kind(declared: &str) -> Option<infer::MatcherType> {
    let essence = declared.split(';').next().unwrap_or_default().trim();
    let kind = essence.split('/').next().unwrap_or_default();
    match kind.to_ascii_lowercase().as_str() {
        "image" => Some(infer::MatcherType::Image),
        "video" => Some(infer::MatcherType::Video),
        "audio" => Some(infer::MatcherType::Audio),
        _ => None,
    }
}

/// The content type to store for bytes starting with `head` that a client declared as
/// `declared`.
///
/// # Errors
///
/// `422 content_mismatch` when the declared media kind is not what the bytes are.
pub fn stored_type(declared: &str, head: &[u8]) -> Result<String, ApiError> {
    let Some(claimed) = claimed_kind(declared) else {
        return Ok(declared.to_owned());
    };
    let found = infer::get(head);
    match found {
        Some(found) if found.matcher_type() == claimed => Ok(found.mime_type().to_owned()),
        _ => {
            let what = found.map_or("a format no media reader knows", |found| found.mime_type());
            Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "content_mismatch",
                format!(
                    "content_type is {declared:?} but the file's bytes are {what}; uploads \
                     are checked by content, not by name"
                ),
            )
            .with_details(
                json!({"declared": declared, "detected": found.map(|found| found.mime_type())}),
            ))
        }
    }
}

/// Whether bytes starting with `head` are a picture a `LoadImage` node can read.
pub fn is_image(head: &[u8]) -> bool {
    infer::get(head).is_some_and(|found| found.matcher_type() == infer::MatcherType::Image)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    const JPEG: &[u8] = b"\xff\xd8\xff\xe0\0\x10JFIF\0";

    #[test]
    fn a_claimed_picture_must_be_one() {
        assert_eq!(stored_type("image/png", PNG).unwrap(), "image/png");
        assert_eq!(stored_type("image/png", JPEG).unwrap(), "image/jpeg");
        let refused = stored_type("image/png", b"<html><script>alert(1)</script>").unwrap_err();
        assert_eq!(refused.code, "content_mismatch");
        assert!(stored_type("video/mp4", PNG).is_err());
        assert!(stored_type("image/svg+xml", b"<svg onload=alert(1)>").is_err());
    }

    #[test]
    fn other_types_are_kept_as_declared() {
        assert_eq!(stored_type("text/plain", b"hello").unwrap(), "text/plain");
        assert_eq!(
            stored_type("application/octet-stream", PNG).unwrap(),
            "application/octet-stream"
        );
    }

    #[test]
    fn pictures_are_told_by_their_bytes() {
        assert!(is_image(PNG) && is_image(JPEG));
        assert!(!is_image(b"%PDF-1.7") && !is_image(b""));
    }
}

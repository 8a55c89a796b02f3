//! `POST /api/v2/assets`: a multipart upload streamed into the blob store as it arrives,
//! hashed on the way (blake3), deduplicated by that hash, then recorded as an asset.
//!
//! The form's text fields may come before or after the file. When the request turns out
//! wrong after the bytes were stored (a missing field, a hash mismatch), a blob that this
//! upload created and nothing refers to is removed again.

use std::io;

use axum::Json;
use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use futures_util::TryStreamExt;
use serde_json::json;
use time::OffsetDateTime;

use super::{AssetView, check_expires_in, expiry, sniff};
use crate::api::links::Origin;
use crate::api::{ApiError, AppState, body};
use crate::artifacts::{ArtifactError, BlobHash, BlobInfo};
use crate::auth::Caller;
use crate::jobs::model::{Asset, AssetId};

const FILE_PATH_MAX_LEN: usize = 1024;

/// What the form said, as far as it was read.
#[derive(Debug, Default)]
struct Form {
    blob: Option<BlobInfo>,
    /// Deletes of blobs finished before the file was stored (see `BlobStore::hold`).
    deletions_before: u64,
    content_type: Option<String>,
    file_path: Option<String>,
    expected_hash: Option<String>,
    expires_in: Option<String>,
}

/// Uploads one file: `201` when the bytes were new, `200` on a dedup hit.
///
/// # Errors
///
/// `422 invalid_request` for a missing or bad field; `409 hash_mismatch`; `413`.
pub async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<AssetView>), ApiError> {
    let mut multipart = multipart.map_err(|rejection| {
        ApiError::invalid_request(format!(
            "an upload must be multipart/form-data: {}",
            rejection.body_text().to_lowercase()
        ))
    })?;
    let mut form = Form::default();
    let read = read_form(&state, &mut multipart, &mut form).await;
    let recorded = match read {
        Ok(()) => record(&state, &caller, &form).await,
        Err(error) => Err(error),
    };
    match recorded {
        Ok((asset, created_new)) => {
            let status = if created_new {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            tracing::info!(asset.id = %asset.id, blob.hash = %asset.hash, created_new, "asset uploaded");
            Ok((
                status,
                Json(AssetView::new(&asset, &origin, Some(created_new))),
            ))
        }
        Err(error) => {
            discard_new_blob(&state, form.blob.as_ref()).await;
            Err(error)
        }
    }
}

async fn read_form(
    state: &AppState,
    multipart: &mut Multipart,
    form: &mut Form,
) -> Result<(), ApiError> {
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|error| multipart_error(state, &error))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "file" if form.blob.is_some() => {
                return Err(ApiError::invalid_request(
                    "only one \"file\" field is accepted",
                ));
            }
            "file" => {
                form.deletions_before = state.blobs.locks().deletions();
                form.blob = Some(store_file(state, field).await?);
            }
            "content_type" => form.content_type = Some(text(state, field).await?),
            "file_path" => form.file_path = Some(text(state, field).await?),
            "expected_hash" => form.expected_hash = Some(text(state, field).await?),
            "expires_in" => form.expires_in = Some(text(state, field).await?),
            // Accepted for compatibility; Darkroom keeps no tags.
            "tags" | "tags[]" => drop(text(state, field).await?),
            _ => {
                return Err(ApiError::invalid_request(format!(
                    "unknown multipart field {name:?}; an upload takes file, content_type, \
                     file_path, expected_hash, tags and expires_in"
                )));
            }
        }
    }
    Ok(())
}

async fn store_file(state: &AppState, field: Field<'_>) -> Result<BlobInfo, ApiError> {
    let chunks = field.map_err(io::Error::other);
    state.blobs.put(chunks).await.map_err(|error| match error {
        // The client's stream broke (or passed the limit): its fault, named as such.
        ArtifactError::Source(source) => match source
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<MultipartError>())
        {
            Some(multipart) => multipart_error(state, multipart),
            None => ApiError::invalid_request(format!("upload interrupted: {source}")),
        },
        other => ApiError::from(other),
    })
}

async fn text(state: &AppState, field: Field<'_>) -> Result<String, ApiError> {
    let name = field.name().unwrap_or_default().to_owned();
    field.text().await.map_err(|error| match error.status() {
        StatusCode::PAYLOAD_TOO_LARGE => multipart_error(state, &error),
        _ => ApiError::invalid_request(format!("multipart field {name:?} is not UTF-8 text")),
    })
}

fn multipart_error(state: &AppState, error: &MultipartError) -> ApiError {
    let limit = state.config.limits.max_upload_size.as_u64();
    body::unreadable(error.status(), &error.body_text(), limit)
}

/// Checks the fields against the stored bytes and records the asset as `caller`'s. Says
/// too whether the bytes were new to the caller: whether another key uploaded them
/// before is not the caller's to learn.
async fn record(state: &AppState, caller: &Caller, form: &Form) -> Result<(Asset, bool), ApiError> {
    let missing =
        |name: &str| ApiError::invalid_request(format!("multipart field {name:?} is missing"));
    let blob = form.blob.as_ref().ok_or_else(|| missing("file"))?;
    let declared = check_content_type(
        form.content_type
            .as_deref()
            .ok_or_else(|| missing("content_type"))?,
    )?;

    let file_path = check_file_path(
        form.file_path
            .as_deref()
            .ok_or_else(|| missing("file_path"))?,
    )?;
    if let Some(expected) = &form.expected_hash {
        check_hash(expected, &blob.hash)?;
    }
    let expires_in = form
        .expires_in
        .as_deref()
        .map(parse_expires_in)
        .transpose()?;

    // Until the record commits, the blob must not go with the last record before it (a
    // delete of identical bytes may have come between their storing and here).
    let _hold = state
        .blobs
        .hold(&blob.hash, form.deletions_before)
        .await
        .map_err(|error| match error {
            ArtifactError::NotFound { .. } => ApiError::new(
                StatusCode::CONFLICT,
                "blob_deleted",
                "the same bytes were being deleted while this upload was stored; send it again",
            ),
            other => other.into(),
        })?;
    // Last, so a malformed field is named before the content is judged.
    let head = sniff::head(state.blobs.as_ref(), &blob.hash).await?;
    let content_type = sniff::stored_type(&declared, &head)?;

    let created_new = blob.created_new || !caller_holds(state, caller, &blob.hash).await?;
    let now = OffsetDateTime::now_utc();
    let asset = Asset {
        id: AssetId::new(),
        hash: blob.hash.clone(),
        size_bytes: blob.size,
        content_type,
        file_path: Some(file_path),
        created_at: now,
        expires_at: Some(now + expiry(state, expires_in)),
        owner: caller.owner(),
        job_id: None,
    };
    state.store.create_asset(&asset).await?;
    Ok((asset, created_new))
}

/// Whether `caller` can already see a live asset over these bytes.
async fn caller_holds(
    state: &AppState,
    caller: &Caller,
    hash: &BlobHash,
) -> Result<bool, ApiError> {
    let now = OffsetDateTime::now_utc();
    let assets = state.store.assets_with_hash(hash).await?;
    Ok(assets
        .iter()
        .any(|asset| super::is_live(asset, now) && caller.may_see(asset.owner.as_deref())))
}

/// The server's hash decides; the client's is only compared with it.
fn check_hash(expected: &str, actual: &BlobHash) -> Result<(), ApiError> {
    if expected == actual.as_str() {
        return Ok(());
    }
    let message = match expected.parse::<BlobHash>() {
        Ok(_) => format!("expected_hash {expected} does not match the received bytes"),
        Err(_) => {
            format!("expected_hash {expected:?} is not \"blake3:\" and 64 lowercase hex digits")
        }
    };
    Err(
        ApiError::new(StatusCode::CONFLICT, "hash_mismatch", message)
            .with_details(json!({"expected_hash": expected, "hash": actual})),
    )
}

fn parse_expires_in(text: &str) -> Result<u64, ApiError> {
    let seconds = text.trim().parse::<u64>().map_err(|_| {
        ApiError::invalid_request(format!(
            "expires_in must be a whole number of seconds, got {text:?}"
        ))
    })?;
    check_expires_in(seconds)
}

/// A media type such as `image/png`; it is served back as `Content-Type`, so it must be
/// one header-safe token pair.
fn check_content_type(text: &str) -> Result<String, ApiError> {
    let text = text.trim();
    let essence = text.split(';').next().unwrap_or_default().trim();
    let token = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|byte| byte.is_ascii_graphic() && byte != b'/')
    };
    let well_formed = essence
        .split_once('/')
        .is_some_and(|(kind, subtype)| token(kind) && token(subtype))
        && text
            .bytes()
            .all(|byte| byte == b' ' || byte.is_ascii_graphic());
    if well_formed {
        return Ok(text.to_owned());
    }
    Err(ApiError::invalid_request(format!(
        "content_type {text:?} is not a media type such as \"image/png\""
    )))
}

/// A client-facing name such as `photo.png` or `models/x.safetensors`. It never becomes
/// a path on disk (blobs are named by hash, and inputs reach ComfyUI under a name made of
/// the hash), but it is echoed back and used as a download name, so it must be relative,
/// without `..`, control characters, or the invisible characters that make a name read
/// other than it is (bidirectional overrides, zero-width characters).
pub(super) fn check_file_path(text: &str) -> Result<String, ApiError> {
    let fine = !text.is_empty()
        && text.len() <= FILE_PATH_MAX_LEN
        && !text.starts_with('/')
        && !text.chars().any(|character| {
            character.is_control() || character == '\\' || is_invisible(character)
        })
        && text
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..");
    if fine {
        return Ok(text.to_owned());
    }
    Err(ApiError::invalid_request(format!(
        "file_path {text:?} must be a relative name like \"photo.png\", without \"..\" or control characters"
    )))
}

/// Bidirectional controls and zero-width characters: a name holding one displays as
/// something else (`photo\u{202e}gnp.exe` reads as `photoexe.png`).
fn is_invisible(character: char) -> bool {
    matches!(
        character,
        '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}'
    )
}

/// Removes a blob this request created when no asset came to refer to it.
async fn discard_new_blob(state: &AppState, blob: Option<&BlobInfo>) {
    if let Some(blob) = blob.filter(|blob| blob.created_new) {
        crate::retention::delete_if_unused(state.store.as_ref(), state.blobs.as_ref(), &blob.hash)
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_paths_stay_relative_and_plain() {
        assert!(check_file_path("photo.png").is_ok());
        assert!(check_file_path("models/checkpoints/x.safetensors").is_ok());
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            "a\\b",
            "a\nb",
            "nul\0.png",
            "photo\u{202e}gnp.exe",
            "zero\u{200b}width.png",
        ] {
            assert!(check_file_path(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn content_types_are_media_types() {
        assert_eq!(check_content_type("image/png").unwrap(), "image/png");
        assert!(check_content_type("text/plain; charset=utf-8").is_ok());
        for bad in ["png", "/png", "image/", "image/png\r\nx: y"] {
            assert!(check_content_type(bad).is_err(), "{bad:?} accepted");
        }
    }
}

//! The assets resource: uploads, minting over known bytes, metadata, content and
//! deletion. Assets are records over content-addressed blobs; several records may share
//! one blob, which goes only with the last of them. Job outputs are assets too.

mod content;
pub mod sniff;
mod upload;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use content::content;
pub use upload::upload;

use super::links::{self, Origin};
use super::{ApiError, AppState, body};
use crate::artifacts::{ArtifactError, BlobHash};
use crate::auth::Caller;
use crate::jobs::model::{Asset, AssetId, JobId};

/// Bounds of a client's retention override, in seconds (60 s to 7 days).
const EXPIRES_IN_RANGE: std::ops::RangeInclusive<u64> = 60..=604_800;

/// The contract's `Asset`.
#[derive(Debug, Serialize)]
pub struct AssetView {
    id: AssetId,
    hash: BlobHash,
    size_bytes: u64,
    content_type: String,
    file_path: Option<String>,
    /// Only on create answers: whether the bytes were new to the platform.
    #[serde(skip_serializing_if = "Option::is_none")]
    created_new: Option<bool>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    url: String,
    #[serde(with = "time::serde::rfc3339")]
    url_expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
    job_id: Option<JobId>,
}

/// How long the content URL of a non-expiring asset is promised for; Darkroom serves it
/// itself, so the URL in fact works as long as the asset exists.
const URL_LIFETIME: time::Duration = time::Duration::hours(24);

impl AssetView {
    fn new(asset: &Asset, origin: &Origin, created_new: Option<bool>) -> Self {
        let url_expires_at = asset
            .expires_at
            .unwrap_or_else(|| OffsetDateTime::now_utc() + URL_LIFETIME);
        Self {
            id: asset.id,
            hash: asset.hash.clone(),
            size_bytes: asset.size_bytes,
            content_type: asset.content_type.clone(),
            file_path: asset.file_path.clone(),
            created_new,
            created_at: asset.created_at,
            url: origin.absolute(&links::asset_content(asset.id)),
            url_expires_at,
            expires_at: asset.expires_at,
            job_id: asset.job_id,
        }
    }
}

/// The live asset `id` names, when `caller` may see it: malformed, missing, lapsed and
/// other keys' ids are all the same `404`.
///
/// # Errors
///
/// `404 not_found`; store faults.
pub async fn load(state: &AppState, caller: &Caller, id: &str) -> Result<Asset, ApiError> {
    let not_found = || ApiError::not_found(format!("asset {id} not found"));
    let id: AssetId = id.parse().map_err(|_| not_found())?;
    let asset = state.store.asset(id).await?.ok_or_else(not_found)?;
    if !is_live(&asset, OffsetDateTime::now_utc()) || !caller.may_see(asset.owner.as_deref()) {
        return Err(not_found());
    }
    Ok(asset)
}

fn is_live(asset: &Asset, now: OffsetDateTime) -> bool {
    asset.expires_at.is_none_or(|expires_at| expires_at > now)
}

/// `GET /api/v2/assets/{id}`.
///
/// # Errors
///
/// `404 not_found`.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    origin: Origin,
) -> Result<Json<AssetView>, ApiError> {
    let asset = load(&state, &caller, &id).await?;
    Ok(Json(AssetView::new(&asset, &origin, None)))
}

/// `DELETE /api/v2/assets/{id}`: the record goes; its blob too when no record is left.
///
/// # Errors
///
/// `404 not_found`; `409 asset_in_use` while it is an output of a retained job.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let asset = load(&state, &caller, &id).await?;
    let removal = state.store.delete_asset(asset.id).await?;
    if let Some(hash) = removal.orphaned_blob {
        // The record is gone, which is what the client asked; bytes left are only litter.
        crate::retention::delete_if_unused(state.store.as_ref(), state.blobs.as_ref(), &hash).await;
    }
    tracing::info!(asset.id = %asset.id, "asset deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// `HEAD /api/v2/assets/by-hash/{hash}`: `200` when an asset may be minted from the blob.
pub async fn head_by_hash(
    State(state): State<AppState>,
    caller: Caller,
    Path(hash): Path<String>,
) -> StatusCode {
    match source_asset(&state, &caller, &hash).await {
        Ok(Some(_)) => StatusCode::OK,
        Ok(None) => StatusCode::NOT_FOUND,
        Err(error) => error.status,
    }
}

/// A live asset of `caller`'s over the blob `hash` names, whose bytes are on disk: what
/// minting copies. Only blobs Darkroom ingested itself have a record, so a client's hash
/// is never trusted; and only the caller's own records count, so a hash tells nobody
/// what another key uploaded.
async fn source_asset(
    state: &AppState,
    caller: &Caller,
    hash: &str,
) -> Result<Option<Asset>, ApiError> {
    let Ok(hash) = hash.parse::<BlobHash>() else {
        return Ok(None);
    };
    let now = OffsetDateTime::now_utc();
    let assets = state.store.assets_with_hash(&hash).await?;
    let visible = assets
        .into_iter()
        .find(|asset| is_live(asset, now) && caller.may_see(asset.owner.as_deref()));
    let Some(source) = visible else {
        return Ok(None);
    };
    Ok(state.blobs.exists(&hash).await?.then_some(source))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FromHashRequest {
    hash: String,
    file_path: Option<String>,
    /// Accepted for compatibility; Darkroom keeps no tags.
    #[serde(rename = "tags")]
    _tags: Option<Vec<String>>,
    expires_in: Option<u64>,
}

/// `POST /api/v2/assets/from-hash`: a new record over bytes Darkroom already holds.
///
/// # Errors
///
/// `404 blob_not_found`; `422 invalid_request` for a malformed body.
pub async fn from_hash(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<AssetView>), ApiError> {
    let request: FromHashRequest = body::json(body, "invalid_request", &state.config.limits)?;
    if request.hash.parse::<BlobHash>().is_err() {
        return Err(ApiError::invalid_request(format!(
            "hash {:?} is not \"blake3:\" followed by 64 lowercase hex digits",
            request.hash
        )));
    }
    let file_path = request
        .file_path
        .as_deref()
        .map(upload::check_file_path)
        .transpose()?;
    let expires_in = request.expires_in.map(check_expires_in).transpose()?;
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "blob_not_found",
            format!("no stored blob has hash {}", request.hash),
        )
    };
    let deletions_before = state.blobs.locks().deletions();
    let Some(source) = source_asset(&state, &caller, &request.hash).await? else {
        return Err(not_found());
    };
    // Until the new record commits, the blob must not go with the last record before it.
    let _hold = match state.blobs.hold(&source.hash, deletions_before).await {
        Ok(hold) => hold,
        Err(ArtifactError::NotFound { .. }) => return Err(not_found()),
        Err(error) => return Err(error.into()),
    };

    let now = OffsetDateTime::now_utc();
    let asset = Asset {
        id: AssetId::new(),
        file_path: file_path.or(source.file_path.clone()),
        created_at: now,
        expires_at: Some(now + expiry(&state, expires_in)),
        owner: caller.owner(),
        job_id: None,
        ..source
    };
    state.store.create_asset(&asset).await?;
    tracing::info!(asset.id = %asset.id, blob.hash = %asset.hash, "asset minted from hash");
    Ok((
        StatusCode::CREATED,
        Json(AssetView::new(&asset, &origin, Some(false))),
    ))
}

/// A client's retention override, within the contract's bounds.
fn check_expires_in(seconds: u64) -> Result<u64, ApiError> {
    if EXPIRES_IN_RANGE.contains(&seconds) {
        return Ok(seconds);
    }
    Err(ApiError::invalid_request(format!(
        "expires_in must be between {} and {} seconds, got {seconds}",
        EXPIRES_IN_RANGE.start(),
        EXPIRES_IN_RANGE.end()
    )))
}

/// The override when given, else the platform's retention.
fn expiry(state: &AppState, expires_in: Option<u64>) -> time::Duration {
    match expires_in {
        Some(seconds) => time::Duration::seconds(i64::try_from(seconds).unwrap_or(i64::MAX)),
        None => time::Duration::try_from(state.config.retention).unwrap_or(time::Duration::days(7)),
    }
}

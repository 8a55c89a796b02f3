//! `GET /api/v2/assets/{id}/thumbnail?size=256`: a small JPEG of an image asset, made by
//! the server and cached, for the page's history grid.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{ApiError, AppState};
use crate::auth::Caller;
use crate::thumbnails::{self, ThumbnailError, Thumbnails};

const DEFAULT_SIZE: u32 = 256;

#[derive(Debug, Deserialize)]
pub struct ThumbnailParams {
    size: Option<u32>,
}

/// Serves the thumbnail; the asset's content never changes, so browsers may keep it.
///
/// # Errors
///
/// `404 not_found`; `415 unsupported_media_type` for an asset that is not a picture;
/// `422 invalid_request` for a size outside the offered ones.
pub async fn thumbnail(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    params: Result<Query<ThumbnailParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|rejection| {
        ApiError::invalid_request(format!(
            "bad query: {}",
            rejection.body_text().to_lowercase()
        ))
    })?;
    let asset = super::assets::load(&state, &caller, &id).await?;
    if !thumbnails::is_image(&asset.content_type) {
        return Err(not_a_picture(&asset.content_type));
    }

    let cache = Thumbnails::new(
        state.config.data_dir.join("thumbnails"),
        state.blobs.clone(),
    );
    let bytes = cache
        .get(&asset.hash, params.size.unwrap_or(DEFAULT_SIZE))
        .await
        .map_err(|error| match error {
            ThumbnailError::UnsupportedSize(_) => ApiError::invalid_request(error.to_string()),
            ThumbnailError::TooLarge { .. } | ThumbnailError::NotAnImage(_) => {
                not_a_picture(&asset.content_type).with_details(serde_json::json!({
                    "reason": error.to_string()
                }))
            }
            other => ApiError::internal(&other),
        })?;

    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(thumbnails::CONTENT_TYPE),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=86400, immutable"),
    );
    Ok(response)
}

fn not_a_picture(content_type: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        format!("thumbnails are made of png, jpeg, webp and gif images, not {content_type}"),
    )
}
